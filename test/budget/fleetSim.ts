/**
 * A fleet of gates on one in-memory row, driven by a fake clock, with every admitted call replayed into the
 * simulator's own sliding-window rate limiter (the thing Sluice must stay under).
 */
import { SlidingWindowRateLimiter } from '../../local/simulator/rateLimiter';
import type { DeploymentRef } from '../../src/core/budget/gate';
import { SharedBudgetGate, type SharedBudgetOptions } from '../../src/core/budget/sharedBudget';
import { MemoryBudgetRowStore } from '../support/memoryStores';
import type { JobPriority } from '../../src/core/jobs';
import { prng } from '../support/prng';
export { prng };

export function deployment(tpm: number, rpm = Math.floor((tpm * 6) / 1000)): DeploymentRef {
  return { key: 'http://sim.test|gpt-4o-mini', region: 'test', deployment: 'gpt-4o-mini', tpm, rpm };
}


export interface Send {
  /** When the call reached the service (admission + transit). */
  at: number;
  tokens: number;
  instance: number;
  priority: JobPriority;
  /** When the job first asked. */
  queuedAt: number;
}

export interface FleetOptions {
  ref: DeploymentRef;
  instances: number;
  /** Jobs in flight per instance. */
  concurrency: number;
  durationMs: number;
  seed: number;
  /** Charge of a new job. */
  charge: (rand: () => number) => number;
  /** Priority of a new job. @default batch */
  priority?: (rand: () => number, instance: number) => JobPriority;
  /** Model call latency, ms. @default 300–1300 */
  latency?: (rand: () => number) => number;
  /** Admission → arrival at the service, ms. @default 0–200 */
  transit?: (rand: () => number) => number;
  /** Instance i stops dead (no close, no report) at this time. */
  crashAt?: (instance: number) => number | undefined;
  /** Instance i starts at this time. @default 0 */
  startAt?: (instance: number) => number;
  gate?: Partial<SharedBudgetOptions>;
  stepMs?: number;
  /** Waits up to this long are held by the worker; longer ones park the job in the queue. @default 2000 */
  holdMs?: number;
  t0?: number;
  /** A finite backlog of this many jobs (then the queue is empty; the run ends when the last one is sent).
   *  @default endless */
  backlog?: number;
  /** Jobs reach an instance as the Functions host fetches them: `batch` messages at a time, once its jobs in flight
   *  drop to `threshold` (host.json batchSize, newBatchThreshold; concurrency should be batch + threshold).
   *  @default a new job as soon as a slot frees */
  fetch?: { batch: number; threshold: number };
  /** Give the gates a fake-clock `schedule` (idle release, on-time renewal), as the worker does. @default false */
  timers?: boolean;
}

export interface FleetResult {
  sends: Send[];
  store: MemoryBudgetRowStore;
  gates: SharedBudgetGate[];
  /** 429s the simulator's limiter gave (must be 0). */
  rejected: number;
  denials: number;
  t0: number;
  /** Jobs still parked at the end. */
  parked: number;
  /** When the last job was sent (a finite backlog's drain end), epoch ms. */
  lastSendAt: number;
}

