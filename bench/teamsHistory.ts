/**
 * bench:teams, phase 2 — do storage calls per operation depend on history? And what does retention sweep?
 *
 * Azurite only, the real stores of src/azure on counting clients (test/support/storageCalls.ts). The same workload
 * runs on an empty store and on one loaded with BENCH_HISTORY_JOBS finished jobs (default 200,000, each with its usage
 * row), BENCH_HISTORY_FILES files (2,000) and BENCH_HISTORY_BATCHES finished batches (500, with
 * BENCH_HISTORY_BATCH_LINES line markers each, default 20) from 50 teams, written directly (table transactions, blob
 * uploads), not through the API. Half of the jobs, files and batches are 40 days old (past the default retention),
 * and a tenth as many usage rows are 401 days old; a twentieth more jobs (at most 6,000) finished in the last hour,
 * from every team, and are rolled up, so that usage queries and month-to-date figures meet other teams' rows. Each
 * operation runs once to warm the store (tables exist, one-off index checks done), then once counted. Last, the
 * retention sweep runs on the loaded store until it is done.
 */
import { Readable } from 'node:stream';
import { startAzurite, type RunningAzurite } from '../local/azurite';
import { loadConfig } from '../src/config';
import { BacklogTable } from '../src/azure/backlogTable';
import { BatchRetention, BatchStore } from '../src/azure/batchStore';
import { FileStore } from '../src/azure/fileStore';
import { JobQueue } from '../src/azure/jobQueue';
import { TeamQueueTable } from '../src/azure/teamQueueTable';
import { Dispatcher } from '../src/core/dispatch/dispatcher';
import { teamQueueIntake } from '../src/runtime/dispatch';
import { JobStore } from '../src/azure/jobStore';
import { RetentionCursorTable, retentionPorts } from '../src/azure/retentionTable';
import { RollupTable } from '../src/azure/rollupTable';
import { UsageTable } from '../src/azure/usageTable';
import { BacklogCounter, WAITING_COUNT } from '../src/core/backlog';
import { emptyCounts, newBatchId, type BatchRecord } from '../src/core/batch/model';
import { forEachLimit } from '../src/core/batch/pool';
import { enqueueJob, storeJob } from '../src/core/intake';
import { DAY_MS, jobsFinishedBy } from '../src/core/retention/policy';
import { runRetentionSweep, type SweepResult } from '../src/core/retention/sweep';
import { prepareJob } from '../src/core/submit';
import { runRollup, WATERMARK } from '../src/core/telemetry/rollup';
import { monthStatus, parseUsageQuery, queryUsage } from '../src/core/telemetry/query';
import { buildUsageRow } from '../src/core/telemetry/usage';
import { countingStorage, type CountingStorage } from '../test/support/storageCalls';
import { finishedJob } from '../test/retention/support';
import { knob } from './report';

const int = (name: string, full: number, smoke: number) => Math.max(1, Math.floor(knob(name, full, smoke)));
const JOBS = int('BENCH_HISTORY_JOBS', 200_000, 400);
const FILES = int('BENCH_HISTORY_FILES', 2_000, 20);
const BATCHES = int('BENCH_HISTORY_BATCHES', 500, 10);
const BATCH_LINES = int('BENCH_HISTORY_BATCH_LINES', 20, 5);
const HISTORY_TEAMS = 50;
/** Lines of the running batch the workload polls (the same in both stores). */
const RUNNING_LINES = 200;
/** Usage rows the workload's rollup minute closes. */
const MINUTE_ROWS = 50;
const MINE = 'team-00';
/** The page size of the listings (the OpenAI default). */
const PAGE = 20;
const teamOf = (i: number) => `team-${String(i % HISTORY_TEAMS).padStart(2, '0')}`;

export interface OperationCost {
  operation: string;
  empty: number;
  loaded: number;
}

export interface HistoryResult {
  operations: OperationCost[];
  ratioMax: number;
  loadS: number;
  /** Seconds each part of the history took to load. */
  loadSteps: Record<string, number>;
  sweptRows: number;
  sweepDeleted: SweepResult['deleted'];
  sweepCalls: number;
  sweepRuns: number;
  sweepS: number;
  totalS: number;
}

