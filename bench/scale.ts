/**
 * bench:scale — does the shared budget hold for the fleet Azure actually runs? In one process, N budget gates with the
 * worker's admission path (SharedBudgetGate, options as src/runtime/services.ts builds them) against real Azurite
 * budget rows, in real time: simulated calls (300–1,300 ms, 1,320–1,620 charged tokens, 0–200 ms admission → arrival),
 * host-like delivery (16 messages fetched once an instance is down to 8 in flight; waits ≤ 30 s held in-process,
 * longer ones parked back on the queue until their retryAt, and one refused for want of a seat handed back at its
 * retryAt, as src/core/worker/route.ts holdOrPark does) and the
 * Flex scale-out pattern (instances arrive as the backlog asks for them, leave when idle, one crashes).
 * Each deployment is its own model, and each model travels in a queue lane of its own (as infra sets
 * SLUICE_QUEUE_LANES: one per model): every lane is a worker function Flex scales by that lane's queue length alone,
 * all lanes within the app's one maximum (the run's N).
 * Every admitted call is replayed afterwards into the simulator's rate limiter, per deployment.
 *
 *   npm run bench:scale                          N = 1, 4, 16, 64, 200 on 300,000 TPM, then ten deployments × 64
 *   npm run bench:scale -- --n 64 --minutes 1 --no-ten
 *   BENCH_SCALE_N=16,64 BENCH_SCALE_MINUTES=1 BENCH_SCALE_TEN=0 npm run bench:scale
 *   BENCH_SMOKE=1 npm run bench:scale            N = 1, 4 and three deployments, a few seconds each
 *
 * Options (flag or env): --n / BENCH_SCALE_N (comma list), --minutes / BENCH_SCALE_MINUTES (backlog, minutes of
 * quota, at least a first batch for every instance; default 3), --window-s / BENCH_SCALE_WINDOW_S (a run ends when its
 * backlog is sent or after this long; default minutes + 1 min),
 * --no-ten / BENCH_SCALE_TEN=0 (skip the ten-deployment run), --ten-n / BENCH_SCALE_TEN_N (its fleet, default 64),
 * --one-lane / BENCH_SCALE_LANES=1 (every model in one lane, as with SLUICE_QUEUE_LANES=1), BENCH_SCALE_TPM (the
 * single-deployment runs' TPM, default 300,000), BENCH_DEBUG (below).
 * docs/benchmarks.md explains the figures. Last stdout line: one JSON object (keys in RESULT_KEYS).
 */
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { startAzurite } from '../local/azurite';
import { SlidingWindowRateLimiter } from '../local/simulator/rateLimiter';
import { TableBudgetRowStore } from '../src/azure/budgetTable';
import type { DeploymentRef } from '../src/core/budget/gate';
import { SharedBudgetGate } from '../src/core/budget/sharedBudget';
import { Dispatcher } from '../src/core/dispatch/dispatcher';
import { groupEntries } from '../src/core/dispatch/teamQueue';
import { modelLanes } from '../src/core/teams/lanes';
import { MAX_QUEUE_LANES } from '../src/core/fleetSize';
import { MemoryTeamQueues } from '../test/support/memoryTeamQueues';
import { transactions } from '../src/core/budget/store';
import { tableClientFromConnectionString } from '../test/support/storage';
import { percentile, printResult, printTable, SMOKE } from './report';
import { meteredTable, type RowMeter } from './rowMeter';
import { prng } from '../test/support/prng';

const PROJECT_ROOT = resolve(__dirname, '..', '..');
/** BENCH_DEBUG, a comma list: held (every 10 s, per deployment, jobs held at instances and queued), writes (per lane,
 *  row writes by kind and lease length), use (per deployment, use of the TPM per 10 s). */
