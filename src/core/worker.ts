/**
 * What the queue-triggered worker does with one job id: claim the job, ask the budget, call a deployment, store
 * the result. A job that cannot run yet (no budget, throttled, regions failing) goes back on the queue with a
 * visibility delay and the invocation succeeds, so quota never spends dequeue attempts; only a crash does.
 */
import { randomUUID } from 'node:crypto';
import type { EndpointSettings } from './endpoints';
import type { BudgetGate } from './budget/gate';
import { alwaysClosed, type EndpointHealth } from './breaker/health';
import { outcomeOf } from './breaker/outcome';
import { mayLeaveGroup, type PassedOver } from './breaker/spillover';
import { SluiceError, UpstreamUnavailableError } from './errors';
import { chargeOf, isTerminal, StaleJobError, type JobRecord, type JobRepository } from './jobs';
import type { ModelClient } from './modelClient';
import { retryDelayMs } from './retry';
import { candidatesFor, deploymentRef } from './routing';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export type LogLevel = 'info' | 'warn' | 'error';
/** Every line carries the job id, and the attempt and region when known. */
export type JobLogger = (level: LogLevel, message: string, fields: { jobId: string; attempt?: number; region?: string }) => void;

export interface WorkerSettings {
  /** Per-call timeout, ms. */
  callTimeoutMs: number;
  /** Longest delay one retry may wait, ms (caps Retry-After). */
  maxRetryDelayMs: number;
  /** Waits up to this long are held in-process instead of re-enqueued, ms. @default 2000 */
  holdInProcessMs: number;
  /** Model calls that ended in a transient upstream failure before the job fails. @default 8 */
  maxTransientFailures: number;
}

export interface WorkerDeps {
  jobs: JobRepository;
  /** Re-enqueue the job id, visible after delayMs. */
  requeue(jobId: string, delayMs: number): Promise<void>;
  model: ModelClient;
  budget: BudgetGate;
  /** Shared circuit breakers per deployment. @default alwaysClosed */
  health?: EndpointHealth;
  /** Per-model spill-over to the next priority group when a group's budget is spent. @default always true */
  spillover?(model: string): boolean;
  endpoints: readonly EndpointSettings[];
  settings: WorkerSettings;
  clock?: Clock;
  log?: JobLogger;
  random?: () => number;
  /** Called once when the job reaches a terminal state (usage records, telemetry). Failures are logged, not thrown. */
  onFinished?(job: JobRecord): Promise<void>;
  /** Called after every model call, ok or not (a telemetry dependency carrying the job id). Must not throw. */
  onModelCall?(call: ModelCallRecord): void;
  /**
   * Issue 11 (crash recovery): enqueues a recovery message for the job, visible `delayMs` from now (just after the
   * claim runs out), and returns a function that deletes it again. Sent before every claim, so a worker killed at any
   * point leaves a message that finishes the job soon after its claim expires, instead of the trigger's own message
   * (which reappears only after the host's 10-minute processing visibility). See docs/reliability.md.
   * @default none (recovery then waits for the trigger message to reappear)
   */
  watchdog?(jobId: string, delayMs: number): Promise<() => Promise<void>>;
  /** Issue 11: true for errors that mean storage is briefly unreachable; the result write is retried on those. @default none */
  isStorageOutage?(err: unknown): boolean;
  /** Issue 11: true once the process is shutting down: a job that would be held in-process is parked instead. */
  stopping?(): boolean;
  /** Issue 11, TEST-ONLY fault injection (SLUICE_FAULT_CRASH_AT): called at these points; may kill the process. */
  faultPoint?(point: 'before-call' | 'after-call', jobId: string): void;
}

/** How long a claim outlives one model call, ms: time to store the result, plus clock skew between instances. */
const CLAIM_MARGIN_MS = 30_000;
/** A hold longer than this is written to the job, so that it shows as `waiting` with an estimated start, ms. */
const SHOWN_HOLD_MS = 2_000;
/** Renew the claim before a call when less than callTimeoutMs + this is left, ms. */
const CLAIM_RENEW_MARGIN_MS = 10_000;
/** The recovery message becomes visible this long after the claim ends, ms. */
const WATCHDOG_LAG_MS = 1_000;

