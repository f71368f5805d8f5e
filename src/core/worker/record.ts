/**
 * The job record's side of one delivery: renewing the claim, parking a job that must wait, and storing the end.
 * Storing a model's answer is the one write worth waiting for (losing it means calling the model again), so it is
 * retried through brief storage outages and otherwise thrown for the host to retry the message.
 */
import { isTerminal, StaleJobError, type JobError, type JobRecord } from '../jobs';
import type { ClaimedJob, RunContext, WorkerResult } from './types';

/** How long a claim outlives one model call, ms: time to store the result, plus clock skew between instances. */
export const CLAIM_MARGIN_MS = 30_000;
/** Renew the claim before a call when less than callTimeoutMs + this is left, ms. */
const CLAIM_RENEW_MARGIN_MS = 10_000;
/** The result write gives up this long before the claim ends, ms, so no other worker can hold the job meanwhile. */
const SAVE_DEADLINE_MARGIN_MS = 2_000;

/** A claim that lasts one model call from `now`, epoch ms. */
export function claimEnd(ctx: RunContext, now: number): number {
  return now + ctx.deps.settings.callTimeoutMs + CLAIM_MARGIN_MS;
}

/**
 * Keeps the claim ahead of the next call. A job can make several calls in one delivery (failover, in-process holds),
 * so a fixed claim could run out while this worker is alive and let a second worker call the model too. `force`
 * writes even when the claim has time left (to show or clear a hold). Returns false when another worker took the
 * job over (our claim had expired) or it was cancelled.
 */
export async function renewClaim(ctx: RunContext, claimed: ClaimedJob, force = false): Promise<boolean> {
  const now = ctx.clock.now();
  const { job } = claimed;
  if (!force && (job.claimUntil ?? 0) - now >= ctx.deps.settings.callTimeoutMs + CLAIM_RENEW_MARGIN_MS) return true;
  job.claimUntil = claimEnd(ctx, now);
  try {
    claimed.etag = await ctx.deps.jobs.replace(job, claimed.etag);
    return true;
  } catch (err) {
    if (err instanceof StaleJobError) return false;
    throw err;
  }
}

/** Status `waiting` with an estimated start; the message comes back when the wait is over. */
export async function park(ctx: RunContext, claimed: ClaimedJob, retryAt: number): Promise<WorkerResult> {
  const { job } = claimed;
  const now = ctx.clock.now();
  const waiting: JobRecord = { ...job, status: 'waiting', notBefore: retryAt, claimId: undefined, claimUntil: undefined };
  await writeOwned(ctx, waiting, claimed.etag);
  await ctx.deps.requeue(job.id, retryAt - now);
  ctx.log('debug', `waiting ${retryAt - now} ms for quota or a healthy region`, { jobId: job.id, attempt: job.attempts });
  return { outcome: 'waiting' };
}

/**
 * Stores the job's end (succeeded, or failed with `error`), then runs the finished hooks. A storage failure throws
 * (the host retries the message; the claim keeps that retry from calling the model while it lasts); a hook failure
 * is only a warning.
 */
export async function finish(ctx: RunContext, claimed: ClaimedJob, error?: JobError): Promise<WorkerResult> {
  const { job } = claimed;
  const done: JobRecord = {
    ...job,
    status: error ? 'failed' : 'succeeded',
    error,
    completedAt: ctx.clock.now(),
    claimId: undefined,
    claimUntil: undefined,
    notBefore: undefined,
  };
  const written = await withStorageRetry(ctx, job, () => writeOwned(ctx, done, claimed.etag));
  if (!written) {
    ctx.log('warn', 'job finished elsewhere while this call ran; result discarded', { jobId: job.id, attempt: job.attempts });
    return { outcome: 'already-finished' };
  }
  await runFinishedHooks(ctx, done);
  return { outcome: error ? 'failed' : 'succeeded', finished: done };
}

async function runFinishedHooks(ctx: RunContext, done: JobRecord): Promise<void> {
  const hooks = ctx.deps.onFinished ?? [];
  const results = await Promise.allSettled(hooks.map((hook) => hook(done)));
  for (const r of results) {
    if (r.status === 'rejected') ctx.log('warn', `after-finish hook failed: ${(r.reason as Error)?.message ?? r.reason}`, { jobId: done.id });
  }
}

/** Retries a write with backoff while storage is unreachable and our claim leaves time; then throws. */
async function withStorageRetry<T>(ctx: RunContext, job: JobRecord, write: () => Promise<T>): Promise<T> {
  for (let retry = 0; ; retry += 1) {
    try {
      return await write();
    } catch (err) {
      const delay = Math.min(5_000, 250 * 2 ** retry);
      const deadline = (job.claimUntil ?? 0) - SAVE_DEADLINE_MARGIN_MS;
      if (!ctx.deps.isStorageOutage?.(err) || ctx.clock.now() + delay > deadline) throw err;
      ctx.log('warn', `storage unreachable while storing the result; retrying in ${delay} ms: ${(err as Error).message}`, { jobId: job.id, attempt: job.attempts });
      await ctx.clock.sleep(delay);
    }
  }
}

/**
 * Writes a record this worker claimed. If the ETag moved (our claim ran out and someone re-claimed), re-read:
 * write only if the job is not terminal yet and nobody else holds a live claim. Returns false if not written.
 */
async function writeOwned(ctx: RunContext, next: JobRecord, etag: string): Promise<boolean> {
  const { jobs } = ctx.deps;
  try {
    await jobs.replace(next, etag);
    return true;
  } catch (err) {
    if (!(err instanceof StaleJobError)) throw err;
  }
  const current = await jobs.get(next.id);
  if (!current || isTerminal(current.job.status)) return false;
  if (current.job.status === 'running' && (current.job.claimUntil ?? 0) > ctx.clock.now()) return false;
  await jobs.replace({ ...next, attempts: Math.max(next.attempts, current.job.attempts) }, current.etag);
  return true;
}
