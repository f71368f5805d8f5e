/** The retention sweep wired to real stores on an Azurite the test started, with a clock the test sets. */
import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import type { RunningAzurite } from '../../local/azurite';
import { storageClients } from '../../src/azure/storage';
import { JobStore } from '../../src/azure/jobStore';
import { BatchRetention, BatchStore } from '../../src/azure/batchStore';
import { FileStore } from '../../src/azure/fileStore';
import { UsageTable } from '../../src/azure/usageTable';
import { RollupTable } from '../../src/azure/rollupTable';
import { RetentionCursorTable, retentionPorts } from '../../src/azure/retentionTable';
import { DAY_MS, type RetentionPolicy } from '../../src/core/retention/policy';
import type { RetentionDeps } from '../../src/core/retention/sweep';
import type { FilePurpose, FileRecord } from '../../src/core/batch/model';
import type { JobRecord } from '../../src/core/jobs';
import { newJob } from '../support/fakes';

export const POLICY: RetentionPolicy = { jobsDays: 30, usageDays: 400, filesDays: 30 };
export const DAYS = (n: number) => n * DAY_MS;

export interface Stores {
  jobs: JobStore;
  batches: BatchStore;
  batchRetention: BatchRetention;
  files: FileStore;
  usage: UsageTable;
  rollup: RollupTable;
  cursor: RetentionCursorTable;
  payloadNames(): Promise<string[]>;
  fileNames(): Promise<string[]>;
}

/** Stores on fresh, uniquely named tables and containers, so tests in one Azurite do not see each other. */
export function storesOn(azurite: RunningAzurite): Stores {
  const storage = storageClients({ connectionString: azurite.connectionString });
  const tag = randomUUID().replace(/-/g, '').slice(0, 10);
  const payloads = storage.container(`payloads-${tag}`);
  const filesContainer = storage.container(`files-${tag}`);
  const batches = new BatchStore(storage.table(`batches${tag}`));
  const names = async (c: typeof payloads) => {
    const out: string[] = [];
    for await (const b of c.listBlobsFlat()) out.push(b.name);
    return out.sort();
  };
  return {
    jobs: new JobStore(storage.table(`jobs${tag}`), payloads),
    batches,
    batchRetention: new BatchRetention(batches, storage.table(`batches${tag}`)),
    files: new FileStore(filesContainer, storage.table(`batches${tag}`)),
    usage: new UsageTable(storage.table(`usage${tag}`)),
    rollup: new RollupTable(storage.table(`rollup${tag}`)),
    cursor: new RetentionCursorTable(storage.table(`retention${tag}`)),
    payloadNames: () => names(payloads),
    fileNames: () => names(filesContainer),
  };
}

/** Sweep deps at time `now` with at most `maxRows` per run; a fresh object each call, as each timer run builds. */
export function sweepDeps(s: Stores, now: number, maxRows = 1000, policy = POLICY): RetentionDeps {
  return {
    policy,
    maxRows,
    clock: { now: () => now },
    ...retentionPorts({ cursor: s.cursor, jobs: s.jobs, batches: s.batchRetention, files: s.files, usage: s.usage, rollup: s.rollup }),
  };
}

/** A finished job (large enough prompt and answer to live in payload blobs when `big`). */
export function finishedJob(id: string, completedAt: number, big = false, over: Partial<JobRecord> = {}): JobRecord {
  const text = big ? 'x'.repeat(40_000) : 'hi';
  return newJob({
    id,
    status: 'succeeded',
    createdAt: completedAt - 5_000,
    startedAt: completedAt - 2_000,
    completedAt,
    request: { messages: [{ role: 'user', content: text }], max_tokens: 10 },
    response: { choices: [{ message: { role: 'assistant', content: text }, finish_reason: 'stop' }] },
    usage: { prompt_tokens: 10, completion_tokens: 5 },
    region: 'sim',
    deployment: 'chat',
    ...over,
  });
}

export function jobId(n: number): string {
  return `job_${n.toString(16).padStart(32, '0')}`;
}

export async function uploadFile(files: FileStore, createdAt: number, purpose: FilePurpose = 'batch', team = 'default'): Promise<FileRecord> {
  return files.upload(Readable.from([Buffer.from('{"a":1}\n')]), 'in.jsonl', purpose, { maxBytes: 1_000_000, maxLines: 100 }, createdAt, team);
}

/** Runs the sweep until a run deletes nothing and moves no cursor; returns each run's result. */
export async function sweepUntilDone(s: Stores, now: number, maxRows: number, run: (deps: RetentionDeps) => Promise<import('../../src/core/retention/sweep').SweepResult>) {
  const results = [];
  for (let i = 0; i < 200; i += 1) {
    const before = JSON.stringify((await s.cursor.read()).state);
    const r = await run(sweepDeps(s, now, maxRows));
    results.push(r);
    const total = Object.values(r.deleted).reduce((a, b) => a + b, 0);
    if (total === 0 && JSON.stringify((await s.cursor.read()).state) === before) return results;
  }
  throw new Error('the sweep did not settle in 200 runs');
}