/** One model call, for telemetry. */
export interface ModelCallRecord {
  jobId: string;
  attempt: number;
  region: string;
  deployment: string;
  model: string;
  endpoint: string;
  startedAt: number;
  durationMs: number;
  /** HTTP status, 0 when no response arrived. */
  status: number;
  success: boolean;
  /** Stable error code or "ok". */
  outcome: string;
}

export type WorkerOutcome = 'succeeded' | 'failed' | 'waiting' | 'already-finished' | 'claimed-elsewhere' | 'missing' | 'duplicate';

const noLog: JobLogger = () => {};

/** Which delivery of the queue message this is. */
export interface Delivery {
  /** 1 for the first delivery; higher only after a worker failed on the message. */
  dequeueCount?: number;
  /** The message came from an idempotent replay: it only starts a job that is still queued. */
  replay?: boolean;
}

/** Runs one delivery of a job message. Throws only on storage failures (the host then retries the message). */
export async function processJob(deps: WorkerDeps, jobId: string, delivery: Delivery = {}): Promise<WorkerOutcome> {
  const clock = deps.clock ?? systemClock;
  const log = deps.log ?? noLog;
  for (let tries = 0; ; tries += 1) {
    const stored = await deps.jobs.get(jobId);
    if (!stored) {
      log('warn', 'job record not found; message dropped', { jobId });
      return 'missing';
    }
    const { job, etag } = stored;
    if (isTerminal(job.status)) {
      log('info', `job already ${job.status}; redelivery acknowledged without a model call`, { jobId });
      return 'already-finished';
    }
    const now = clock.now();
    if (delivery.replay && job.status !== 'queued') {
      // Issue 11: a replay's message is only for a row whose own message may never have been sent. A job that is past
      // queued has a message of its own (a claim's recovery message, a waiting job's delayed one): deferring this one
      // too would only keep a duplicate in the queue for the length of the claim.
      log('info', `replay message for a job already ${job.status}; dropped`, { jobId });
      return 'duplicate';
    }
    if (job.status === 'running' && job.claimUntil !== undefined && job.claimUntil > now) {
      // Another worker holds it (or one that died moments ago): look again once its claim has run out.
      await deps.requeue(jobId, job.claimUntil - now + 1000);
      log('info', 'job is claimed by another worker; re-enqueued for after the claim', { jobId });
      return 'claimed-elsewhere';
    }
    const claimId = randomUUID();
    const claimUntil = now + deps.settings.callTimeoutMs + CLAIM_MARGIN_MS;
    // Issue 11: the recovery message goes out before the claim, so no instant exists with a claim but no way back.
    const cancelWatchdog = deps.watchdog ? await deps.watchdog(jobId, claimUntil - now + WATCHDOG_LAG_MS) : undefined;
    const claimed: JobRecord = {
      ...job,
      status: 'running',
      claimId,
      claimUntil,
      startedAt: job.startedAt ?? now,
      notBefore: undefined,
      dequeueCount: delivery.dequeueCount ?? job.dequeueCount,
    };
    let claimEtag: string;
    try {
      claimEtag = await deps.jobs.replace(claimed, etag);
    } catch (err) {
      await releaseWatchdog(cancelWatchdog, jobId, log);
      if (err instanceof StaleJobError && tries < 3) continue;
      throw err;
    }
    log('info', `claimed until ${new Date(claimUntil).toISOString()}`, { jobId, attempt: claimed.attempts });
    const outcome = await run(deps, claimed, claimEtag, clock, log);
    // Issue 11: finished, parked or lost the claim: the recovery message is not needed (if it stays, it is harmless).
    await releaseWatchdog(cancelWatchdog, jobId, log);
    return outcome;
  }
}

async function releaseWatchdog(cancel: (() => Promise<void>) | undefined, jobId: string, log: JobLogger): Promise<void> {
  if (!cancel) return;
  try {
    await cancel();
  } catch (err) {
    log('warn', `recovery message not deleted (it will be acknowledged without a model call): ${(err as Error).message}`, { jobId });
  }
}

