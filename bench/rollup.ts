/**
 * bench:rollup — the real rollup over one minute window of 20,000 and then 200,000 usage rows in Azurite.
 * Rows are written with batch transactions (100 per batch, one partition per batch). Each rollup runs in a fresh
 * child process that samples its own memory, so the figures are the rollup's alone: time, peak RSS growth over the
 * child's baseline, peak heap. Percentiles the rollup sent are compared with exact ones computed here from the same
 * values. Targets: time ratio ≤ 11× for 10× rows, memory ratio ≤ 1.5×.
 * Last line: {"time_ratio","memory_ratio","max_percentile_rel_error","rows_per_s",...}.
 * Options (env): BENCH_ROWS (comma list, default "20000,200000"; BENCH_SMOKE=1: "500,5000").
 */
import { execFileSync } from 'node:child_process';
import { startAzurite } from '../local/azurite';
import { runRollup, WATERMARK, type TelemetrySink } from '../src/core/telemetry/rollup';
import { WINDOW_METRICS } from '../src/core/telemetry/names';
import type { UsageRow } from '../src/core/telemetry/usage';
import { MINUTE_MS, nextWindow, windowOf, windowStart } from '../src/core/telemetry/windows';
import { RollupTable } from '../src/azure/rollupTable';
import { shardOf, toEntity, USAGE_SHARDS, UsageTable } from '../src/azure/usageTable';
import { tableClientFromConnectionString } from '../test/support/storage';
import { printResult, printTable, SMOKE } from './report';

const WINDOW = '202611231951';
const TEAMS = ['search', 'ads', 'support', 'research'];
const LATENESS_MS = 120_000;
const KINDS = [
  ['queue_wait', 'latencyQueue'],
  ['model', 'latencyModel'],
  ['total', 'latencyTotal'],
] as const;
const QUANTILES = [
  ['p50', 0.5],
  ['p95', 0.95],
  ['p99', 0.99],
] as const;

/** Deterministic PRNG (mulberry32). */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const jobIdOf = (i: number) => `job_${String(i).padStart(8, '0')}`;

function makeRow(i: number, rand: () => number, start: number): UsageRow {
  const queueWaitMs = Math.round(Math.exp(rand() * 9)); // 1 ms … 8 s
  const modelLatencyMs = Math.round(200 + Math.exp(3 + rand() * 6)); // ~220 ms … 3.4 s
  const ok = rand() > 0.02;
  return {
    jobId: jobIdOf(i),
    window: WINDOW,
    team: TEAMS[i % TEAMS.length]!,
    model: 'gpt-4o-mini',
    region: 'swedencentral',
    deployment: 'chat',
    modelVersion: 'gpt-4o-mini-2024-07-18',
    priority: 'interactive',
    status: ok ? 'succeeded' : 'failed',
    errorCode: ok ? '' : 'server_error',
    finishReason: ok ? 'stop' : '',
    promptTokens: 800,
    cachedTokens: i % 3 === 0 ? 512 : 0,
    completionTokens: ok ? 120 : 0,
    reservedOutputTokens: 500,
    reservedUnusedTokens: ok ? 380 : 0,
    estimatedPromptTokens: 790,
    costUsd: ok ? ((800 - (i % 3 === 0 ? 512 : 0)) * 0.15 + (i % 3 === 0 ? 512 : 0) * 0.075 + 120 * 0.6) / 1e6 : 0,
    queueWaitMs,
    modelLatencyMs: ok ? modelLatencyMs : null,
    totalLatencyMs: queueWaitMs + modelLatencyMs + 5,
    attempts: 1,
    throttles: 0,
    regionsTried: 1,
    calls: [['swedencentral', 'chat', ok ? 200 : 500]],
    completedAt: start + Math.floor((i / 1e6) * MINUTE_MS),
    writtenAt: start + Math.floor((i / 1e6) * MINUTE_MS),
  };
}

interface Exact {
  /** team → kind → sorted values */
  [team: string]: Record<string, Float64Array>;
}

/**
 * Writes shard partition by shard partition, 100 rows per transaction. (Azurite keeps a sorted index on
 * PartitionKey; interleaving partitions makes every insert shift it, which is quadratic in the emulator only.)
 */
