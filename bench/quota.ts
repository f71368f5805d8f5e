/**
 * bench:quota — how close Sluice drains a backlog to the quota, against naive clients on the same backlog.
 *
 * One simulated region, one chat deployment (300,000 TPM / 1,800 RPM, 20 ms latency). A seeded backlog of ≥ 1,500 jobs
 * of mixed sizes (prompt 50–2,000 tokens, max_tokens 50–500, log-uniform; ≥ 3 minutes of quota) is submitted first,
 * then 4 worker processes (this file with --worker: a local Functions host running only `worker`, which writes its
 * storage counters to a file on SIGTERM) drain it. Then, on the same backlog after sim.reset(), 4 child processes call
 * the simulator directly with openai-node (bench/quotaBaseline.ts): (a) its default retries, (b) a 5-attempt
 * exponential backoff with jitter.
 *
 *   npm run bench:quota
 *   BENCH_JOBS=1500 BENCH_TPM=300000 BENCH_RPM=1800 BENCH_WORKERS=4 npm run bench:quota
 *   BENCH_SMOKE=1 npm run bench:quota   (40 jobs, 1 worker, baselines with 1 process each)
 *
 * Prints tables, then as the last line one JSON object.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startAzurite } from '../local/azurite';
import { startFunctionsHost } from '../local/host';
import { countChatPromptTokens, startSimulator, type SimRequestRecord, type SimulatorConfig } from '../local/simulator';
import { bootstrapKeys, endpointsFromSimulator, WORKER_FUNCTION } from '../local/stack';
import { laneCount } from '../src/config';
import { storageCounters } from '../src/azure/storage';
import { knob, printResult, printTable } from './report';
import { prng as rng } from '../test/support/prng';

const PROJECT_ROOT = resolve(__dirname, '..', '..');
const COUNTERS_FILE_ENV = 'SLUICE_BENCH_COUNTERS_FILE';
// The repo's host.json batch settings (16 + 8 in flight per instance): with jobs held for quota in-process, more in
// flight per instance only means more jobs stuck behind one instance's share at the end of the drain.
const HOST_JSON = { extensions: { queues: { maxPollingInterval: '00:00:00.200' } } };

const settings = {
  jobs: int('BENCH_JOBS', 1500, 40),
  tpm: int('BENCH_TPM', 300_000, 600_000),
  rpm: int('BENCH_RPM', 1_800, 6_000),
  workers: int('BENCH_WORKERS', 4, 1),
  seed: int('BENCH_SEED', 5),
  /** Minutes of quota the backlog must hold at least. */
  quotaMinutes: knob('BENCH_QUOTA_MINUTES', 3, 0),
  /** Give up on the Sluice drain after this long, s. */
  drainTimeoutS: int('BENCH_DRAIN_TIMEOUT_S', 420, 60),
  baselineConcurrency: int('BENCH_BASELINE_CONCURRENCY', 8, 4),
  /** BENCH_BASELINES=0 skips the naive baselines (quick iterations on the Sluice drain; the ratios are then absent). */
  baselines: process.env.BENCH_BASELINES !== '0',
};

const DEPLOYMENT = 'gpt-4o-mini';
const REGION = 'sim-bench';
const SIMULATOR: SimulatorConfig = {
  regions: [{ name: REGION, deployments: [{ name: DEPLOYMENT, model: 'gpt-4o-mini-2024-07-18', kind: 'chat', tpm: settings.tpm, rpm: settings.rpm, contextWindow: 128_000, maxOutputTokens: 16_384 }] }],
  latency: { firstTokenMs: 20, perTokenMs: 0 },
};