/**
 * Issue 11: keeps the claim ahead of the next call. A job can make several calls in one invocation (failover,
 * in-process holds), so a fixed claim could run out while this worker is alive and let a second worker call the
 * model too. Returns the new ETag, or undefined when another worker took the job over (our claim had expired).
 */
async function renewClaim(deps: WorkerDeps, job: JobRecord, etag: string, now: number, force = false): Promise<string | undefined> {
  if (!force && (job.claimUntil ?? 0) - now >= deps.settings.callTimeoutMs + CLAIM_RENEW_MARGIN_MS) return etag;
  job.claimUntil = now + deps.settings.callTimeoutMs + CLAIM_MARGIN_MS;
  try {
    return await deps.jobs.replace(job, etag);
  } catch (err) {
    if (err instanceof StaleJobError) return undefined;
    throw err;
  }
}

interface RoundResult {
  kind: 'done' | 'wait';
  /** For 'wait': epoch ms to try again. */
  retryAt?: number;
}

async function run(deps: WorkerDeps, job: JobRecord, etag: string, clock: Clock, log: JobLogger): Promise<WorkerOutcome> {
  const random = deps.random ?? Math.random;
  const candidates = candidatesFor(job.model, deps.endpoints, random);
  if (candidates.length === 0) {
    return finish(deps, job, etag, log, { code: 'model_not_configured', message: `no deployment serves model "${job.model}"` });
  }
  const charge = chargeOf(job);
  const health = deps.health ?? alwaysClosed;
  const spillover = deps.spillover?.(job.model) ?? true;
  for (;;) {
    let earliestRetry = Number.POSITIVE_INFINITY;
    let transient: SluiceError | undefined;
    // How each deployment of the current priority group was passed over, for the spill-over rule.
    let group: { priority: number; passed: PassedOver[] } | undefined;
    for (const endpoint of candidates) {
      if (group && group.priority !== endpoint.priority) {
        if (!mayLeaveGroup(group.passed, spillover)) break;
        group = undefined;
      }
      group ??= { priority: endpoint.priority, passed: [] };
      const ref = deploymentRef(endpoint);
      const permission = await health.check(ref, clock.now());
      if (permission === 'open') {
        group.passed.push('open');
        earliestRetry = Math.min(earliestRetry, health.retryAt(ref) ?? clock.now() + deps.settings.maxRetryDelayMs);
        continue;
      }
      const admission = await deps.budget.admit(ref, charge, job.priority, clock.now(), { jobId: job.id, team: job.team, model: job.model });
      if (!admission.granted) {
        group.passed.push('budget');
        earliestRetry = Math.min(earliestRetry, admission.retryAt);
        // A probe we hold but cannot use is released by its lease running out.
        continue;
      }
      // Issue 11: never start a call that could outlive our claim. A job shown as waiting during a hold is shown
      // running again (same write).
      const shownWaiting = job.notBefore !== undefined;
      job.notBefore = undefined;
      const renewed = await renewClaim(deps, job, etag, clock.now(), shownWaiting);
      if (renewed === undefined) {
        log('warn', 'the job changed under our claim (claim expired and taken over, or cancelled or expired while held for quota); stopping here', { jobId: job.id, attempt: job.attempts });
        return 'claimed-elsewhere';
      }
      etag = renewed;
      // The renewal was a storage round trip: re-check (from the local cache, free) that no other job on this instance
      // opened the breaker meanwhile, so one instance sends at most one failing call per outage.
      if (permission === 'closed' && (await health.check(ref, clock.now())) === 'open') {
        group.passed.push('open');
        earliestRetry = Math.min(earliestRetry, health.retryAt(ref) ?? clock.now() + deps.settings.maxRetryDelayMs);
        continue;
      }
      job.attempts += 1;
      const fields = { jobId: job.id, attempt: job.attempts, region: endpoint.region };
      const started = clock.now();
      try {
        deps.faultPoint?.('before-call', job.id); // test-only (issue 11)
        const result = await deps.model.chat(endpoint, job.request, { jobId: job.id, attempt: job.attempts, timeoutMs: deps.settings.callTimeoutMs });
        deps.faultPoint?.('after-call', job.id); // test-only (issue 11)
        const finished = clock.now();
        job.regionsTried.push({ region: endpoint.region, deployment: endpoint.deployment, at: started, status: result.status, outcome: 'ok' });
        deps.onModelCall?.({ ...callFields(job, endpoint, started, finished), status: result.status, success: true, outcome: 'ok' });
        await deps.budget.observe(ref, quotaSignal(result.status, result.header), finished);
        await health.report(ref, { ok: true }, finished);
        job.response = result.body;
        job.usage = result.body.usage as Record<string, unknown> | undefined;
        job.latencyMs = finished - started;
        job.region = endpoint.region;
        job.deployment = endpoint.deployment;
        log('info', `succeeded in ${job.latencyMs} ms`, fields);
        return finish(deps, job, etag, log);
      } catch (err) {
        const error = err instanceof SluiceError ? err : new UpstreamUnavailableError('worker_error', String(err));
        job.regionsTried.push({ region: endpoint.region, deployment: endpoint.deployment, at: started, status: error.status, outcome: error.code });
        deps.onModelCall?.({ ...callFields(job, endpoint, started, clock.now()), status: error.status, success: false, outcome: error.code });
        const headers = (err as { headers?: Headers }).headers;
        // Breaker first: the instance stops sending here at once, before the budget's storage write.
        const outcome = outcomeOf(err);
        if (outcome) await health.report(ref, outcome, clock.now());
        // A Retry-After over the cap (a spent daily quota) is the breaker's business: it opens and probes. The budget
        // then gets only a token pause, or it would freeze the deployment for a day even after the probe succeeds.
        const overCap = (error.retryAfterMs ?? 0) > deps.settings.maxRetryDelayMs;
        const signal = quotaSignal(error.status, (n) => headers?.get(n) ?? null);
        await deps.budget.observe(ref, { ...signal, retryAfterMs: overCap ? 1_000 : error.retryAfterMs }, clock.now());
        if (!error.retryable) {
          log('warn', `failed: ${error.code}: ${error.message}`, fields);
          return finish(deps, job, etag, log, { code: error.code, message: error.message });
        }
        log('warn', `transient ${error.code}; trying the next deployment`, fields);
        group.passed.push('failed');
        if (error.code === 'rate_limited') job.throttles += 1;
        else job.transientFailures = (job.transientFailures ?? 0) + 1;
        transient = error;
        const delay = retryDelayMs(job.attempts, error.retryAfterMs, { maxMs: deps.settings.maxRetryDelayMs }, random);
        earliestRetry = Math.min(earliestRetry, clock.now() + delay);
      }
    }
    if ((job.transientFailures ?? 0) >= deps.settings.maxTransientFailures) {
      return finish(deps, job, etag, log, {
        code: transient?.code ?? 'upstream_unavailable',
        message: `gave up after ${job.transientFailures} transient failures; last: ${transient?.message ?? 'unknown'}`,
      });
    }
    const now = clock.now();
    const retryAt = Number.isFinite(earliestRetry) ? earliestRetry : now + deps.settings.maxRetryDelayMs;
    const wait = Math.max(0, retryAt - now);
    // Issue 11: on shutdown, release the job (park it) rather than hold it, so the drain ends promptly.
    if (wait <= deps.settings.holdInProcessMs && !deps.stopping?.()) {
      // Held: the message stays invisible, so this instance takes no more work than its share of quota lets it run
      // (parking every refused job instead churns the queue and storage). Shutdown ends a hold within a second.
      const until = now + wait;
      if (wait > SHOWN_HOLD_MS && job.notBefore === undefined) {
        // A user polling the job sees it waiting, with an estimated start (toJobView), not running.
        job.notBefore = until;
        const noted = await renewClaim(deps, job, etag, now, true);
        if (noted === undefined) return 'claimed-elsewhere';
        etag = noted;
      }
      while (clock.now() < until && !deps.stopping?.()) await clock.sleep(Math.min(1_000, until - clock.now()));
      if (deps.stopping?.()) return park(deps, job, etag, until, log);
      continue;
    }
    return park(deps, job, etag, retryAt, log);
  }
}