async function writeRows(conn: string, table: string, n: number): Promise<{ exact: Exact; seconds: number }> {
  const usage = new UsageTable(tableClientFromConnectionString(conn, table));
  await usage.ensureTable();
  const start = windowStart(WINDOW);
  const values: Record<string, Record<string, number[]>> = {};
  for (const t of TEAMS) values[t] = { queue_wait: [], model: [], total: [] };
  const shardOfRow = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) shardOfRow[i] = shardOf(jobIdOf(i));
  const t0 = performance.now();
  for (let shard = 0; shard < USAGE_SHARDS; shard += 1) {
    let batch: Array<ReturnType<typeof toEntity>> = [];
    const flush = async () => {
      if (batch.length) await usage.client.submitTransaction(batch.map((e) => ['create', e] as ['create', typeof e]));
      batch = [];
    };
    for (let i = 0; i < n; i += 1) {
      if (shardOfRow[i] !== shard) continue;
      const r = makeRow(i, prng(i * 7919 + 1), start);
      const v = values[r.team]!;
      v.queue_wait!.push(r.queueWaitMs!);
      if (r.modelLatencyMs !== null) v.model!.push(r.modelLatencyMs);
      v.total!.push(r.totalLatencyMs!);
      batch.push(toEntity(r));
      if (batch.length === 100) await flush();
    }
    await flush();
  }
  const exact: Exact = {};
  for (const [team, kinds] of Object.entries(values)) {
    exact[team] = {};
    for (const [k, arr] of Object.entries(kinds)) exact[team]![k] = Float64Array.from(arr).sort();
  }
  return { exact, seconds: (performance.now() - t0) / 1000 };
}

interface ChildResult {
  rows: number;
  seconds: number;
  baselineRssMb: number;
  peakRssMb: number;
  rssGrowthMb: number;
  peakHeapGrowthMb: number;
  maxRssMb: number;
  /** Peak heap after forced collections, over the baseline (live mode only). */
  liveHeapGrowthMb: number;
  /** team → metric name → value */
  sent: Record<string, Record<string, number>>;
}

/** Runs in the child: one real rollup of WINDOW, sampling memory every 20 ms. */
async function child(conn: string, usageTable: string, rollupTable: string): Promise<void> {
  const usage = new UsageTable(tableClientFromConnectionString(conn, usageTable));
  const state = new RollupTable(tableClientFromConnectionString(conn, rollupTable));
  await state.ensureTable();
  await usage.ensureTable();
  const before = windowOf(windowStart(WINDOW) - MINUTE_MS);
  await state.upsert(WATERMARK.partition, WATERMARK.row, { closedThrough: before, claimWindow: '', claimRun: '', leaseUntil: 0, cut: '', history: '[]' });
  const sent: Record<string, Record<string, number>> = {};
  const sink: TelemetrySink = {
    metric(name, value, p) {
      if (p.team) (sent[p.team] ??= {})[name] = value;
    },
    event() {},
    async flush() {},
  };
  const now = windowStart(nextWindow(WINDOW)) + LATENESS_MS + 1000;
  global.gc?.();
  await new Promise((r) => setTimeout(r, 50));
  const base = process.memoryUsage();
  let peakRss = base.rss;
  let peakHeap = base.heapUsed;
  // Live mode (a second run): collect garbage before each sample, so the peak is what the rollup actually holds,
  // not what the collector has not reclaimed yet. The timing run does not force collections.
  const live = process.argv[6] === 'live';
  let peakLive = 0;
  const sampler = setInterval(() => {
    if (live) global.gc?.();
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
    if (live) peakLive = Math.max(peakLive, m.heapUsed - base.heapUsed);
  }, live ? 100 : 20);
  const t0 = performance.now();
  const result = await runRollup({
    usage,
    state,
    sink,
    clock: { now: () => now },
    settings: { latenessMs: LATENESS_MS, teamBudgetsUsd: {}, budgetThresholdsPct: [50, 80, 100], quotaAdviceMinutes: 15, quotaAdvicePercent: 80 },
    endpoints: [{ region: 'swedencentral', deployment: 'chat', model: 'gpt-4o-mini', tpm: 1_000_000_000, rpm: 6_000_000 }],
    log: () => {},
    maxWindowsPerRun: 1,
  });
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const m = process.memoryUsage();
  peakRss = Math.max(peakRss, m.rss);
  peakHeap = Math.max(peakHeap, m.heapUsed);
  const MB = 1024 * 1024;
  const out: ChildResult = {
    rows: result.rows,
    seconds,
    baselineRssMb: base.rss / MB,
    peakRssMb: peakRss / MB,
    rssGrowthMb: (peakRss - base.rss) / MB,
    peakHeapGrowthMb: (peakHeap - base.heapUsed) / MB,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    liveHeapGrowthMb: peakLive / MB,
    sent,
  };
  process.stdout.write(JSON.stringify(out));
}

