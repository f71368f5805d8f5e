/**
 * Grouped batch-line jobs (what makes a fan-out fast) against real Azurite. Rows of 100 consecutive lines share a
 * partition and are written in entity-group transactions; a resumed fan-out meets rows that exist and is told which;
 * group messages parse, and a group becomes one message per id.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TableClient } from '@azure/data-tables';
import { ContainerClient } from '@azure/storage-blob';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { expandGroup, parseJobMessage } from '../../src/azure/jobQueue';
import { JobStore, jobKeys } from '../../src/azure/jobStore';
import { LINES_PER_PARTITION, lineJobId } from '../../src/core/batch/validate';
import { JOB_ID_PATTERN, parseSubmitBody, prepareJob } from '../../src/core/submit';
import type { JobRecord } from '../../src/core/jobs';

let azurite: RunningAzurite;
let seq = 0;

before(async () => {
  azurite = await startAzurite({ inMemory: true });
});
after(async () => {
  await azurite?.stop();
});

const models = { 'gpt-4o-mini': { contextWindow: 128_000, maxOutputTokens: 16_384, defaultMaxTokens: 256 } };
const batch = { id: 'batch_0000000000000000000000000001', team: 'team-a', jobIds: 2 as const };

/** A batch line's job; `content` replaces the prompt after tokenizing a short one (long runs of one letter tokenize slowly). */
function lineJob(i: number, content?: string): JobRecord {
  const job = prepareJob(parseSubmitBody({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `line ${i}` }], max_tokens: 16 }, priority: 'batch' }), {
    models: models as never,
    now: 1_700_000_000_000,
    team: batch.team,
  });
  const request = content === undefined ? job.request : { ...job.request, messages: [{ role: 'user', content }] };
  return { ...job, request, id: lineJobId(batch, `req-${i}`, i + 1), batchId: batch.id, customId: `req-${i}` };
}

async function freshStore(): Promise<{ store: JobStore; table: TableClient }> {
  const name = `grouped${++seq}`;
  const table = TableClient.fromConnectionString(azurite.connectionString, name, { allowInsecureConnection: true });
  const store = new JobStore(table, new ContainerClient(azurite.connectionString, name));
  return { store, table };
}

test('a grouped line id names its partition: 100 consecutive lines share one, the API accepts the id', () => {
  const ids = Array.from({ length: 250 }, (_, i) => lineJobId(batch, `req-${i}`, i + 1));
  for (const id of ids) assert.match(id, JOB_ID_PATTERN);
  const partitions = ids.map((id) => jobKeys(id).partitionKey);
  assert.equal(new Set(partitions).size, 3);
  assert.equal(new Set(partitions.slice(0, LINES_PER_PARTITION)).size, 1);
  assert.notEqual(partitions[LINES_PER_PARTITION - 1], partitions[LINES_PER_PARTITION]);
  assert.equal(jobKeys(ids[7]!).rowKey, ids[7]);
  assert.deepEqual(jobKeys('job_0123456789abcdef0123456789abcdef'), { partitionKey: 'job_0123456789abcdef0123456789abcdef', rowKey: '' });
  assert.notEqual(lineJobId(batch, 'req-1', 2), lineJobId({ ...batch, team: 'team-b' }, 'req-1', 2), 'ids differ per team');
});

test('createMany writes rows in transactions and reports, on a resume, which rows it inserted', async () => {
  const { store, table } = await freshStore();
  const jobs = Array.from({ length: 250 }, (_, i) => lineJob(i));
  assert.deepEqual(await store.createMany(jobs), jobs.map(() => true));
  let rows = 0;
  for await (const e of table.listEntities({ queryOptions: { select: ['PartitionKey', 'RowKey'] } })) {
    rows += 1;
    assert.equal(e.partitionKey, jobKeys(String(e.rowKey)).partitionKey);
  }
  assert.equal(rows, 250);
  const back = await store.get(jobs[123]!.id);
  assert.equal(back?.job.id, jobs[123]!.id, 'the id comes back from the row key');
  assert.equal(back?.job.customId, 'req-123');
  assert.deepEqual(back?.job.request, jobs[123]!.request);

  // A resume: the first 130 exist (an interrupted earlier attempt), the rest are new.
  const more = Array.from({ length: 60 }, (_, i) => lineJob(250 + i));
  const again = [...jobs.slice(70, 130), ...more];
  assert.deepEqual(await store.createMany(again), [...jobs.slice(70, 130).map(() => false), ...more.map(() => true)]);
  assert.equal((await store.get(more[59]!.id))?.job.status, 'queued');

  // 100 rows of one partition too large for one 4 MiB transaction (~5 MB of UTF-8) are split, never refused.
  const big = Array.from({ length: 100 }, (_, i) => lineJob(400 + i, 'é'.repeat(25_000 + i)));
  assert.equal(new Set(big.map((j) => jobKeys(j.id).partitionKey)).size, 1);
  assert.deepEqual(await store.createMany(big), big.map(() => true));
  const request = (await store.get(big[99]!.id))?.job.request as { messages: { content: string }[] };
  assert.equal(request.messages[0]!.content.length, 25_099);
});

test('a grouped row is updated, stopped and failed through its id like any job', async () => {
  const { store } = await freshStore();
  const [a, b] = [lineJob(1), lineJob(2)];
  await store.createMany([a, b]);
  const got = (await store.get(a.id))!;
  await store.replace({ ...got.job, status: 'running' }, got.etag);
  assert.equal((await store.get(a.id))?.job.status, 'running');
  assert.deepEqual(await store.stopIfNotStarted(b.id, { code: 'batch_cancelled', message: 'x' }, 1), { stopped: true, status: 'failed' });
  assert.equal(await store.failIfNotTerminal(a.id, { code: 'worker_crashed', message: 'x' }, 1), true);
  assert.equal((await store.get(a.id))?.job.status, 'failed');
});

test('group messages parse (plain or as the host hands them), bad ones are refused, and expand to one send per id', async () => {
  const ids = ['job_0123456789abcdef_0123456789abcdef01234567', 'job_0123456789abcdef0123456789abcdef'];
  assert.deepEqual(parseJobMessage({ ids }), { ids });
  assert.deepEqual(parseJobMessage(JSON.stringify({ ids })), { ids });
  assert.equal(parseJobMessage({ ids: [] }), undefined);
  assert.equal(parseJobMessage({ ids: ['ok', 'not ok!'] }), undefined);
  assert.equal(parseJobMessage({ ids: 'job_1' }), undefined);
  const sent: string[] = [];
  await expandGroup(ids, async (id) => void sent.push(id));
  assert.deepEqual(sent.sort(), [...ids].sort());
  let calls = 0;
  await assert.rejects(
    expandGroup(ids, async () => {
      calls += 1;
      throw new Error('queue down');
    }),
    /queue down/,
  );
  assert.ok(calls >= 1, 'a failed send fails the group (the host retries the message)');
});