function callFields(job: JobRecord, endpoint: EndpointSettings, started: number, finished: number) {
  return {
    jobId: job.id,
    attempt: job.attempts,
    region: endpoint.region,
    deployment: endpoint.deployment,
    model: job.model,
    endpoint: endpoint.endpoint,
    startedAt: started,
    durationMs: finished - started,
  };
}

function quotaSignal(status: number, header: (name: string) => string | null) {
  const num = (name: string) => {
    const v = header(name);
    return v === null || v === '' || !Number.isFinite(Number(v)) ? undefined : Number(v);
  };
  return { status, remainingTokens: num('x-ratelimit-remaining-tokens'), remainingRequests: num('x-ratelimit-remaining-requests') };
}

/** Status `waiting` with an estimated start; the message comes back when the wait is over. */
async function park(deps: WorkerDeps, job: JobRecord, etag: string, retryAt: number, log: JobLogger): Promise<WorkerOutcome> {
  const now = (deps.clock ?? systemClock).now();
  const waiting: JobRecord = { ...job, status: 'waiting', notBefore: retryAt, claimId: undefined, claimUntil: undefined };
  await writeOwned(deps, waiting, etag);
  await deps.requeue(job.id, retryAt - now);
  log('info', `waiting ${retryAt - now} ms for quota or a healthy region`, { jobId: job.id, attempt: job.attempts });
  return 'waiting';
}