interface Stores {
  storage: CountingStorage;
  jobs: JobStore;
  teamQueues: TeamQueueTable;
  runQueue: JobQueue;
  batches: BatchStore;
  batchRetention: BatchRetention;
  files: FileStore;
  usage: UsageTable;
  rollup: RollupTable;
  cursor: RetentionCursorTable;
  waiting: BacklogCounter;
}

/** The app's settings with their defaults (retention, rollup), and one endpoint so that submit knows the model. */
function benchConfig() {
  const endpoint = { region: 'bench', endpoint: 'http://127.0.0.1:9', deployment: 'chat', model: 'gpt-4o-mini', priority: 1, tpm: 300_000, rpm: 3_000, auth: 'key', apiKey: 'unused' };
  return loadConfig({ ...process.env, AzureWebJobsStorage: 'UseDevelopmentStorage=true', SLUICE_ENDPOINTS: JSON.stringify([endpoint]) });
}

function storesFor(connectionString: string, tag: string): Stores {
  const storage = countingStorage(connectionString);
  const waiting = new BacklogCounter(new BacklogTable(storage.table(`backlog${tag}`), 'waiting'), { ...WAITING_COUNT, now: Date.now, flushMs: 60_000, schedule: () => undefined });
  const batches = new BatchStore(storage.table(`batches${tag}`));
  return {
    storage,
    jobs: new JobStore(storage.table(`jobs${tag}`), storage.container(`payloads-${tag}`), (j, delta) => waiting.add(j.team, j.createdAt, delta)),
    teamQueues: new TeamQueueTable(storage.table(`teamqueues${tag}`)),
    runQueue: new JobQueue(storage.queue(`jobs-${tag}`)),
    batches,
    batchRetention: new BatchRetention(batches, storage.table(`batches${tag}`)),
    files: new FileStore(storage.container(`files-${tag}`), storage.table(`batches${tag}`)),
    usage: new UsageTable(storage.table(`usage${tag}`)),
    rollup: new RollupTable(storage.table(`rollup${tag}`)),
    cursor: new RetentionCursorTable(storage.table(`retention${tag}`)),
    waiting,
  };
}

function batchRecord(team: string, createdAt: number, over: Partial<BatchRecord> = {}): BatchRecord {
  return {
    id: newBatchId(createdAt), status: 'completed', endpoint: '/v1/chat/completions', inputFileId: 'file-0', completionWindow: '24h', metadata: {}, team,
    createdAt, expiresAt: createdAt + DAY_MS, total: 0, counts: emptyCounts(), lineCounters: true, cursorLines: 0, cursorBytes: 0, cursorLineNo: 1, ...over,
  };
}

const upload = (s: Stores, i: number, createdAt: number, team: string) =>
  s.files.upload(Readable.from([`{"line":${i}}\n`]), `in-${i}.jsonl`, i % 4 === 0 ? 'batch_output' : 'batch', { maxBytes: 1 << 20, maxLines: 10 }, createdAt, team);

const SINK = { metric: () => undefined, event: () => undefined, flush: async () => undefined };

/** Runs the rollup at `now` until it has closed every window it may. */
async function rollUp(s: Stores, now: () => number, initialLookbackMs: number): Promise<void> {
  const settings = benchConfig().telemetry;
  for (let i = 0; i < 100; i += 1) {
    const r = await runRollup({ usage: s.usage, state: s.rollup, sink: SINK, clock: { now }, settings, endpoints: [], log: () => undefined, initialLookbackMs });
    if (r.closed.length === 0 && !r.busy) return;
  }
}

