/**
 * What the queue-triggered worker does with one job id: claim the job, route it (budget, breaker, the call), store
 * the result. A job that cannot run yet (no budget, throttled, regions failing) goes back on the queue with a
 * visibility delay and the invocation succeeds, so quota never spends dequeue attempts; only a crash does.
 *
 * Steps: read and triage the record (triage), claim it with a recovery message sent first (claim), route it
 * (worker/route.ts), and drop the recovery message. The job record's writes live in worker/record.ts.
 */
import { randomUUID } from 'node:crypto';
import { alwaysClosed } from './breaker/health';
import { isTerminal, StaleJobError, type JobRecord } from './jobs';
import { claimEnd } from './worker/record';
import { routeJob } from './worker/route';
import { systemClock, type ClaimedJob, type Delivery, type JobLogger, type RunContext, type WorkerDeps, type WorkerResult } from './worker/types';

export { systemClock } from './worker/types';
export type { Clock, Delivery, FinishedHook, JobLogger, LogLevel, ModelCallRecord, WorkerDeps, WorkerOutcome, WorkerResult, WorkerSettings } from './worker/types';

/** The recovery message becomes visible this long after the claim ends, ms. */
const WATCHDOG_LAG_MS = 1_000;
/** Times a claim that lost an ETag race is tried again with a fresh read. */
const CLAIM_RACES = 3;

const noLog: JobLogger = () => {};

/** Runs one delivery of a job message. Throws only on storage failures (the host then retries the message). */
export async function processJob(deps: WorkerDeps, jobId: string, delivery: Delivery = {}): Promise<WorkerResult> {
  const ctx: RunContext = {
    deps,
    clock: deps.clock ?? systemClock,
    log: deps.log ?? noLog,
    random: deps.random ?? Math.random,
    health: deps.health ?? alwaysClosed,
  };
  for (let races = 0; ; races += 1) {
    const stored = await deps.jobs.get(jobId);
    if (!stored) {
      ctx.log('warn', 'job record not found; message dropped', { jobId });
      return { outcome: 'missing' };
    }
    const skipped = triage(ctx, stored.job, delivery);
    if (skipped) return skipped;
    const claim = await claimJob(ctx, stored.job, stored.etag, delivery, races < CLAIM_RACES);
    if (claim === 'raced') continue;
    if ('outcome' in claim) return claim;
    const result = await routeJob(ctx, claim.claimed);
    // Finished, parked or lost the claim: the recovery message is not needed (if it stays, it is harmless).
    await releaseWatchdog(ctx, claim.cancelWatchdog, jobId);
    return result;
  }
}

/** Why this delivery ends before a claim: the job is already finished, or this is a replay of one that moved on. */
function triage(ctx: RunContext, job: JobRecord, delivery: Delivery): WorkerResult | undefined {
  const jobId = job.id;
  if (isTerminal(job.status)) {
    ctx.log('debug', `job already ${job.status}; redelivery acknowledged without a model call`, { jobId });
    return { outcome: 'already-finished' };
  }
  if (delivery.replay && job.status !== 'queued') {
    // A replay's message is only for a row whose own message may never have been sent. A job that is past queued
    // has a message of its own (a claim's recovery message, a waiting job's delayed one): deferring this one too
    // would only keep a duplicate in the queue for the length of the claim.
    ctx.log('debug', `replay message for a job already ${job.status}; dropped`, { jobId });
    return { outcome: 'duplicate' };
  }
  return undefined;
}

type Claim = 'raced' | WorkerResult | { claimed: ClaimedJob; cancelWatchdog?: () => Promise<void> };

/**
 * Claims the job for one model call's time. Another worker's live claim defers this delivery until it runs out.
 * The recovery message goes out before the claim, so no instant exists with a claim but no way back. 'raced': the
 * record changed since it was read and `mayRace` allows another read.
 */
async function claimJob(ctx: RunContext, job: JobRecord, etag: string, delivery: Delivery, mayRace: boolean): Promise<Claim> {
  const { deps, clock, log } = ctx;
  const now = clock.now();
  if (job.status === 'running' && job.claimUntil !== undefined && job.claimUntil > now) {
    // Another worker holds it (or one that died moments ago): look again once its claim has run out.
    await deps.requeue(job.id, job.claimUntil - now + 1000);
    log('debug', 'job is claimed by another worker; re-enqueued for after the claim', { jobId: job.id });
    return { outcome: 'claimed-elsewhere' };
  }
  const claimUntil = claimEnd(ctx, now);
  const cancelWatchdog = deps.watchdog ? await deps.watchdog(job.id, claimUntil - now + WATCHDOG_LAG_MS) : undefined;
  const claimed: JobRecord = {
    ...job,
    status: 'running',
    claimId: randomUUID(),
    claimUntil,
    startedAt: job.startedAt ?? now,
    notBefore: undefined,
    dequeueCount: delivery.dequeueCount ?? job.dequeueCount,
  };
  try {
    const claimEtag = await deps.jobs.replace(claimed, etag);
    log('debug', `claimed until ${new Date(claimUntil).toISOString()}`, { jobId: job.id, attempt: claimed.attempts });
    return { claimed: { job: claimed, etag: claimEtag }, ...(cancelWatchdog ? { cancelWatchdog } : {}) };
  } catch (err) {
    await releaseWatchdog(ctx, cancelWatchdog, job.id);
    if (err instanceof StaleJobError && mayRace) return 'raced';
    throw err;
  }
}

async function releaseWatchdog(ctx: RunContext, cancel: (() => Promise<void>) | undefined, jobId: string): Promise<void> {
  if (!cancel) return;
  try {
    await cancel();
  } catch (err) {
    ctx.log('warn', `recovery message not deleted (it will be acknowledged without a model call): ${(err as Error).message}`, { jobId });
  }
}