const DEBUG = new Set((process.env.BENCH_DEBUG ?? '').split(','));
/** Host delivery (host.json): fetch BATCH messages once in flight drops to THRESHOLD. */
const BATCH = 16;
const THRESHOLD = 8;
/** Waits up to this long are held in-process; longer ones park the job (SLUICE_HOLD_IN_PROCESS_MS default). */
const HOLD_MS = 30_000;
/** A new instance at most this often while the backlog asks for more (Flex adds instances gradually), ms. */
const SCALE_STEP_MS = 500;
/** An instance with nothing in flight and an empty queue (no message visible or parked) this long leaves (close()), ms. */
const IDLE_LEAVE_MS = 3_000;
/** A crashed instance's unsent messages become visible again after this long, ms (Azure: up to the host's message
 *  lease; shorter here so the run ends). */
const CRASH_REDELIVERY_MS = SMOKE ? 1_000 : 30_000;
const TICK_MS = 100;
const MEAN_CHARGE = 1_470;
/**
 * Jobs of 1,470 charged tokens ±10 %; on a deployment whose minute holds fewer than 40 of them, TPM ÷ 40 tokens
 * (±10 %): whole jobs must fit the window, and 1,470-token jobs on 10,000 TPM fit six times a minute (0.88 of
 * the TPM at most, for any admission scheme; a seventh would be a 429).
 */
const meanCharge = (tpm: number) => Math.min(MEAN_CHARGE, tpm / 40);

export const RESULT_KEYS = ['utilisation_min', 'utilisation_by_n', 'rejected_429', 'max_row_chars', 'max_leases_chars', 'row_writes_per_s_max', 'conflict_share_max', 'admit_p99_ms_max', 'budget_tx_per_job_max', 'undrained_runs'] as const;

const { values: flags } = parseArgs({
  options: { n: { type: 'string' }, minutes: { type: 'string' }, 'window-s': { type: 'string' }, 'no-ten': { type: 'boolean' }, 'ten-n': { type: 'string' }, 'no-dispatch': { type: 'boolean' }, 'one-lane': { type: 'boolean' } },
  allowPositionals: false,
});
const setting = (flag: string | undefined, env: string, full: string, smoke: string) => flag ?? process.env[env] ?? (SMOKE ? smoke : full);
const settings = {
  sizes: setting(flags.n, 'BENCH_SCALE_N', '1,4,16,64,200', '1,4').split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0),
  minutes: Number(setting(flags.minutes, 'BENCH_SCALE_MINUTES', '3', '0.1')),
  /** The single-deployment runs' TPM. */
  tpm: Number(process.env.BENCH_SCALE_TPM) || 300_000,
  windowS: Number(setting(flags['window-s'], 'BENCH_SCALE_WINDOW_S', '', '')) || undefined,
  ten: !flags['no-ten'] && process.env.BENCH_SCALE_TEN !== '0',
  tenN: Number(setting(flags['ten-n'], 'BENCH_SCALE_TEN_N', '64', '4')),
  /** The backlog waits in a team queue and the real Dispatcher releases it into the queue the instances drain (as
   *  the app does by default); --no-dispatch / BENCH_SCALE_DISPATCH=0 puts the whole backlog on the queue at once. */
  dispatch: !flags['no-dispatch'] && process.env.BENCH_SCALE_DISPATCH !== '0',
  /** Queue lanes: one per model (infra's default), or one for all (--one-lane / BENCH_SCALE_LANES=1). */
  oneLane: flags['one-lane'] === true || process.env.BENCH_SCALE_LANES === '1',
};

/** Ten deployments in two regions, 10k to 2M TPM (smoke: three). */
const TEN_TPM = SMOKE ? [10_000, 300_000, 2_000_000] : [10_000, 30_000, 60_000, 100_000, 200_000, 300_000, 500_000, 800_000, 1_200_000, 2_000_000];
const ref = (tpm: number, i: number): DeploymentRef => {
  const region = i % 2 === 0 ? 'sim-north' : 'sim-south';
  return { key: `http://${region}.bench|d${i}-${tpm / 1000}k`, region, deployment: `d${i}-${tpm / 1000}k`, tpm, rpm: Math.floor((tpm * 6) / 1000) };
};