/** History: finished jobs with usage rows, files, finished batches with line markers, ancient usage rows. */
async function load(s: Stores, now: number): Promise<Record<string, number>> {
  const timings: Record<string, number> = {};
  const lap = (name: string, from: number) => (timings[name] = (Date.now() - from) / 1000);
  const old = now - 40 * DAY_MS;
  const recent = now - 10 * DAY_MS;
  // Jobs in partitions of 100 (grouped ids, as batch lines are stored), so that loading is one transaction a
  // partition; a thousand a minute, so that their usage rows fill transactions too. The first half of the minutes
  // are 40 days ago, the second half 10 days ago.
  const minutes = Math.ceil(JOBS / 1000);
  let loaded = 0;
  await forEachLimit(Array.from({ length: minutes }, (_, m) => m), 4, async (m) => {
    const base = (m < minutes / 2 ? old : recent) + (m % Math.ceil(minutes / 2)) * 60_000;
    const jobs = Array.from({ length: Math.min(1000, JOBS - m * 1000) }, (_, k) => {
      const n = m * 1000 + k;
      const id = `job_${Math.floor(n / 100).toString(16).padStart(16, '0')}_${(n % 100).toString(16).padStart(24, '0')}`;
      return finishedJob(id, base + k * 50, n % 1000 === 0, { team: teamOf(n) });
    });
    await s.jobs.createMany(jobs);
    await s.usage.insertBatch(jobs.map((j) => buildUsageRow(j, j.completedAt!)));
    loaded += jobs.length;
    process.stderr.write(`\r[history] ${loaded} of ${JOBS} jobs loaded`);
  });
  process.stderr.write('\n');
  lap('jobs and their usage rows', now);
  let from = Date.now();
  // Usage rows past the usage retention (400 days), their jobs long gone.
  const ancient = Math.ceil(JOBS / 10);
  await forEachLimit(Array.from({ length: Math.ceil(ancient / 1000) }, (_, m) => m), 8, (m) =>
    s.usage.insertBatch(Array.from({ length: Math.min(1000, ancient - m * 1000) }, (_, i) => {
      const j = finishedJob(`job_${'f'.repeat(8)}${m.toString(16).padStart(8, '0')}_${i.toString(16).padStart(24, '0')}`, now - 401 * DAY_MS + m * 60_000 + i * 50, false, { team: teamOf(i) });
      return buildUsageRow(j, j.completedAt!);
    })),
  );
  // The last hour: jobs of every team, rolled up as the rollup timer does, so that usage queries and month-to-date
  // figures read other teams' rows in the loaded store.
  const lastHour = Math.min(6_000, Math.ceil(JOBS / 20));
  const hourJobs = Array.from({ length: lastHour }, (_, i) =>
    finishedJob(`job_${'d'.repeat(8)}${Math.floor(i / 100).toString(16).padStart(8, '0')}_${i.toString(16).padStart(24, '0')}`, now - 3_300_000 + Math.floor((i * 3_000_000) / lastHour), false, { team: teamOf(i) }),
  );
  await s.jobs.createMany(hourJobs);
  await forEachLimit(Array.from({ length: Math.ceil(lastHour / 500) }, (_, c) => hourJobs.slice(c * 500, c * 500 + 500)), 8, (chunk) => s.usage.insertBatch(chunk.map((j) => buildUsageRow(j, j.completedAt!))));
  await rollUp(s, Date.now, 3_600_000);
  lap('old usage rows, the last hour rolled up', from);
  from = Date.now();
  await forEachLimit(Array.from({ length: FILES }, (_, i) => i), 16, async (i) => void (await upload(s, i, (i % 2 ? old : recent) + i * 1000, teamOf(i))));
  lap('files', from);
  from = Date.now();
  await forEachLimit(Array.from({ length: BATCHES }, (_, i) => i), 16, async (i) => {
    const b = batchRecord(teamOf(i), (i % 2 ? old : recent) + i * 1000, { total: BATCH_LINES });
    await s.batches.create(b);
    await s.batches.markLines(b.id, Array.from({ length: BATCH_LINES }, (_, l) => ({ customId: `req-${l}`, outcome: 'succeeded' as const })));
  });
  lap('batches', from);
  return timings;
}

/** An operation that answers wrongly would make its count meaningless: the bench stops instead. */
function expect(operation: string, ok: boolean): void {
  if (!ok) throw new Error(`${operation}: unexpected answer`);
}

/** A team listing: a full page of the team's own objects, with more after it. */
function fullPage(operation: string, page: { data: Array<{ team: string }>; hasMore: boolean }): void {
  expect(operation, page.data.length === PAGE && page.hasMore && page.data.every((o) => o.team === MINE));
}

