/**
 * The counters that replace scans, against a real Azurite: a batch's line counters under many concurrent markers
 * (repeats and a changed outcome included) equal its markers; the waiting-jobs count follows jobs into and out of
 * waiting; batches and files stored before their listing indexes are listed all the same.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { BatchStore } from '../../src/azure/batchStore';
import { BacklogTable } from '../../src/azure/backlogTable';
import { FileStore } from '../../src/azure/fileStore';
import { JobStore } from '../../src/azure/jobStore';
import { BacklogCounter, WAITING_COUNT } from '../../src/core/backlog';
import { emptyCounts, newBatchId, newFileId, type BatchRecord, type LineOutcome } from '../../src/core/batch/model';
import { forEachLimit } from '../../src/core/batch/pool';
import type { JobRecord } from '../../src/core/jobs';
import { countingStorage } from '../support/storageCalls';

let azurite: RunningAzurite;
before(async () => {
  azurite = await startAzurite({ inMemory: true });
});
after(async () => {
  await azurite?.stop();
});

function batchRecord(team: string, over: Partial<BatchRecord> = {}): BatchRecord {
  const now = Date.now();
  return {
    id: newBatchId(now),
    status: 'in_progress',
    endpoint: '/v1/chat/completions',
    inputFileId: 'file-0',
    completionWindow: '24h',
    metadata: {},
    team,
    createdAt: now,
    expiresAt: now + 86_400_000,
    total: 0,
    counts: emptyCounts(),
    lineCounters: true,
    cursorLines: 0,
    cursorBytes: 0,
    cursorLineNo: 1,
    ...over,
  };
}

test('line counters stay exact under 16 concurrent markers, repeated lines and a changed outcome', async () => {
  const storage = countingStorage(azurite.connectionString);
  const batches = new BatchStore(storage.table('countersexact'));
  const batch = batchRecord('mine', { total: 400 });
  await batches.create(batch);
  const outcome = (i: number): LineOutcome => (i % 7 === 0 ? 'failed' : 'succeeded');
  // Every line marked once by "its worker", a quarter of them a second time (a redelivered job), all at once.
  const marks = [...Array.from({ length: 400 }, (_, i) => i), ...Array.from({ length: 100 }, (_, i) => i * 4)];
  await forEachLimit(marks, 16, (i) => batches.markLines(batch.id, [{ customId: `req-${i}`, outcome: outcome(i) }]));
  const expected = { ...emptyCounts(), failed: Math.ceil(400 / 7), succeeded: 400 - Math.ceil(400 / 7) };
  assert.deepEqual(await batches.countLines(batch), expected);
  // The driver's reconcile marks a stopped line as cancelled: it moves from failed, the total stays.
  await batches.markLines(batch.id, [{ customId: 'req-0', outcome: 'cancelled' }, { customId: 'req-1', outcome: 'succeeded' }]);
  assert.deepEqual(await batches.countLines(batch), { ...expected, failed: expected.failed - 1, cancelled: 1 });
  // The counters agree with the markers themselves.
  assert.deepEqual(await batches.countLines({ id: batch.id }), await batches.countLines(batch));
});

function job(i: number, team: string): JobRecord {
  return {
    id: `job_${i.toString(16).padStart(32, '0')}`,
    status: 'queued',
    priority: 'interactive',
    model: 'gpt-4o-mini',
    team,
    request: { messages: [] },
    metadata: {},
    createdAt: Date.now(),
    attempts: 0,
    promptTokens: 10,
    maxOutputTokens: 10,
    regionsTried: [],
    throttles: 0,
  };
}

test('the waiting count: parked jobs and jobs their worker holds for quota, nothing else, and out again', async () => {
  const storage = countingStorage(azurite.connectionString);
  const counter = () =>
    new BacklogCounter(new BacklogTable(storage.table('waitingcount'), 'waiting'), { ...WAITING_COUNT, now: Date.now, flushMs: 60_000, schedule: () => undefined });
  const waiting = counter();
  const jobs = new JobStore(storage.table('waitingjobs'), storage.container('waitingjobs'), (j, delta) => waiting.add(j.team, j.createdAt, delta));
  const list = [0, 1, 2, 3, 4].map((i) => job(i, i % 2 ? 'team-b' : 'team-a'));
  for (const j of list) assert.equal(await jobs.create(j), true);
  const set = async (i: number, patch: Partial<JobRecord>) => {
    const got = (await jobs.get(list[i]!.id))!;
    await jobs.replace({ ...got.job, ...patch }, got.etag);
  };
  const later = Date.now() + 60_000;
  await set(0, { status: 'waiting', notBefore: later }); // parked
  await set(1, { status: 'running', notBefore: later, claimId: 'c', claimUntil: later }); // held by its worker
  await set(2, { status: 'running', claimId: 'c', claimUntil: later }); // calling the model
  await set(3, { status: 'succeeded', completedAt: Date.now() });
  // list[4] stays queued
  assert.equal(await waiting.total(), 2);
  // Another process (the rollup's) reads the same rows.
  assert.equal(await counter().total(), 2);
  await set(0, { status: 'running', notBefore: undefined, claimId: 'd', claimUntil: later }); // claimed again
  assert.equal((await jobs.stopIfNotStarted(list[1]!.id, { code: 'batch_cancelled', message: 'x' }, Date.now()))?.stopped, true);
  assert.equal(await waiting.total(), 0);
  assert.equal(await counter().total(), 0);
});

test('batches and files stored before the listing indexes are listed (indexed once), newest first', async () => {
  const storage = countingStorage(azurite.connectionString);
  const table = storage.table('legacyindex');
  await table.createTable();
  const container = storage.container('legacyfiles');
  await container.createIfNotExists();
  // Rows and blobs as the earlier layout wrote them: a batch record only, a blob with its metadata only.
  const old = batchRecord('mine', { status: 'completed' });
  const { errors: _errors, ...rest } = old;
  await table.createEntity({ partitionKey: 'batch', rowKey: old.id, status: old.status, recordJson: JSON.stringify(rest), errorsJson: '' });
  const oldFile = newFileId(Date.now() - 60_000);
  await container.getBlockBlobClient(oldFile).upload('{}\n', 3, { metadata: { filename: 'old.jsonl', purpose: 'batch', createdat: String(Date.now() - 60_000), team: 'mine', lines: '1' } });

  const batches = new BatchStore(table);
  const newer = batchRecord('mine');
  await batches.create(newer);
  assert.deepEqual((await batches.list({ team: 'mine', limit: 10 })).data.map((b) => b.id), [newer.id, old.id]);
  assert.deepEqual((await batches.list({ team: 'other', limit: 10 })).data, []);

  const files = new FileStore(container, table);
  const page = await files.list({ team: 'mine', limit: 10 });
  assert.deepEqual(page.data.map((f) => [f.id, f.filename, f.lines]), [[oldFile, 'old.jsonl', 1]]);
  assert.equal((await files.list({ team: 'other', limit: 10 })).data.length, 0);
  // The one-off walk left index rows: a fresh store (another process) lists without walking the blobs again.
  const before = storage.counter.blob;
  assert.equal((await new FileStore(container, table).list({ team: 'mine', limit: 10 })).data.length, 1);
  assert.ok(storage.counter.blob - before <= 1, 'no blob listing (at most the container check)');
});