function percentileErrors(exact: Exact, sent: ChildResult['sent']): number {
  let worst = 0;
  for (const [team, kinds] of Object.entries(exact)) {
    for (const [kind, key] of KINDS) {
      const sorted = kinds[kind]!;
      for (const [name, q] of QUANTILES) {
        const want = sorted[Math.floor(q * (sorted.length - 1))]!;
        const metric = WINDOW_METRICS[`${key}${name[0]!.toUpperCase()}${name.slice(1)}` as keyof typeof WINDOW_METRICS];
        const got = sent[team]?.[metric];
        if (got === undefined) throw new Error(`rollup sent no ${metric} for team ${team}`);
        worst = Math.max(worst, Math.abs(got - want) / want);
      }
    }
  }
  return worst;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]!, process.argv[4]!, process.argv[5]!);
  const sizes = (process.env.BENCH_ROWS || (SMOKE ? '500,5000' : '20000,200000')).split(',').map(Number);
  const azurite = await startAzurite({ inMemory: true });
  const results: Array<{ n: number; write: number; child: ChildResult; liveMb: number; err: number }> = [];
  try {
    for (const n of sizes) {
      const usageTable = `benchusage${n}`;
      const { exact, seconds: write } = await writeRows(azurite.connectionString, usageTable, n);
      const stdout = execFileSync(process.execPath, ['--expose-gc', __filename, '--child', azurite.connectionString, usageTable, `benchrollup${n}`], {
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      });
      const child = JSON.parse(stdout) as ChildResult;
      if (child.rows !== n) throw new Error(`rollup counted ${child.rows} rows, wrote ${n}`);
      const liveOut = execFileSync(process.execPath, ['--expose-gc', __filename, '--child', azurite.connectionString, usageTable, `benchrollup${n}`, 'live'], {
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      });
      const liveMb = (JSON.parse(liveOut) as ChildResult).liveHeapGrowthMb;
      results.push({ n, write, child, liveMb, err: percentileErrors(exact, child.sent) });
    }
  } finally {
    await azurite.stop();
  }
  const fmt = (x: number, d = 1) => x.toFixed(d);
  printTable('Rollup of one minute window (Azurite, in-memory; each rollup in a fresh child process)', [
    ['rows', 'write s', 'rollup s', 'rows/s', 'RSS growth MB', 'peak heap growth MB', 'live heap growth MB', 'max RSS MB', 'max pct rel err'],
    ...results.map((r) => [
      r.n,
      fmt(r.write),
      fmt(r.child.seconds, 2),
      Math.round(r.n / r.child.seconds),
      fmt(r.child.rssGrowthMb),
      fmt(r.child.peakHeapGrowthMb),
      fmt(r.liveMb),
      fmt(r.child.maxRssMb),
      (r.err * 100).toFixed(3) + ' %',
    ]),
  ]);
  const small = results[0]!;
  const large = results[results.length - 1]!;
  const timeRatio = large.child.seconds / small.child.seconds;
  // Growth over the child's own baseline (node + modules): what the rollup itself holds. Floored at 1 MB so noise on
  // a tiny run cannot make the ratio meaningless.
  const memoryRatio = Math.max(1, large.child.rssGrowthMb) / Math.max(1, small.child.rssGrowthMb);
  const liveRatio = Math.max(1, large.liveMb) / Math.max(1, small.liveMb);
  const maxErr = Math.max(...results.map((r) => r.err));
  console.log(
    `\nrows ×${large.n / small.n}: time ×${fmt(timeRatio, 2)} (target ≤ 11), RSS growth ×${fmt(memoryRatio, 2)} (target ≤ 1.5), ` +
      `max RSS ×${fmt(large.child.maxRssMb / small.child.maxRssMb, 2)}, live heap ×${fmt(liveRatio, 2)}; worst percentile error ${(maxErr * 100).toFixed(3)} % (sketch accuracy 1 %)`,
  );
  printResult({
    rows: results.map((r) => r.n),
    time_ratio: Number(timeRatio.toFixed(3)),
    memory_ratio: Number(memoryRatio.toFixed(3)),
    max_rss_ratio: Number((large.child.maxRssMb / small.child.maxRssMb).toFixed(3)),
    live_heap_ratio: Number(liveRatio.toFixed(3)),
    live_heap_growth_mb: results.map((r) => Number(r.liveMb.toFixed(1))),
    max_percentile_rel_error: Number(maxErr.toFixed(5)),
    rows_per_s: Math.round(large.n / large.child.seconds),
    rollup_s: results.map((r) => Number(r.child.seconds.toFixed(3))),
    rss_growth_mb: results.map((r) => Number(r.child.rssGrowthMb.toFixed(1))),
    max_rss_mb: results.map((r) => Number(r.child.maxRssMb.toFixed(1))),
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
