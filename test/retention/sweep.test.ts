/**
 * The retention sweep against Azurite: every kind of record expires (job records with their payload blobs, batch
 * records with their line rows and line jobs, files and batch outputs, usage rows), live ones stay, and each run is
 * bounded and resumes from its cursor. Times are back-dated rows and a clock the test sets.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { buildUsageRow } from '../../src/core/telemetry/usage';
import { newBatchId, emptyCounts, type BatchRecord } from '../../src/core/batch/model';
import { lineJobId } from '../../src/core/batch/validate';
import { runRetentionSweep, type RetentionDeps } from '../../src/core/retention/sweep';
import { DAYS, finishedJob, jobId, storesOn, sweepDeps, sweepUntilDone, uploadFile, type Stores } from './support';
import { COUNTER_SHARDS } from '../../src/azure/batchProgress';

let azurite: RunningAzurite;

before(async () => {
  azurite = await startAzurite({ inMemory: true });
});

after(async () => {
  await azurite?.stop();
});

function batchRecord(createdAt: number, lines: number, status: BatchRecord['status'] = 'completed'): BatchRecord {
  return {
    id: newBatchId(createdAt), status, endpoint: '/v1/chat/completions', inputFileId: 'file-x', completionWindow: '24h', metadata: {}, team: 'default',
    jobIds: 2, createdAt, expiresAt: createdAt + DAYS(1), total: lines, counts: emptyCounts(), cursorLines: lines, cursorBytes: 0, cursorLineNo: lines + 1,
  };
}

/** A batch with `lines` line jobs (in their grouped partitions) and completion markers. */
async function storeBatch(s: Stores, createdAt: number, lines: number): Promise<{ batch: BatchRecord; jobIds: string[] }> {
  const batch = batchRecord(createdAt, lines);
  await s.batches.create(batch);
  const ids = Array.from({ length: lines }, (_, i) => lineJobId(batch, `req-${i}`, i + 1));
  await s.jobs.createMany(ids.map((id, i) => finishedJob(id, createdAt + 60_000, i === 0, { batchId: batch.id, customId: `req-${i}` })));
  await s.batches.markLines(batch.id, ids.map((_, i) => ({ customId: `req-${i}`, outcome: 'succeeded' as const })));
  return { batch, jobIds: ids };
}

test('expired jobs, payload blobs, batches, files and usage rows are deleted; live ones stay', { timeout: 120_000 }, async () => {
  const s = storesOn(azurite);
  const now = Date.now();
  // Jobs a worker finished: each has a usage row in the minute it finished.
  const oldJobs = [jobId(1), jobId(2)];
  const liveJobs = [jobId(3)];
  for (const [i, id] of oldJobs.entries()) {
    const job = finishedJob(id, now - DAYS(40) + i * 60_000, true);
    await s.jobs.create(job);
    await s.usage.insert(buildUsageRow(job, job.completedAt!));
  }
  const live = finishedJob(liveJobs[0]!, now - DAYS(29), true);
  await s.jobs.create(live);
  await s.usage.insert(buildUsageRow(live, live.completedAt!));
  // A job still queued is never deleted, whatever its age (it has no usage row anyway).
  await s.jobs.create(finishedJob(jobId(4), now - DAYS(90), false, { status: 'queued', completedAt: undefined }));
  // Usage rows past 400 days (their jobs long gone) and one inside it.
  const ancient = finishedJob(jobId(5), now - DAYS(401));
  const yearOld = finishedJob(jobId(6), now - DAYS(380));
  await s.usage.insert(buildUsageRow(ancient, ancient.completedAt!));
  await s.usage.insert(buildUsageRow(yearOld, yearOld.completedAt!));
  // Batches: an old finished one with 150 lines (two job partitions), a recent one.
  const oldBatch = await storeBatch(s, now - DAYS(31), 150);
  const newBatch = await storeBatch(s, now - DAYS(2), 3);
  // Files: old upload, old batch output, a recent upload, and a recent one whose own expires_after has passed.
  const oldUpload = await uploadFile(s.files, now - DAYS(31));
  const oldOutput = await uploadFile(s.files, now - DAYS(31), 'batch_output');
  const liveUpload = await uploadFile(s.files, now - DAYS(1));
  const shortLived = await uploadFile(s.files, now - 2 * 3_600_000);
  await s.files.setExpiresAt(shortLived.id, now - 3_600_000);
  assert.ok((await s.payloadNames()).some((n) => n.startsWith('requests/')), 'big prompts live in payload blobs');

  const results = await sweepUntilDone(s, now, 1000, runRetentionSweep);
  const deleted = results.reduce((sum, r) => ({
    jobs: sum.jobs + r.deleted.jobs, batches: sum.batches + r.deleted.batches, batchLines: sum.batchLines + r.deleted.batchLines,
    files: sum.files + r.deleted.files, usageRows: sum.usageRows + r.deleted.usageRows,
  }), { jobs: 0, batches: 0, batchLines: 0, files: 0, usageRows: 0 });
  // The batch's partition: 300 line markers and the progress counter rows (at most COUNTER_SHARDS) go with it.
  const { batchLines, ...rest } = deleted;
  assert.deepEqual(rest, { jobs: 2, batches: 1, files: 3, usageRows: 1 });
  assert.ok(batchLines >= 300 && batchLines <= 300 + COUNTER_SHARDS, `${batchLines} rows of the batch's partition`);

  for (const id of oldJobs) assert.equal(await s.jobs.get(id), undefined, `${id} deleted`);
  for (const id of oldBatch.jobIds) assert.equal(await s.jobs.get(id, { withRequest: false }), undefined, `line job ${id} deleted`);
  assert.ok(await s.jobs.get(liveJobs[0]!), 'a job 29 days after it finished stays');
  assert.ok(await s.jobs.get(jobId(4), { withRequest: false }), 'a queued job stays');
  for (const id of newBatch.jobIds) assert.ok(await s.jobs.get(id, { withRequest: false }), 'a recent batch line stays');
  const payloads = await s.payloadNames();
  for (const id of [...oldJobs, oldBatch.jobIds[0]!]) assert.ok(!payloads.some((n) => n.includes(id)), `payloads of ${id} deleted`);
  assert.deepEqual(payloads, [`requests/${liveJobs[0]}.json`, `requests/${newBatch.jobIds[0]}.json`, `responses/${liveJobs[0]}.json`, `responses/${newBatch.jobIds[0]}.json`].sort());

  assert.equal(await s.batches.get(oldBatch.batch.id), undefined, 'the old batch record is deleted');
  assert.equal(await s.batchRetention.deleteLineRows(oldBatch.batch.id, 10), 0, 'and its line markers');
  assert.ok(await s.batches.get(newBatch.batch.id), 'the recent batch stays');
  assert.equal((await s.batches.countLines(newBatch.batch)).succeeded, 3);

  assert.deepEqual(await s.fileNames(), [liveUpload.id]);
  for (const f of [oldUpload, oldOutput, shortLived]) assert.equal(await s.files.get(f.id), undefined);

  const usageLeft = await s.usage.keysBefore('~', undefined, 100);
  assert.deepEqual(usageLeft.map((k) => k.rk).sort(), [...oldJobs, liveJobs[0]!, jobId(6)].sort(), 'usage rows within 400 days stay (the jobs they count may be gone)');
});