/** Read through a call so TypeScript does not narrow it across awaits (another task may crash the instance). */
const crashedNow = (inst: { state: string }) => inst.state === 'crashed';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
/** A job's wait: it does not keep the process alive once its run is over. */
const jobSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)).unref());
const round = (n: number, d = 3) => (Number.isFinite(n) ? Math.round(n * 10 ** d) / 10 ** d : null);

// ---------------------------------------------------------------------------------------------------------------
// One run: a finite backlog, a fleet that follows it, and the figures.

interface Job {
  id: string;
  dep: number;
  charge: number;
  visibleAt: number;
}
interface Instance {
  gate: SharedBudgetGate;
  /** The lane whose worker function it runs. */
  lane: number;
  inFlight: number;
  state: 'live' | 'closing' | 'gone' | 'crashed';
  idleSince: number | undefined;
  timers: Set<NodeJS.Timeout>;
}
interface Send {
  at: number;
  tokens: number;
  dep: number;
}
interface DeploymentFigures {
  name: string;
  tpm: number;
  jobs: number;
  utilisation: number;
  spanS: number;
  rejected: number;
}
interface RunFigures {
  label: string;
  n: number;
  /** The whole backlog was sent within the window. */
  drained: boolean;
  jobsLeft: number;
  wallS: number;
  peakInstances: number;
  instancesStarted: number;
  deployments: DeploymentFigures[];
  rowWritesPerSMax: number;
  conflictShare: number;
  admitP99Ms: number;
  txPerJob: number;
  maxEntityChars: number;
  maxLeasesChars: number;
  reads: number;
  writes: number;
  conflicts: number;
  /** This process's CPU time ÷ wall time: near 1, the bench itself is the bottleneck. */
  benchCpu: number;
  /** p99 event-loop delay of this process, ms: what any await here waited for the loop, not for the gate. */
  loopDelayP99Ms: number;
}