async function finish(deps: WorkerDeps, job: JobRecord, etag: string, log: JobLogger, error?: { code: string; message: string }): Promise<WorkerOutcome> {
  const clock = deps.clock ?? systemClock;
  const done: JobRecord = {
    ...job,
    status: error ? 'failed' : 'succeeded',
    error,
    completedAt: clock.now(),
    claimId: undefined,
    claimUntil: undefined,
    notBefore: undefined,
  };
  const written = await withStorageRetry(deps, job, () => writeOwned(deps, done, etag), log);
  if (!written) {
    log('warn', 'job finished elsewhere while this call ran; result discarded', { jobId: job.id, attempt: job.attempts });
    return 'already-finished';
  }
  if (deps.onFinished) {
    try {
      await deps.onFinished(done);
    } catch (err) {
      log('warn', `recording usage failed: ${(err as Error).message}`, { jobId: job.id });
    }
  }
  return done.status as 'succeeded' | 'failed';
}

/**
 * Issue 11: the result of a model call is the one write worth waiting for (losing it means calling the model again).
 * Retries it with backoff while storage is unreachable, as long as our claim leaves time; then gives up (throws), and
 * the recovery message finishes the job after the claim.
 */
async function withStorageRetry<T>(deps: WorkerDeps, job: JobRecord, write: () => Promise<T>, log: JobLogger): Promise<T> {
  const clock = deps.clock ?? systemClock;
  for (let retry = 0; ; retry += 1) {
    try {
      return await write();
    } catch (err) {
      const delay = Math.min(5_000, 250 * 2 ** retry);
      const deadline = (job.claimUntil ?? 0) - 2_000;
      if (!deps.isStorageOutage?.(err) || clock.now() + delay > deadline) throw err;
      log('warn', `storage unreachable while storing the result; retrying in ${delay} ms: ${(err as Error).message}`, { jobId: job.id, attempt: job.attempts });
      await clock.sleep(delay);
    }
  }
}

/**
 * Writes a record this worker claimed. If the ETag moved (our claim ran out and someone re-claimed), re-read:
 * write only if the job is not terminal yet and nobody else holds a live claim. Returns false if not written.
 */
async function writeOwned(deps: WorkerDeps, next: JobRecord, etag: string): Promise<boolean> {
  try {
    await deps.jobs.replace(next, etag);
    return true;
  } catch (err) {
    if (!(err instanceof StaleJobError)) throw err;
  }
  const current = await deps.jobs.get(next.id);
  if (!current || isTerminal(current.job.status)) return false;
  const now = (deps.clock ?? systemClock).now();
  if (current.job.status === 'running' && (current.job.claimUntil ?? 0) > now) return false;
  await deps.jobs.replace({ ...next, attempts: Math.max(next.attempts, current.job.attempts) }, current.etag);
  return true;
}