/** The workload, each operation warmed once then counted; `now` is the same instant for both stores. */
async function workload(s: Stores, now: number): Promise<Record<string, number>> {
  const config = benchConfig();
  const policy = config.retention;
  // This team's own recent objects, the same in both stores and more than a page of each, so that every listing
  // returns full pages in both and only what else is stored differs.
  for (let i = 0; i < PAGE + 5; i += 1) await upload(s, 1_000_000 + i, now - i * 1000, MINE);
  for (let i = 0; i < PAGE + 5; i += 1) await s.batches.create(batchRecord(MINE, now - i * 1000));
  const running = batchRecord(MINE, now, { status: 'in_progress', total: RUNNING_LINES });
  await s.batches.create(running);
  await s.batches.markLines(running.id, Array.from({ length: RUNNING_LINES }, (_, i) => ({ customId: `req-${i}`, outcome: i % 5 === 0 ? ('failed' as const) : ('succeeded' as const) })));

  let submitted = 0;
  const intake = teamQueueIntake(s.teamQueues);
  const dispatcher = new Dispatcher({
    store: s.teamQueues,
    run: { send: (m) => s.runQueue.send(m), depth: () => s.runQueue.depth() },
    now: Date.now,
    quotaOf: () => ({ tpm: 300_000, rpm: 3_000 }),
    weightOf: () => 1,
  });
  const submitOne = async () => {
    const job = prepareJob({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hello ${submitted++}` }], max_tokens: 20 } } as never, { models: config.models, now: Date.now(), team: MINE });
    const stored = await storeJob(s.jobs, job);
    if (stored.kind !== 'created') throw new Error(`submit: ${stored.kind}`);
    // As submit does: the job's entry in its team queue, then the team's marker.
    await enqueueJob({ send: (m) => intake.send(job, { replay: m.replay === true }) }, s.jobs, job, stored.etag, { warn: (m) => console.error(m) });
    return job.id;
  };
  const polled = await submitOne();
  const usageQuery = async () => {
    const q = parseUsageQuery(new URLSearchParams(), now, MINE);
    await Promise.all([queryUsage(s.rollup, q), monthStatus(s.rollup, config.telemetry, now), s.rollup.get(WATERMARK.partition, WATERMARK.row)]);
  };
  // The rollup: a first run sets the watermark; each counted run then closes the minute the workload wrote rows in.
  const minute = Math.floor(now / 60_000) * 60_000;
  let rollupAt = minute;
  /** Writes a minute of usage rows (50 teams' jobs), uncounted; the counted part is the run that closes it. */
  const writeMinute = async () => {
    const rows = Array.from({ length: MINUTE_ROWS }, (_, i) => finishedJob(`job_${'e'.repeat(8)}${(rollupAt / 60_000).toString(16).padStart(8, '0')}_${i.toString(16).padStart(24, '0')}`, rollupAt + i * 100, false, { team: teamOf(i) }));
    await s.usage.insertBatch(rows.map((j) => buildUsageRow(j, j.completedAt!)));
    rollupAt += 60_000;
  };
  const rollupMinute = () =>
    runRollup({
      usage: s.usage, state: s.rollup, sink: SINK, clock: { now: () => rollupAt + config.telemetry.latenessMs + 1_000 }, settings: config.telemetry, endpoints: [],
      log: () => undefined, gauges: async () => [{ name: 'waiting', value: await s.waiting.total(), properties: {} }], initialLookbackMs: lookbackMs,
    });
  // The first run starts a minute before the newest closable window, in both stores (the loaded one has one already).
  const lookbackMs = config.telemetry.latenessMs + 2 * 60_000;
  await rollUp(s, () => minute, lookbackMs);

  // Each operation, and what must happen (uncounted) before each of its two runs.
  const ops: Record<string, (() => Promise<unknown>) | { before: () => Promise<unknown>; run: () => Promise<unknown> }> = {
    'submit': submitOne,
    'dispatcher tick (one job waiting)': { before: submitOne, run: () => dispatcher.tick() },
    'job status poll': async () => expect('job status poll', (await s.jobs.get(polled, { withRequest: false, finishedBy: jobsFinishedBy(policy, now) }))?.job.id === polled),
    'list files': async () => fullPage('list files', await s.files.list({ team: MINE, limit: PAGE })),
    'list files (purpose)': () => s.files.list({ team: MINE, purpose: 'batch', limit: PAGE }),
    'list files (admin)': () => s.files.list({ limit: PAGE }),
    'list batches': async () => fullPage('list batches', await s.batches.list({ team: MINE, limit: PAGE })),
    'list batches (admin)': () => s.batches.list({ limit: PAGE }),
    'batch status poll': async () => {
      const c = await s.batches.countLines((await s.batches.get(running.id))!.batch);
      expect('batch status poll', c.succeeded + c.failed === RUNNING_LINES);
    },
    'usage query': usageQuery,
    'waiting count': () => s.waiting.total(),
    'rollup minute (50 teams)': { before: writeMinute, run: rollupMinute },
  };
  const costs: Record<string, number> = {};
  for (const [name, op] of Object.entries(ops)) {
    const { before, run } = typeof op === 'function' ? { before: async () => undefined, run: op } : op;
    await before();
    await run();
    await before();
    costs[name] = (await s.storage.countCalls(run)).calls;
  }
  return costs;
}

/** Runs the sweep as its timer does until a run deletes nothing and its cursor stands still. */
async function sweep(s: Stores): Promise<{ deleted: SweepResult['deleted']; calls: number; runs: number }> {
  const config = benchConfig();
  const deleted = { jobs: 0, batches: 0, batchLines: 0, files: 0, usageRows: 0 };
  const before = s.storage.counter.table + s.storage.counter.blob + s.storage.counter.queue;
  const ports = retentionPorts({ cursor: s.cursor, jobs: s.jobs, batches: s.batchRetention, files: s.files, usage: s.usage, rollup: s.rollup });
  let runs = 0;
  for (; runs < 100_000; runs += 1) {
    const cursorBefore = JSON.stringify((await s.cursor.read()).state);
    const r = await runRetentionSweep({ policy: config.retention, maxRows: config.retention.sweepMaxRows, clock: { now: Date.now }, ...ports });
    for (const k of Object.keys(deleted) as Array<keyof typeof deleted>) deleted[k] += r.deleted[k];
    if (runs % 10 === 0) process.stderr.write(`\r[history] sweep run ${runs + 1}: ${JSON.stringify(deleted)}`);
    if (Object.values(r.deleted).every((n) => n === 0) && JSON.stringify((await s.cursor.read()).state) === cursorBefore) break;
  }
  process.stderr.write('\n');
  return { deleted, calls: s.storage.counter.table + s.storage.counter.blob + s.storage.counter.queue - before, runs: runs + 1 };
}

export async function runHistoryPhase(): Promise<HistoryResult> {
  const t0 = Date.now();
  const azurite: RunningAzurite = await startAzurite({ inMemory: true });
  try {
    const empty = storesFor(azurite.connectionString, 'empty');
    const loaded = storesFor(azurite.connectionString, 'loaded');
    const loadStart = Date.now();
    const loadSteps = await load(loaded, Date.now());
    const loadS = (Date.now() - loadStart) / 1000;
    const now = Date.now();
    const emptyCosts = await workload(empty, now);
    const loadedCosts = await workload(loaded, now);
    const operations = Object.keys(emptyCosts).map((operation) => ({ operation, empty: emptyCosts[operation]!, loaded: loadedCosts[operation]! }));
    const ratioMax = Math.max(...operations.map((o) => o.loaded / Math.max(1, o.empty)));
    const sweepStart = Date.now();
    const swept = await sweep(loaded);
    const sweepS = (Date.now() - sweepStart) / 1000;
    return {
      operations,
      ratioMax,
      loadS,
      loadSteps,
      sweptRows: Object.values(swept.deleted).reduce((a, b) => a + b, 0),
      sweepDeleted: swept.deleted,
      sweepCalls: swept.calls,
      sweepRuns: swept.runs,
      sweepS,
      totalS: (Date.now() - t0) / 1000,
    };
  } finally {
    await azurite.stop();
  }
}
