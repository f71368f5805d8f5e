/**
 * One dispatcher at a time: an invocation takes the dispatch lease (a row any instance may write, ETag-guarded),
 * ticks while it holds it, and gives it back when its time is up or the team queues stay empty. The timer starts an
 * invocation every few seconds on whichever instance Azure picks; the lease keeps a second one (another instance, an
 * overlapping timer, the local host's worker processes) from releasing the same jobs twice. Two dispatchers for a
 * moment (a lease that lapsed during a stall) release some jobs twice at worst: the worker's claim runs a job once.
 */
import type { Dispatcher } from './dispatcher';

export interface DispatchLease {
  /** Takes or renews the lease for `owner` until `until` (epoch ms); false when another owner holds it. */
  acquire(owner: string, until: number, now: number): Promise<boolean>;
  /** Gives the lease back if `owner` holds it. */
  release(owner: string): Promise<void>;
}

export interface DispatchLoopOptions {
  dispatcher: Dispatcher;
  lease: DispatchLease;
  owner: string;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Longest an invocation runs, ms (within the function timeout). */
  runMs: number;
  /** Pause between ticks while work waits, ms. @default 250 */
  tickMs?: number;
  /** An invocation that released nothing and found every team queue empty for this long ends, ms. @default 3000 */
  idleExitMs?: number;
  /** The lease is taken for this long and renewed at a third of it, ms. @default 15000 */
  leaseMs?: number;
  /** The app is shutting down: end now. */
  stopping?(): boolean;
  onError?(err: unknown): void;
}

export interface LoopResult {
  /** False when another dispatcher held the lease. */
  ran: boolean;
  ticks: number;
  released: number;
}

export async function runDispatch(o: DispatchLoopOptions): Promise<LoopResult> {
  const tickMs = o.tickMs ?? 250;
  const idleExitMs = o.idleExitMs ?? 3_000;
  const leaseMs = o.leaseMs ?? 15_000;
  const started = o.now();
  if (!(await o.lease.acquire(o.owner, started + leaseMs, started))) return { ran: false, ticks: 0, released: 0 };
  let renewedAt = started;
  let busyAt = started;
  let ticks = 0;
  let released = 0;
  try {
    while (!o.stopping?.()) {
      const now = o.now();
      if (now - started >= o.runMs) break;
      if (now - renewedAt >= leaseMs / 3) {
        if (!(await o.lease.acquire(o.owner, now + leaseMs, now))) break;
        renewedAt = now;
      }
      try {
        const r = await o.dispatcher.tick();
        ticks += 1;
        released += r.released;
        if (r.released > 0 || r.backlogged > 0) busyAt = o.now();
      } catch (err) {
        o.onError?.(err);
      }
      if (o.now() - busyAt >= idleExitMs) break;
      await o.sleep(tickMs);
    }
  } finally {
    await o.lease.release(o.owner).catch((err: unknown) => o.onError?.(err));
  }
  return { ran: true, ticks, released };
}
