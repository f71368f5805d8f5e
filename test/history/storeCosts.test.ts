/**
 * What a list call, a batch poll and the rollup's waiting count cost in storage calls, against a real Azurite, on
 * a store holding N prior records and on one holding 10 × N: the counts must be equal (history does not show).
 * Each operation runs once to warm the store (table creation, the one-off index check) before it is counted.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { BatchStore } from '../../src/azure/batchStore';
import { BacklogTable } from '../../src/azure/backlogTable';
import { FileStore } from '../../src/azure/fileStore';
import { JobStore } from '../../src/azure/jobStore';
import { BacklogCounter, WAITING_COUNT } from '../../src/core/backlog';
import { emptyCounts, newBatchId, type BatchRecord } from '../../src/core/batch/model';
import type { JobRecord } from '../../src/core/jobs';
import { countingStorage, type CountingStorage } from '../support/storageCalls';

/** Large enough that the scans these replace would need more pages on the larger store (200 batches, 1,000 markers a page). */
const N = 30;
/** Finished lines of the polled batch per prior record. */
const LINES_PER_RECORD = 40;
const TEAMS = ['mine', 'other-a', 'other-b'];
let azurite: RunningAzurite;

before(async () => {
  azurite = await startAzurite({ inMemory: true });
});
after(async () => {
  await azurite?.stop();
});

function batchRecord(team: string, now: number, over: Partial<BatchRecord> = {}): BatchRecord {
  return {
    id: newBatchId(now),
    status: 'completed',
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

function job(i: number, team: string, now: number): JobRecord {
  return {
    id: `job_${i.toString(16).padStart(32, '0')}`,
    status: 'queued',
    priority: 'interactive',
    model: 'gpt-4o-mini',
    team,
    request: { messages: [] },
    metadata: {},
    createdAt: now,
    attempts: 0,
    promptTokens: 10,
    maxOutputTokens: 10,
    regionsTried: [],
    throttles: 0,
  };
}

interface Costs {
  listBatches: number;
  listBatchesAdmin: number;
  pollBatch: number;
  listFiles: number;
  listFilesByPurpose: number;
  waitingCount: number;
}

/** A store with `records` prior batches, files, finished lines and finished jobs spread over three teams, and the cost of each operation on it. */
async function costsWith(records: number, tag: string): Promise<Costs> {
  const storage: CountingStorage = countingStorage(azurite.connectionString);
  const batches = new BatchStore(storage.table(`batches${tag}`));
  const files = new FileStore(storage.container(`files${tag}`), storage.table(`batches${tag}`));
  const now = Date.now();
  for (let i = 0; i < records; i += 1) await batches.create(batchRecord(TEAMS[i % TEAMS.length]!, now - i * 1000));
  const lines = records * LINES_PER_RECORD;
  const running = batchRecord('mine', now, { status: 'in_progress', total: lines });
  await batches.create(running);
  await batches.markLines(running.id, Array.from({ length: lines }, (_, i) => ({ customId: `req-${i}`, outcome: i % 5 === 0 ? 'failed' : 'succeeded' })));
  for (let i = 0; i < records; i += 1) {
    await files.upload(Readable.from([`{"line":${i}}\n`]), `in-${i}.jsonl`, 'batch', { maxBytes: 1 << 20, maxLines: 10 }, now - i * 1000, TEAMS[i % TEAMS.length]!);
  }
  const waiting = new BacklogCounter(new BacklogTable(storage.table(`backlog${tag}`), 'waiting'), {
    ...WAITING_COUNT,
    now: Date.now,
    flushMs: 60_000,
    schedule: () => undefined,
  });
  const jobs = new JobStore(storage.table(`jobs${tag}`), storage.container(`payloads${tag}`), (j, delta) => waiting.add(j.team, j.createdAt, delta));
  for (let i = 0; i < records; i += 1) {
    const j = job(i, TEAMS[i % TEAMS.length]!, now);
    await jobs.create(j);
    const read = (await jobs.get(j.id))!;
    // Every prior job waited for quota once and then finished.
    const etag = await jobs.replace({ ...read.job, status: 'waiting', notBefore: now }, read.etag);
    await jobs.replace({ ...read.job, status: 'succeeded', notBefore: undefined, completedAt: now }, etag);
  }
  // Two jobs are waiting now, in both stores.
  for (const i of [records + 1, records + 2]) {
    const j = job(i, 'mine', now);
    await jobs.create(j);
    const read = (await jobs.get(j.id))!;
    await jobs.replace({ ...read.job, status: 'waiting', notBefore: now + 60_000 }, read.etag);
  }

  const measure = async <T>(op: () => Promise<T>, check: (result: T) => void): Promise<number> => {
    await op(); // warm: tables exist, the one-off index check is done
    const { calls, result } = await storage.countCalls(op);
    check(result);
    return calls;
  };
  return {
    listBatches: await measure(() => batches.list({ team: 'mine', limit: 3 }), (p) => {
      assert.equal(p.data.length, 3);
      assert.ok(p.data.every((b) => b.team === 'mine'));
      assert.equal(p.hasMore, true);
    }),
    listBatchesAdmin: await measure(() => batches.list({ limit: 3 }), (p) => assert.equal(p.data.length, 3)),
    pollBatch: await measure(() => batches.countLines(running), (c) => {
      assert.equal(c.succeeded + c.failed, lines);
      assert.equal(c.failed, Math.ceil(lines / 5));
    }),
    listFiles: await measure(() => files.list({ team: 'mine', limit: 3 }), (p) => {
      assert.equal(p.data.length, 3);
      assert.ok(p.data.every((f) => f.team === 'mine'));
    }),
    listFilesByPurpose: await measure(() => files.list({ team: 'mine', purpose: 'batch', limit: 3 }), (p) => assert.equal(p.data.length, 3)),
    waitingCount: await measure(() => waiting.total(), (n) => assert.equal(n, 2)),
  };
}

test('list, poll and the waiting count cost the same storage calls with 10 × the history', async () => {
  const small = await costsWith(N, 'small');
  const large = await costsWith(10 * N, 'large');
  console.log(`storage calls per operation: ${JSON.stringify({ small, large })}`);
  assert.deepEqual(large, small);
  // And each is a handful of calls: a page of index rows plus the page's records, one query for a poll.
  assert.equal(small.pollBatch, 1);
  assert.equal(small.listFiles, 2, 'one key-range query per purpose');
  assert.equal(small.listFilesByPurpose, 1);
  assert.equal(small.listBatches, 1 + 3, 'the index page, then one read per batch');
  assert.equal(small.listBatchesAdmin, 1);
});