test('each run looks at no more than its bound and resumes from its cursor; each expired job is handled once', { timeout: 120_000 }, async () => {
  const s = storesOn(azurite);
  const now = Date.now();
  const n = 45;
  for (let i = 0; i < n; i += 1) {
    const job = finishedJob(jobId(100 + i), now - DAYS(35) + i * 60_000);
    await s.jobs.create(job);
    await s.usage.insert(buildUsageRow(job, job.completedAt!));
  }
  const files = await Promise.all(Array.from({ length: 12 }, (_, i) => uploadFile(s.files, now - DAYS(40) - i)));
  const handled = new Map<string, number>();
  const counting = async (deps: RetentionDeps) => {
    const inner = deps.jobs.deleteIfFinishedBy;
    return runRetentionSweep({
      ...deps,
      jobs: { ...deps.jobs, deleteIfFinishedBy: (id, by) => (handled.set(id, (handled.get(id) ?? 0) + 1), inner(id, by)) },
    });
  };
  const maxRows = 8;
  const results = await sweepUntilDone(s, now, maxRows, counting);
  for (const r of results) assert.ok(r.looked <= maxRows, `a run looked at ${r.looked} > ${maxRows}`);
  assert.ok(results.length >= Math.ceil((n + files.length) / maxRows), `took ${results.length} runs: the work is spread over runs`);
  assert.equal(results.reduce((a, r) => a + r.deleted.jobs, 0), n);
  assert.equal(results.reduce((a, r) => a + r.deleted.files, 0), files.length);
  assert.equal(handled.size, n);
  assert.ok([...handled.values()].every((c) => c === 1), 'no usage row is read twice by the jobs pass');
  const { state } = await s.cursor.read();
  assert.ok(state.jobs, 'the cursor row keeps where the jobs pass stands');
  // A later run finds nothing new to do and reads nothing it already passed.
  const again = await runRetentionSweep(sweepDeps(s, now, maxRows));
  assert.equal(again.deleted.jobs, 0);
  assert.equal(handled.size, n);
});

test('a job re-created under a reused id after its old record expired is kept', { timeout: 60_000 }, async () => {
  const s = storesOn(azurite);
  const now = Date.now();
  const old = finishedJob(jobId(900), now - DAYS(45));
  await s.usage.insert(buildUsageRow(old, old.completedAt!));
  // The old record is gone; an idempotent resubmit made a new job with the same id.
  await s.jobs.create(finishedJob(jobId(900), now - DAYS(1)));
  await sweepUntilDone(s, now, 100, runRetentionSweep);
  assert.ok(await s.jobs.get(jobId(900)), 'the new job stays');
});

test('the batch output a batch writes now expires with the files period', { timeout: 60_000 }, async () => {
  const s = storesOn(azurite);
  const writer = s.files.writer('batch_output.jsonl', 'batch_output');
  await writer.write('{"id":"batch_req_1"}');
  const output = await writer.close();
  await sweepUntilDone(s, Date.now() + DAYS(29), 100, runRetentionSweep);
  assert.ok(await s.files.get(output.id), 'kept for 29 days');
  // A new files pass starts at most hourly: a month later is well past that.
  await sweepUntilDone(s, Date.now() + DAYS(31), 100, runRetentionSweep);
  assert.equal(await s.files.get(output.id), undefined, 'deleted after 30 days');
});