function int(name: string, full: number, smoke = full): number {
  return Math.max(1, Math.floor(knob(name, full, smoke)));
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (n: number, d = 3) => (Number.isFinite(n) ? Math.round(n * 10 ** d) / 10 ** d : null);


// Common English words: one token each (with the leading space) in the o200k/cl100k encodings.
const WORDS = 'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so no will more can out up them some could what into than its only other time new about two may over very first also after any now most then our made like'.split(' ');

interface BenchRequest {
  messages: { role: 'user'; content: string }[];
  max_tokens: number;
  /** Prompt + max_tokens as the simulator counts it. */
  charge: number;
}

function makeBacklog(): BenchRequest[] {
  const random = rng(settings.seed);
  const logUniform = (lo: number, hi: number) => Math.round(Math.exp(Math.log(lo) + random() * (Math.log(hi) - Math.log(lo))));
  const out: BenchRequest[] = [];
  let total = 0;
  while (out.length < settings.jobs || total < settings.quotaMinutes * settings.tpm) {
    const promptTarget = logUniform(50, 2000);
    const maxTokens = logUniform(50, 500);
    const words: string[] = [`Request ${out.length}:`];
    for (let i = 0; i < promptTarget - 10; i += 1) words.push(WORDS[Math.floor(random() * WORDS.length)]!);
    const messages = [{ role: 'user' as const, content: words.join(' ') }];
    const charge = countChatPromptTokens(messages) + maxTokens;
    out.push({ messages, max_tokens: maxTokens, charge });
    total += charge;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Worker mode: one Function instance running only `worker`; storage counters to a file on SIGTERM.
async function workerMain(): Promise<void> {
  const host = await startFunctionsHost({ rootDir: PROJECT_ROOT, only: [WORKER_FUNCTION], http: false, hostJson: HOST_JSON, log: process.env.BENCH_DEBUG === '1' ? (l) => console.log(l) : () => undefined });
  console.log('QUOTA_WORKER_READY');
  // Released from SIGSTOP when the drain starts: count only the drain's storage calls.
  process.on('SIGCONT', () => {
    for (const k of Object.keys(storageCounters) as Array<keyof typeof storageCounters>) storageCounters[k] = 0;
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    host.close().then(
      () => {
        const file = process.env[COUNTERS_FILE_ENV];
        if (file) writeFileSync(file, JSON.stringify(storageCounters));
        process.exit(0);
      },
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// ---------------------------------------------------------------------------------------------------------------
interface JobView {
  id: string;
  status: string;
  completed_at: string | null;
  attempts: number;
}

async function pool<T, R>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

function spawnChild(args: string[], env: NodeJS.ProcessEnv, onLine: (line: string) => void): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let pending = '';
  const onData = (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    lines.forEach(onLine);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => (pending && onLine(pending), r(code))));
  return { child, exited };
}

interface CallStats {
  requests: number;
  status200: number;
  status429: number;
  other: number;
  tokensCharged: number;
  steadyUtilisation: number;
}

function callStats(log: SimRequestRecord[], t0: number, tEnd: number): CallStats {
  const mine = log.filter((r) => r.deployment === DEPLOYMENT);
  const steadyFrom = t0 + 10_000;
  const steadyTo = tEnd - 10_000;
  const steadyCharged = mine.filter((r) => r.at >= steadyFrom && r.at < steadyTo).reduce((s, r) => s + r.charged, 0);
  const steadyMin = (steadyTo - steadyFrom) / 60_000;
  return {
    requests: mine.length,
    status200: mine.filter((r) => r.status === 200).length,
    status429: mine.filter((r) => r.status === 429).length,
    other: mine.filter((r) => r.status !== 200 && r.status !== 429).length,
    tokensCharged: mine.reduce((s, r) => s + r.charged, 0),
    steadyUtilisation: steadyMin > 0 ? steadyCharged / (steadyMin * settings.tpm) : NaN,
  };
}

async function main(): Promise<void> {
  const t00 = Date.now();
  const backlog = makeBacklog();
  const backlogCharge = backlog.reduce((s, r) => s + r.charge, 0);
  console.log(`backlog: ${backlog.length} jobs, ${backlogCharge} tokens charged at admission (${(backlogCharge / settings.tpm).toFixed(2)} min of quota at ${settings.tpm} TPM)`);

  const tmp = mkdtempSync(join(tmpdir(), 'sluice-bench-quota-'));
  const azurite = await startAzurite({ rootDir: PROJECT_ROOT, inMemory: true });
  const sim = await startSimulator(SIMULATOR);
  const lines: string[] = [];
  const debugFile = process.env.BENCH_DEBUG === '1' ? join(tmpdir(), 'bench-quota-debug.log') : undefined;
  if (debugFile) writeFileSync(debugFile, '');
  const keep = (line: string) => {
    if (debugFile) appendFileSync(debugFile, `${line}\n`);
    lines.push(line);
    if (lines.length > 2000) lines.splice(0, lines.length - 2000);
  };
  const workers: { child: ChildProcess; exited: Promise<number | null> }[] = [];
  let host: Awaited<ReturnType<typeof startFunctionsHost>> | undefined;
  try {
    const env: Record<string, string> = {
      FUNCTIONS_WORKER_RUNTIME: 'node',
      AzureWebJobsStorage: azurite.connectionString,
      SLUICE_JOBS_QUEUE: 'sluice-jobs',
      SLUICE_ENDPOINTS: JSON.stringify(endpointsFromSimulator(sim, SIMULATOR)),
    };
    Object.assign(process.env, env);
    host = await startFunctionsHost({ rootDir: PROJECT_ROOT, port: 0, exclude: [WORKER_FUNCTION], hostJson: HOST_JSON, log: keep });
    const baseUrl = [host.url, host.routePrefix].filter((s) => s !== '').join('/');
    const { apiKey } = await bootstrapKeys(azurite.connectionString, 'sluiceteams', laneCount(env));
    const auth = { 'api-key': apiKey };

    // 1. N worker processes (warm Function instances), paused while the backlog is filled: the drain below starts
    //    when they are released, so process start-up is not counted as drain time.
    const tSpawn = Date.now();
    const ready: Promise<void>[] = [];
    for (let i = 0; i < settings.workers; i += 1) {
      let onReady: () => void = () => undefined;
      ready.push(new Promise<void>((r) => (onReady = r)));
      workers.push(
        spawnChild([__filename, '--worker'], { ...process.env, ...env, ...(process.env.BENCH_DEBUG === '1' ? { SLUICE_BUDGET_DEBUG: 'true' } : {}), [COUNTERS_FILE_ENV]: join(tmp, `worker-${i}.json`) }, (line) => {
          if (line === 'QUOTA_WORKER_READY') onReady();
          else keep(`[worker ${i}] ${line}`);
        }),
      );
    }
    await Promise.all(ready);
    console.log(`${settings.workers} workers ready after ${((Date.now() - tSpawn) / 1000).toFixed(1)} s`);
    for (const w of workers) w.child.kill('SIGSTOP');

    // 2. The backlog, while the workers are paused.
    const before = { ...storageCounters };
    const tSubmit = Date.now();
    const ids = await pool(backlog, 16, async (r) => {
      const res = await fetch(`${baseUrl}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({ request: { model: 'gpt-4o-mini', messages: r.messages, max_tokens: r.max_tokens }, priority: 'batch' }),
      });
      const body = (await res.json()) as { id?: string };
      if (res.status !== 202 || !body.id) throw new Error(`submit answered ${res.status}: ${JSON.stringify(body)}`);
      return body.id;
    });
    const submitTx = Object.values(storageCounters).reduce((s, v) => s + v, 0) - Object.values(before).reduce((s, v) => s + v, 0);
    console.log(`submitted ${ids.length} jobs in ${((Date.now() - tSubmit) / 1000).toFixed(1)} s (${(submitTx / ids.length).toFixed(2)} storage calls per submit)`);

    // 3. Drain: release the workers.
    sim.reset();
    const t0 = Date.now();
    if (debugFile) keep(`t0 = ${t0 % 1_000_000} (as the budget debug lines print time)`);
    for (const w of workers) w.child.kill('SIGCONT');
    console.log('draining…');

    const views = new Map<string, JobView>();
    const terminal = (v?: JobView) => v !== undefined && (v.status === 'succeeded' || v.status === 'failed');
    let last200 = 0;
    let last200At = Date.now();
    let lastPrint = Date.now();
    for (;;) {
      const pending = ids.filter((id) => !terminal(views.get(id)));
      if (pending.length === 0) break;
      if (Date.now() - t0 > settings.drainTimeoutS * 1000) {
        console.log(`drain timeout: ${pending.length} jobs not terminal`);
        break;
      }
      const c = sim.counters()[REGION]![DEPLOYMENT]!;
      if (c.status200 !== last200) (last200 = c.status200), (last200At = Date.now());
      const failedKnown = [...views.values()].filter((v) => v.status === 'failed').length;
      const sweepAll = c.status200 + failedKnown >= ids.length || Date.now() - last200At > 8_000;
      const batch = sweepAll ? pending : pending.slice(0, 150);
      const got = await pool(batch, 16, async (id) => {
        const res = await fetch(`${baseUrl}/v1/jobs/${id}`, { headers: auth });
        return (await res.json()) as JobView;
      });
      for (const v of got) views.set(v.id, v);
      if (Date.now() - lastPrint > 30_000) {
        lastPrint = Date.now();
        console.log(`  t+${((Date.now() - t0) / 1000).toFixed(0)} s: ${c.status200} calls ok, ${c.status429} 429s, ${c.tokensCharged} tokens charged`);
      }
      await sleep(sweepAll ? 1_000 : 3_000);
    }
    const completedAts = [...views.values()].filter(terminal).map((v) => (v.completed_at ? Date.parse(v.completed_at) : Date.now()));
    const tEnd = completedAts.length ? Math.max(...completedAts) : Date.now();
    const sluiceLog = sim.requests();
    // Tokens charged per 10 s of the drain, as a share of 10 s of quota: where utilisation was lost.
    const per10 = new Array<number>(Math.ceil((tEnd - t0) / 10_000)).fill(0);
    for (const r of sluiceLog) if (r.status === 200 && r.at >= t0 && r.at < tEnd) per10[Math.floor((r.at - t0) / 10_000)]! += r.charged;
    console.log(`utilisation per 10 s: ${per10.map((v) => (v / (settings.tpm / 6)).toFixed(2)).join(' ')}`);

    // Worker storage counters: SIGTERM → each writes its counters.
    for (const w of workers) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => Promise.race([w.exited, sleep(20_000)])));
    const workerCounters = workers.map((_, i) => {
      try {
        return JSON.parse(readFileSync(join(tmp, `worker-${i}.json`), 'utf8')) as typeof storageCounters;
      } catch {
        return undefined;
      }
    });
    const countersComplete = workerCounters.every((c) => c !== undefined);
    const sum = (k: keyof typeof storageCounters) => workerCounters.reduce((s, c) => s + (c?.[k] ?? 0), 0);
    const budgetTx = sum('budgetTable');
    const workerTx = sum('table') + sum('queue') + sum('blob') + sum('budgetTable');

    const all = [...views.values()];
    const succeeded = all.filter((v) => v.status === 'succeeded').length;
    const failed = all.filter((v) => v.status === 'failed').length;
    const unfinished = ids.length - succeeded - failed;
    const st = callStats(sluiceLog, t0, tEnd);
    const drainMin = (tEnd - t0) / 60_000;
    const okCharged = sluiceLog.filter((r) => r.deployment === DEPLOYMENT && r.status === 200).reduce((s, r) => s + r.charged, 0);
    const quotaBoundMin = okCharged / settings.tpm;
    const sluice = {
      drainS: (tEnd - t0) / 1000,
      utilisation: st.tokensCharged / (drainMin * settings.tpm),
      share429: st.requests ? st.status429 / st.requests : 0,
      ...st,
      failed,
      unfinished,
      succeeded,
      budgetTxPerJob: budgetTx / ids.length,
      storageTxPerJob: (workerTx + submitTx) / ids.length,
      workerStorageTxPerJob: workerTx / ids.length,
      drainVsQuota: drainMin / quotaBoundMin,
      quotaBoundMin,
    };
    await host.close().catch(() => undefined);
    host = undefined;

    // 3. Naive baselines on the same backlog.
    const reqFile = join(tmp, 'requests.json');
    writeFileSync(reqFile, JSON.stringify(backlog.map((r) => ({ messages: r.messages, max_tokens: r.max_tokens }))));
    const baselineScript = join(__dirname, 'quotaBaseline.js');
    const baselines: { name: string; mode: 'sdk' | 'seed'; drainS: number; utilisation: number; stats: CallStats; ok: number; failed: number; quotaBoundMin: number; okCharged: number }[] = [];
    // Sluice's time to complete as much work (tokens of successful calls) as a baseline completed: the baselines stop
    // early by failing jobs, so "no worse than the baseline for the jobs it completed" compares equal work.
    const sluiceOk = sluiceLog.filter((r) => r.deployment === DEPLOYMENT && r.status === 200).sort((a, b) => a.at - b.at);
    const sluiceSecondsFor = (tokens: number) => {
      let done = 0;
      for (const r of sluiceOk) if ((done += r.charged) >= tokens) return (r.at - t0) / 1000;
      return sluice.drainS;
    };
    const modes = [['openai-node default retries (2)', 'sdk'], ['seed-style 5 attempts, 1 s exp. backoff + jitter', 'seed']] as const;
    for (const [name, mode] of settings.baselines ? modes : []) {
      sim.reset();
      const b0 = Date.now();
      const outs: string[][] = [];
      const children = Array.from({ length: settings.workers }, (_, i) => {
        const out: string[] = [];
        outs.push(out);
        return spawnChild([baselineScript, reqFile, String(i), String(settings.workers), mode, sim.regions[0]!.baseUrl, String(settings.baselineConcurrency)], process.env, (l) => out.push(l));
      });
      await Promise.all(children.map((c) => c.exited));
      const bEndAll = Date.now();
      const results = outs.map((o) => {
        const lastLine = [...o].reverse().find((l) => l.startsWith('{'));
        if (!lastLine) throw new Error(`baseline child printed no result:\n${o.slice(-20).join('\n')}`);
        return JSON.parse(lastLine) as { ok: number; failed: number; lastOkAt: number };
      });
      const bEnd = Math.max(...results.map((r) => r.lastOkAt), b0 + 1) || bEndAll;
      const log = sim.requests();
      const stats = callStats(log, b0, bEnd);
      const okCharged = log.filter((r) => r.deployment === DEPLOYMENT && r.status === 200).reduce((s, r) => s + r.charged, 0);
      baselines.push({
        name,
        mode,
        drainS: (bEnd - b0) / 1000,
        utilisation: stats.tokensCharged / (((bEnd - b0) / 60_000) * settings.tpm),
        stats,
        ok: results.reduce((s, r) => s + r.ok, 0),
        failed: results.reduce((s, r) => s + r.failed, 0),
        quotaBoundMin: okCharged / settings.tpm,
        okCharged,
      });
    }

    // 4. Report.
    const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
    printTable(`bench:quota — ${ids.length} jobs (${backlogCharge} tokens at admission), 1 deployment ${settings.tpm} TPM / ${settings.rpm} RPM, ${settings.workers} instances`, [
      ['', 'drain s', 'jobs ok', 'failed', 'unfinished', 'calls', '429s', '429 share', 'utilisation', 'steady util.', 'drain ÷ quota min'],
      ['Sluice (shared budget)', sluice.drainS.toFixed(1), succeeded, failed, unfinished, st.requests, st.status429, pct(sluice.share429), pct(sluice.utilisation), pct(sluice.steadyUtilisation), sluice.drainVsQuota.toFixed(3)],
      ...baselines.map((b) => [
        `baseline: ${b.name}`,
        b.drainS.toFixed(1),
        b.ok,
        b.failed,
        0,
        b.stats.requests,
        b.stats.status429,
        pct(b.stats.requests ? b.stats.status429 / b.stats.requests : 0),
        pct(b.utilisation),
        pct(b.stats.steadyUtilisation),
        (b.drainS / 60 / b.quotaBoundMin).toFixed(3),
      ]),
    ]);
    printTable('Storage (Sluice)', [
      ['', 'calls', 'per job'],
      ['budget table (workers)', budgetTx, (budgetTx / ids.length).toFixed(3)],
      ['all storage, workers (jobs table, queue, blob, budget)', workerTx, (workerTx / ids.length).toFixed(3)],
      ['submit (in-process host, measured during submit)', submitTx, (submitTx / ids.length).toFixed(3)],
      ['all storage per job (workers + submit)', workerTx + submitTx, sluice.storageTxPerJob.toFixed(3)],
    ]);
    if (!countersComplete) console.log(`note: ${workerCounters.filter((c) => !c).length} worker(s) wrote no counters (storage figures are a lower bound)`);
    const none = { name: 'none', mode: 'none', drainS: NaN, utilisation: NaN, stats: { requests: 0, status200: 0, status429: 0, other: 0, tokensCharged: 0, steadyUtilisation: NaN }, ok: 0, failed: 0, quotaBoundMin: NaN, okCharged: NaN };
    const best = [...baselines].sort((a, b) => b.ok - a.ok || a.drainS - b.drainS)[0] ?? none;
    printTable('Ratios Sluice ÷ baseline', [
      ['', 'drain time', 'drain time, same work', 'utilisation', '429 share', 'failed jobs'],
      ...baselines.map((b) => [
        b.name,
        (sluice.drainS / b.drainS).toFixed(2),
        `${(sluiceSecondsFor(b.okCharged) / b.drainS).toFixed(2)} (${sluiceSecondsFor(b.okCharged).toFixed(1)} s vs ${b.drainS.toFixed(1)} s)`,
        (sluice.utilisation / b.utilisation).toFixed(2),
        ((sluice.share429 || 0) / (b.stats.status429 / Math.max(1, b.stats.requests))).toFixed(4),
        `${failed} vs ${b.failed}`,
      ]),
    ]);
    const targets: [string, boolean][] = [
      ['utilisation ≥ 0.97', sluice.utilisation >= 0.97],
      ['429s ≤ 0.2 % of calls', sluice.share429 <= 0.002],
      ['0 failed jobs (and none unfinished)', failed === 0 && unfinished === 0],
      ['budget tx ≤ 0.2 per job', sluice.budgetTxPerJob <= 0.2],
      ['drain ≤ 1.05 × quota-bound minimum', sluice.drainVsQuota <= 1.05],
      ['drain no worse than the baselines for the work they completed', baselines.every((b) => sluiceSecondsFor(b.okCharged) <= b.drainS)],
    ];
    printTable('Targets', [['target', 'result'], ...targets.map(([t, ok]) => [t, ok ? 'met' : 'NOT met'])]);
    console.log(`\n(total bench wall time ${((Date.now() - t00) / 1000).toFixed(0)} s; baseline drain time = first call → last successful call)`);
    printResult({
      jobs: ids.length,
      backlog_tokens: backlogCharge,
      tpm: settings.tpm,
      workers: settings.workers,
      drain_s: round(sluice.drainS, 1),
      utilisation: round(sluice.utilisation),
      steady_utilisation: round(sluice.steadyUtilisation),
      calls: st.requests,
      count_429: st.status429,
      share_429: round(sluice.share429, 5),
      failed_jobs: failed,
      unfinished_jobs: unfinished,
      budget_tx_per_job: round(sluice.budgetTxPerJob),
      storage_tx_per_job: round(sluice.storageTxPerJob),
      worker_storage_tx_per_job: round(sluice.workerStorageTxPerJob),
      quota_bound_min: round(sluice.quotaBoundMin),
      drain_vs_quota_ratio: round(sluice.drainVsQuota),
      best_baseline: best.mode,
      drain_time_ratio: round(sluice.drainS / best.drainS),
      drain_time_ratio_same_work: round(sluiceSecondsFor(best.okCharged) / best.drainS),
      baseline_drain_s: round(best.drainS, 1),
      baseline_utilisation: round(best.utilisation),
      baseline_share_429: round(best.stats.status429 / Math.max(1, best.stats.requests), 5),
      baseline_failed_jobs: best.failed,
      baselines: Object.fromEntries(baselines.map((b) => [b.mode, { drain_s: round(b.drainS, 1), ok: b.ok, failed_jobs: b.failed, calls: b.stats.requests, count_429: b.stats.status429, share_429: round(b.stats.status429 / Math.max(1, b.stats.requests), 5), utilisation: round(b.utilisation) }])),
      targets_met: Object.fromEntries(targets.map(([t, ok]) => [t, ok])),
    });
  } catch (err) {
    console.error(lines.slice(-40).join('\n'));
    throw err;
  } finally {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await host?.close().catch(() => undefined);
    await sim.close().catch(() => undefined);
    await azurite.stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--worker') {
  workerMain().catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(1);
  });
} else {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack : err);
      process.exit(1);
    },
  );
}