async function runOnce(label: string, connectionString: string, tableName: string, refs: DeploymentRef[], n: number, seed: number): Promise<RunFigures> {
  const rand = prng(seed);
  const meter: RowMeter = { maxEntityChars: 0, maxLeasesChars: 0, buckets: new Map() };
  const store = new TableBudgetRowStore(meteredTable(tableClientFromConnectionString(connectionString, tableName), meter));
  await store.ensure();

  // The backlog: per deployment, minutes × its TPM of charged tokens, shuffled into one queue.
  const jobs: Job[] = [];
  // Every instance gets its first batch (a smaller backlog would leave the instances past total ÷ 16 idle: Flex starts
  // them, but they never touch the budget); then larger runs end with the window rather than drained.
  const quotaJobs = refs.reduce((n, r) => n + (settings.minutes * r.tpm) / meanCharge(r.tpm), 0);
  // (With the dispatcher the fleet follows the released messages, not the backlog: no stretch.)
  const stretch = SMOKE || settings.dispatch ? 1 : Math.max(1, (BATCH * n) / quotaJobs);
  refs.forEach((r, dep) => {
    const mean = meanCharge(r.tpm);
    const count = Math.max(2, Math.round((stretch * settings.minutes * r.tpm) / mean));
    for (let k = 0; k < count; k++) jobs.push({ id: `${label}-${dep}-${k}`, dep, charge: Math.round(mean * (0.9 + rand() * 0.2)), visibleAt: 0 });
  });
  for (let i = jobs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [jobs[i], jobs[j]] = [jobs[j]!, jobs[i]!];
  }
  const total = jobs.length;
  // Lanes: a deployment's model travels in its lane (src/core/teams/lanes.ts), each lane a queue of its own.
  const laneCount = settings.oneLane ? 1 : Math.min(MAX_QUEUE_LANES, refs.length);
  const laneOfModel = modelLanes(refs.map((_, dep) => `d${dep}`), laneCount);
  const laneOf = (dep: number) => laneOfModel(`d${dep}`);
  const lanes = Array.from({ length: laneCount }, () => ({ ready: [] as Job[], parked: [] as Job[], lastScaleAt: -Infinity }));
  const park = (job: Job) => lanes[laneOf(job.dep)]!.parked.push(job);
  // The queue the instances drain: the whole backlog, or what the dispatcher released from the team queue.
  if (!settings.dispatch) for (const j of jobs) lanes[laneOf(j.dep)]!.ready.push(j);
  // Every message not yet deleted: visible, parked (invisible) or held by a live instance.
  const queueLength = (lane: number) => lanes[lane]!.ready.length + lanes[lane]!.parked.length + instances.reduce((n, i) => n + (i.state === 'live' && i.lane === lane ? i.inFlight : 0), 0);
  const dispatcher = settings.dispatch ? await teamQueueDispatcher(jobs, refs, laneOfModel, (job, lane) => lanes[lane]!.ready.push(job), queueLength) : undefined;
  let dispatchedAt = -Infinity;
  const backlogMs = settings.minutes * 60_000;
  const windowMs = (settings.windowS ?? (SMOKE ? 20 : backlogMs / 1000 + 60)) * 1000;
  const crashAtMs = SMOKE ? backlogMs / 3 : 25_000;

  const sends: Send[] = [];
  const admitMs: number[] = [];
  const instances: Instance[] = [];
  let stopped = false;
  let sent = 0;
  let crashed = false;
  const writeKinds = new Map<number, Map<string, number>>();

  const startInstance = (lane: number): Instance => {
    const inst: Instance = { gate: undefined as unknown as SharedBudgetGate, lane, inFlight: 0, state: 'live', idleSince: undefined, timers: new Set() };
    inst.gate = new SharedBudgetGate({
      store,
      owner: `${label}-i${instances.length}`,
      holdMs: HOLD_MS,
      // A crashed or departed instance runs nothing more.
      schedule: (fn, ms) => {
        const t = setTimeout(() => {
          inst.timers.delete(t);
          if (!stopped && inst.state === 'live') fn();
        }, ms);
        t.unref?.();
        inst.timers.add(t);
      },
      now: Date.now,
      onError: (err) => console.warn(`${label}: budget table: ${(err as Error).message}`),
      ...(WRITE_KINDS ? { debug: (line: string) => countWrite(writeKinds, lane, line) } : {}),
    });
    instances.push(inst);
    return inst;
  };

  // BENCH_DEBUG=held: per deployment, the jobs held by instances (waiting or in a call), every 10 s.
  const held = new Map<number, number>();
  const work = async (inst: Instance, job: Job): Promise<void> => {
    held.set(job.dep, (held.get(job.dep) ?? 0) + 1);
    try {
      await workOn(inst, job);
    } finally {
      held.set(job.dep, held.get(job.dep)! - 1);
    }
  };
  const workOn = async (inst: Instance, job: Job): Promise<void> => {
    for (;;) {
      if (stopped) return;
      if (crashedNow(inst)) return void park({ ...job, visibleAt: Date.now() + CRASH_REDELIVERY_MS });
      const started = performance.now();
      const now = Date.now();
      const a = await inst.gate.admit(refs[job.dep]!, job.charge, 'batch', now, { jobId: job.id, team: 'bench' });
      admitMs.push(performance.now() - started);
      if (crashedNow(inst)) return void park({ ...job, visibleAt: Date.now() + CRASH_REDELIVERY_MS });
      if (a.granted) {
        const transit = rand() * 200;
        sends.push({ at: Date.now() + transit, tokens: job.charge, dep: job.dep });
        sent += 1;
        await jobSleep(transit + 300 + rand() * 1_000);
        inst.inFlight -= 1;
        return;
      }
      const wait = a.retryAt - Date.now();
      if (a.reason === 'seat') {
        // No seat here: the worker waits until retryAt and hands the job back, visible at once.
        await jobSleep(Math.max(0, wait));
        park({ ...job, visibleAt: Date.now() });
        inst.inFlight -= 1;
        return;
      }
      if (wait > HOLD_MS) {
        park({ ...job, visibleAt: a.retryAt });
        inst.inFlight -= 1;
        return;
      }
      await jobSleep(wait);
    }
  };

  const fetchFor = (inst: Instance) => {
    const { ready } = lanes[inst.lane]!;
    if (inst.state !== 'live' || inst.inFlight > THRESHOLD) return;
    for (let k = 0; k < BATCH && ready.length > 0; k++) {
      inst.inFlight += 1;
      void work(inst, ready.shift()!);
    }
  };

  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  let peak = 0;
  startInstance(laneOf(jobs[0]?.dep ?? 0));
  while (sent < total && Date.now() - t0 < windowMs) {
    const now = Date.now();
    if (dispatcher && now - dispatchedAt >= DISPATCH_TICK_MS) {
      dispatchedAt = now;
      await dispatcher.tick();
    }
    for (const l of lanes) for (let k = l.parked.length - 1; k >= 0; k--) if (l.parked[k]!.visibleAt <= now) l.ready.push(...l.parked.splice(k, 1));
    const live = instances.filter((i) => i.state === 'live');
    // Scale out, per lane (Flex target-based scaling: queue length ÷ batchSize; every message not yet deleted counts,
    // and a job still in its team queue is no message), all lanes within the app's maximum.
    lanes.forEach((l, lane) => {
      const length = queueLength(lane);
      const mine = live.filter((i) => i.lane === lane).length;
      if (mine < Math.ceil(length / BATCH) && live.length < n && now - l.lastScaleAt >= SCALE_STEP_MS) {
        live.push(startInstance(lane));
        l.lastScaleAt = now;
      }
    });
    peak = Math.max(peak, live.length);
    if (!crashed && now - t0 >= crashAtMs) {
      // Killed without close(): no release, no report; its lease settles when it expires.
      const victim = live.find((i) => i.inFlight > 0) ?? live[0];
      if (victim) {
        victim.state = 'crashed';
        for (const t of victim.timers) clearTimeout(t);
        crashed = true;
      }
    }
    for (const inst of live) {
      if (inst.state !== 'live') continue;
      fetchFor(inst);
      if (inst.inFlight === 0 && queueLength(inst.lane) === 0) {
        inst.idleSince ??= now;
        if (now - inst.idleSince >= IDLE_LEAVE_MS) {
          inst.state = 'closing';
          void inst.gate.close().finally(() => (inst.state = 'gone'));
        }
      } else inst.idleSince = undefined;
    }
    if (DEBUG.has('held') && Math.floor((now - t0) / 10_000) !== Math.floor((now - TICK_MS - t0) / 10_000)) {
      const queued = new Map<number, number>();
      for (const l of lanes) for (const j of [...l.ready, ...l.parked]) queued.set(j.dep, (queued.get(j.dep) ?? 0) + 1);
      const perLane = lanes.map((_, lane) => live.filter((i) => i.lane === lane).length).join(' ');
      console.log(`t+${Math.round((now - t0) / 1000)}s ${live.length} instances (per lane: ${perLane}); per deployment held/queued: ${refs.map((_, d) => `${held.get(d) ?? 0}/${queued.get(d) ?? 0}`).join(' ')}`);
    }
    await sleep(TICK_MS);
  }
  if (WRITE_KINDS) for (const [lane, kinds] of [...writeKinds].sort((a, b) => a[0] - b[0])) console.log(`lane ${lane}: row writes by kind and lease length: ${[...kinds].sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const drained = sent >= total;
  const wallS = (Date.now() - t0) / 1000;
  loop.disable();
  const cpu = process.cpuUsage(cpu0);
  stopped = true;
  await Promise.all(instances.filter((i) => i.state === 'live').map((i) => i.gate.close().catch(() => undefined)));
  for (const i of instances) for (const t of i.timers) clearTimeout(t);

  // Replay every admitted call into the simulator's limiter, per deployment; utilisation over the steady span.
  sends.sort((a, b) => a.at - b.at);
  const deployments = refs.map((r, dep): DeploymentFigures => {
    const mine = sends.filter((s) => s.dep === dep);
    // A deployment whose every job was sent ends with its last arrival, even when another one's did not all go.
    const end = drained || mine.length >= jobs.filter((j) => j.dep === dep).length ? undefined : t0 + windowMs;
    let clock = 0;
    const limiter = new SlidingWindowRateLimiter({ tpm: r.tpm, rpm: r.rpm }, { now: () => clock });
    let rejected = 0;
    for (const s of mine) {
      clock = s.at;
      if (!limiter.tryAdmit(s.tokens).admitted) rejected += 1;
    }
    const first = mine[0]?.at ?? t0;
    const last = end ?? mine.at(-1)?.at ?? t0;
    // From when the first minute is full to when the backlog empties; a run too short for that uses all of it. The
    // span runs from its first arrival to its last, and counts the arrivals after the first: n arrivals, n − 1
    // gaps, so neither end counts a job whose wait lies outside the span (at 40 jobs a minute, one job is 1 % of it).
    const steady = mine.filter((s) => s.at >= (last - first > 90_000 ? first + 60_000 : first) && s.at <= last);
    const from = steady[0]?.at ?? first;
    const span = Math.max(1, last - from);
    const tokens = steady.slice(1).reduce((sum, s) => sum + s.tokens, 0);
    if (DEBUG.has('use')) {
      // Use of the TPM per 10 s from the first send, '|' where the steady span starts and ends.
      const per10 = new Map<number, number>();
      for (const s of mine) per10.set(Math.floor((s.at - first) / 10_000), (per10.get(Math.floor((s.at - first) / 10_000)) ?? 0) + s.tokens);
      const cells = Array.from({ length: Math.ceil((last - first) / 10_000) }, (_, k) => `${first + k * 10_000 <= from && from < first + (k + 1) * 10_000 ? '|' : ''}${((per10.get(k) ?? 0) / (r.tpm / 6)).toFixed(2)}`);
      console.log(`${r.deployment} use per 10 s: ${cells.join(' ')} | last ${((last - first) / 1000).toFixed(1)} s`);
    }
    return { name: r.deployment, tpm: r.tpm, jobs: mine.length, utilisation: tokens / ((r.tpm * span) / 60_000), spanS: span / 1000, rejected };
  });
  let rowWritesPerSMax = 0;
  for (const byBucket of meter.buckets.values()) for (const count of byBucket.values()) rowWritesPerSMax = Math.max(rowWritesPerSMax, count / 10);
  admitMs.sort((a, b) => a - b);
  return {
    label,
    n,
    drained,
    jobsLeft: total - sent,
    wallS,
    peakInstances: peak,
    instancesStarted: instances.length,
    deployments,
    rowWritesPerSMax,
    conflictShare: store.stats.conflicts / Math.max(1, store.stats.writes),
    admitP99Ms: percentile(admitMs, 0.99),
    txPerJob: transactions(store.stats) / Math.max(1, sent),
    maxEntityChars: meter.maxEntityChars,
    maxLeasesChars: meter.maxLeasesChars,
    reads: store.stats.reads,
    writes: store.stats.writes,
    conflicts: store.stats.conflicts,
    benchCpu: (cpu.user + cpu.system) / 1_000 / (wallS * 1_000),
    loopDelayP99Ms: loop.percentile(99) / 1e6,
  };
}

/** BENCH_DEBUG=writes: per lane, the budget row writes by kind (renew, release, pause), a renewal's lease length. */
const WRITE_KINDS = DEBUG.has('writes');
const sampled = new Set<number>();
function countWrite(kinds: Map<number, Map<string, number>>, lane: number, line: string): void {
  const m = / (renew|release|pause) attempt=\d+ (?:granted \d+ tok over ([\d.]+) ms)?/.exec(line);
  if (!m) return;
  const ms = m[2] === undefined ? undefined : Number(m[2]);
  if (ms === undefined && m[1] === 'renew' && !sampled.has(lane)) (sampled.add(lane), console.log(`lane ${lane}: ${line}`));
  const key = ms === undefined ? m[1]! : `${m[1]} ${ms < 2_500 ? '<2.5s' : ms < 5_000 ? '<5s' : ms < 9_500 ? '<9.5s' : '≥9.5s'}`;
  const byKind = kinds.get(lane) ?? new Map<string, number>();
  byKind.set(key, (byKind.get(key) ?? 0) + 1);
  kinds.set(lane, byKind);
}

/** The dispatcher's tick (src/functions/dispatcher.ts runs it every 250 ms). */
const DISPATCH_TICK_MS = 250;
/**
 * SLUICE_DISPATCH_DEPTH_SECONDS: seconds of its models' pace the dispatcher keeps on each lane, and so the fleet Flex
 * runs for it (queue length ÷ 16). Infra's rule (src/core/fleetSize.ts): ceil(p95 call latency × headroom), here
 * ceil(1.35 s × 200 %) = 3 s for the simulated calls (300–1,300 ms and up to 200 ms of transit).
 * BENCH_SCALE_DEPTH_S overrides it.
 */
const DISPATCH_DEPTH_S = Number(process.env.BENCH_SCALE_DEPTH_S) || 3;

/**
 * The backlog in one team queue (each deployment its own model, with that deployment's quota), and the app's
 * Dispatcher releasing it into each model's lane (`send`) at the quotas' pace, each lane kept within its depth
 * (`depth`: every message of the lane not yet deleted). Storage is in memory: the team queue's own costs are not the budget's, and bench:teams counts them.
 */
async function teamQueueDispatcher(jobs: Job[], refs: DeploymentRef[], laneOf: (model: string) => number, send: (job: Job, lane: number) => void, depth: (lane: number) => number): Promise<Dispatcher> {
  const store = new MemoryTeamQueues();
  const byId = new Map(jobs.map((j) => [j.id, j]));
  await store.add(groupEntries('bench', 0, jobs.map((j) => ({ id: j.id, charge: j.charge, model: `d${j.dep}` }))));
  for (const dep of new Set(jobs.map((j) => j.dep))) await store.bump({ team: 'bench', model: `d${dep}` });
  return new Dispatcher({
    store,
    run: { send: async (m, _priority, lane) => send(byId.get(m.id)!, lane), depth: async (lane) => depth(lane) },
    now: Date.now,
    quotaOf: (model) => {
      const r = refs[Number(model.slice(1))];
      return r && { tpm: r.tpm, rpm: r.rpm };
    },
    weightOf: () => 1,
    laneOf,
    depthSeconds: DISPATCH_DEPTH_S,
  });
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const azurite = await startAzurite({ rootDir: PROJECT_ROOT, inMemory: true });
  const runs: RunFigures[] = [];
  try {
    let seq = 0;
    for (const n of settings.sizes) {
      console.log(`run: ${n} instance(s) at most, one deployment of ${settings.tpm.toLocaleString('en-US')} TPM, ${settings.minutes} min of backlog${settings.dispatch ? ' released by the dispatcher' : ' on the queue'}`);
      runs.push(await runOnce(`n${n}`, azurite.connectionString, `scalebench${(seq += 1)}`, [ref(settings.tpm, 0)], n, 26 + n));
      report(runs.at(-1)!);
    }
    if (settings.ten) {
      console.log(`run: ${TEN_TPM.length} deployments, ${settings.tenN} instance(s) at most, ${settings.minutes} min of backlog each, ${settings.oneLane ? 'one queue lane for all' : "a queue lane per deployment's model"}`);
      runs.push(await runOnce(`ten`, azurite.connectionString, `scalebench${(seq += 1)}`, TEN_TPM.map(ref), settings.tenN, 2600));
      report(runs.at(-1)!);
    }
  } finally {
    await azurite.stop();
  }

  printTable('bench:scale — per run', [
    ['run', 'instances (peak/started)', 'drained', 'wall s', 'utilisation (min)', '429', 'row writes/s max', 'conflicts ÷ writes', 'admit p99 ms', 'budget tx/job', 'largest row chars', 'largest leases chars', 'bench CPU', 'loop delay p99 ms'],
    ...runs.map((r) => [r.label, `${r.peakInstances}/${r.instancesStarted}`, r.drained ? 'yes' : `no: ${r.jobsLeft} left`, r.wallS.toFixed(0), fmt(Math.min(...r.deployments.map((d) => d.utilisation))), sum(r.deployments.map((d) => d.rejected)), r.rowWritesPerSMax.toFixed(1), fmt(r.conflictShare), r.admitP99Ms.toFixed(0), fmt(r.txPerJob), r.maxEntityChars, r.maxLeasesChars, fmt(r.benchCpu), r.loopDelayP99Ms.toFixed(0)]),
  ]);
  const all = runs.flatMap((r) => r.deployments);
  const single = runs.filter((r) => r.label !== 'ten');
  const ten = runs.find((r) => r.label === 'ten');
  const result = {
    utilisation_min: round(Math.min(...all.map((d) => d.utilisation))),
    utilisation_by_n: Object.fromEntries(single.map((r) => [String(r.n), round(r.deployments[0]!.utilisation)])),
    utilisation_by_deployment: ten ? Object.fromEntries(ten.deployments.map((d) => [d.name, round(d.utilisation)])) : {},
    rejected_429: sum(all.map((d) => d.rejected)),
    max_row_chars: Math.max(0, ...runs.map((r) => r.maxEntityChars)),
    max_leases_chars: Math.max(0, ...runs.map((r) => r.maxLeasesChars)),
    row_writes_per_s_max: round(Math.max(0, ...runs.map((r) => r.rowWritesPerSMax)), 1),
    conflict_share_max: round(Math.max(0, ...runs.map((r) => r.conflictShare))),
    admit_p99_ms_max: round(Math.max(0, ...runs.map((r) => r.admitP99Ms)), 0),
    budget_tx_per_job_max: round(Math.max(0, ...runs.map((r) => r.txPerJob))),
    undrained_runs: Object.fromEntries(runs.filter((r) => !r.drained).map((r) => [r.label, r.jobsLeft])),
    backlog_minutes: settings.minutes,
    dispatch: settings.dispatch,
    runs: runs.map((r) => ({
      run: r.label,
      instances_peak: r.peakInstances,
      drained: r.drained,
      utilisation: round(Math.min(...r.deployments.map((d) => d.utilisation))),
      row_writes_per_s: round(r.rowWritesPerSMax, 1),
      conflict_share: round(r.conflictShare),
      admit_p99_ms: round(r.admitP99Ms, 0),
      budget_tx_per_job: round(r.txPerJob),
      row_chars: r.maxEntityChars,
      bench_cpu: round(r.benchCpu, 2),
      loop_delay_p99_ms: round(r.loopDelayP99Ms, 0),
    })),
  };
  printResult(result);
}

function report(r: RunFigures): void {
  const jobs = Math.max(1, sum(r.deployments.map((d) => d.jobs)));
  printTable(`${r.label}: ${r.peakInstances} instances at peak, ${r.instancesStarted} started, ${r.drained ? `drained in ${r.wallS.toFixed(0)} s` : `window ended after ${r.wallS.toFixed(0)} s, ${r.jobsLeft} jobs left`}; per job: ${fmt(r.reads / jobs)} row reads, ${fmt(r.writes / jobs)} writes, ${fmt(r.conflicts / jobs)} conflicts`, [
    ['deployment', 'TPM', 'jobs sent', 'utilisation', 'steady span s', '429'],
    ...r.deployments.map((d) => [d.name, d.tpm, d.jobs, fmt(d.utilisation), d.spanS.toFixed(0), d.rejected]),
  ]);
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '-');
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