export async function runFleet(o: FleetOptions): Promise<FleetResult> {
  const rand = prng(o.seed);
  const store = new MemoryBudgetRowStore();
  const t0 = o.t0 ?? 1_700_000_000_000;
  const step = o.stepMs ?? 20;
  const holdMs = o.holdMs ?? 2_000;
  let clock = t0;
  const timers: Array<{ at: number; fn: () => void }> = [];
  const timerOptions: Partial<SharedBudgetOptions> = o.timers ? { schedule: (fn, ms) => void timers.push({ at: clock + ms, fn }), now: () => clock } : {};
  const gates = Array.from({ length: o.instances }, (_, i) => new SharedBudgetGate({ store, owner: `i${i}`, holdMs, ...timerOptions, ...o.gate }));
  interface Job {
    id: string;
    readyAt: number;
    charge: number;
    priority: JobPriority;
    queuedAt: number;
  }
  // The shared queue: an endless backlog plus parked jobs that become visible again at their retryAt.
  const parked: Job[] = [];
  let jobCounter = 0;
  // Kept in order of readyAt (a binary insert), so that taking the earliest visible one is cheap with many parked.
  const park = (job: Job) => {
    let lo = 0;
    let hi = parked.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (parked[mid]!.readyAt <= job.readyAt) lo = mid + 1;
      else hi = mid;
    }
    parked.splice(lo, 0, job);
  };
  /** Jobs refused for want of a seat: held in their slot until readyAt, then handed back (route.ts holdOrPark). */
  const handBack = new Set<Job>();
  const nextJob = (i: number, t: number): Job | undefined => {
    if (parked.length > 0 && parked[0]!.readyAt <= t) return { ...parked.shift()!, readyAt: t };
    if (o.backlog !== undefined && jobCounter >= o.backlog) return undefined;
    return { id: `job${(jobCounter += 1)}`, readyAt: t, charge: o.charge(rand), priority: o.priority?.(rand, i) ?? 'batch', queuedAt: t };
  };
  const workers: Array<Array<Job | undefined>> = gates.map(() => Array.from({ length: o.concurrency }, () => undefined));
  const busyUntil: number[][] = gates.map(() => Array.from({ length: o.concurrency }, () => 0));
  const sends: Send[] = [];
  let denials = 0;
  for (let t = t0; t < t0 + o.durationMs; t += step) {
    clock = t;
    if (timers.length > 0) {
      const due = timers.filter((x) => x.at <= t);
      if (due.length > 0) {
        timers.splice(0, timers.length, ...timers.filter((x) => x.at > t));
        for (const x of due) x.fn();
        // Let the released or renewed leases' writes land (the memory store answers in microtasks).
        for (let k = 0; k < 20; k++) await Promise.resolve();
      }
    }
    if (o.backlog !== undefined && sends.length >= o.backlog) break;
    for (let i = 0; i < gates.length; i++) {
      const crash = o.crashAt?.(i);
      if (crash !== undefined && t >= t0 + crash) continue;
      if (t < t0 + (o.startAt?.(i) ?? 0)) continue;
      if (o.fetch) {
        const inFlight = workers[i]!.filter((j, s) => j !== undefined || busyUntil[i]![s]! > t).length;
        if (inFlight <= o.fetch.threshold) {
          for (let s = 0, n = 0; s < o.concurrency && n < o.fetch.batch; s++) {
            if (workers[i]![s] !== undefined || busyUntil[i]![s]! > t) continue;
            const fetched = nextJob(i, t);
            if (!fetched) break;
            workers[i]![s] = fetched;
            n += 1;
          }
        }
      }
      for (let s = 0; s < o.concurrency; s++) {
        if (busyUntil[i]![s]! > t) continue;
        const job = o.fetch ? workers[i]![s] : (workers[i]![s] ??= nextJob(i, t));
        if (!job || job.readyAt > t) continue;
        if (handBack.delete(job)) {
          park({ ...job, readyAt: t });
          workers[i]![s] = undefined;
          continue;
        }
        // The job's id, as the worker passes it (the gate weighs its lease by the jobs waiting here).
        const a = await gates[i]!.admit(o.ref, job.charge, job.priority, t, { jobId: job.id, team: 'sim' });
        if (a.granted) {
          const transit = o.transit?.(rand) ?? rand() * 200;
          sends.push({ at: t + transit, tokens: job.charge, instance: i, priority: job.priority, queuedAt: job.queuedAt });
          busyUntil[i]![s] = t + transit + (o.latency?.(rand) ?? 300 + rand() * 1000);
          workers[i]![s] = undefined;
        } else {
          denials += 1;
          if (!(a.retryAt > t)) throw new Error(`retryAt ${a.retryAt} is not after now ${t}`);
          job.readyAt = a.retryAt;
          if (a.reason === 'seat') handBack.add(job);
          else if (a.retryAt - t > holdMs) {
            park(job);
            workers[i]![s] = undefined;
          }
        }
      }
    }
  }
  sends.sort((a, b) => a.at - b.at);
  let now = t0;
  const limiter = new SlidingWindowRateLimiter({ tpm: o.ref.tpm, rpm: o.ref.rpm }, { now: () => now });
  let rejected = 0;
  for (const s of sends) {
    now = s.at;
    if (!limiter.tryAdmit(s.tokens).admitted) rejected += 1;
  }
  return { sends, store, gates, rejected, denials, t0, parked: parked.length, lastSendAt: sends.length > 0 ? sends[sends.length - 1]!.at : t0 };
}

/** Largest sum of `value` over any window of `windowMs` (sends sorted by time). */
export function maxWindow(sends: readonly Send[], windowMs: number, value: (s: Send) => number): number {
  let best = 0;
  let sum = 0;
  let head = 0;
  for (const s of sends) {
    sum += value(s);
    while (sends[head]!.at <= s.at - windowMs) sum -= value(sends[head++]!);
    best = Math.max(best, sum);
  }
  return best;
}

/** Tokens sent in [from, to) ÷ what the quota allows in that span. */
export function utilisation(sends: readonly Send[], tpm: number, from: number, to: number): number {
  const tokens = sends.filter((s) => s.at >= from && s.at < to).reduce((n, s) => n + s.tokens, 0);
  return tokens / ((tpm * (to - from)) / 60_000);
}
