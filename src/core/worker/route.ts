/**
 * The routing loop of one claimed job: walk the model's deployments in priority order (breaker, then budget, then
 * the call), and when none answered, hold the job in-process for a short wait or park it for a long one.
 *
 * The model call's try/catch covers the call and nothing else: whatever is recorded after an answer (telemetry,
 * quota observation, breaker report, the stored result) can never be taken for an upstream failure and pay for a
 * second call. Reports that fail are warnings; a result that cannot be stored is thrown (record.ts).
 */
import type { EndpointSettings } from '../endpoints';
import type { DeploymentRef } from '../budget/gate';
import { outcomeOf } from '../breaker/outcome';
import { mayLeaveGroup, type PassedOver } from '../breaker/spillover';
import { SluiceError, UpstreamUnavailableError } from '../errors';
import { chargeOf, type JobRecord } from '../jobs';
import type { ModelCallResult } from '../modelClient';
import { retryDelayMs } from '../retry';
import { candidatesFor, deploymentRef } from '../routing';
import { finish, park, renewClaim } from './record';
import type { ClaimedJob, ModelCallRecord, RunContext, WorkerResult } from './types';

/** A hold longer than this is written to the job, so that it shows as `waiting` with an estimated start, ms. */
const SHOWN_HOLD_MS = 2_000;
/** Quota pause passed to the budget when a Retry-After is over the cap (the breaker handles the long wait), ms. */
const OVER_CAP_PAUSE_MS = 1_000;

/** Runs a claimed job until it is finished, parked, or lost to another worker. */
export async function routeJob(ctx: RunContext, claimed: ClaimedJob): Promise<WorkerResult> {
  const { job } = claimed;
  // A job queued before its team was disabled or stopped at its budget ends here, without a model call.
  const refused = ctx.deps.teamLimit?.(job.team);
  if (refused) return finish(ctx, claimed, { code: refused.code, message: refused.message });
  const candidates = candidatesFor(job.model, ctx.deps.endpoints, ctx.random);
  if (candidates.length === 0) {
    return finish(ctx, claimed, { code: 'model_not_configured', message: `no deployment serves model "${job.model}"` });
  }
  const spillover = ctx.deps.spillover?.(job.model) ?? true;
  for (;;) {
    const round = await walkDeployments(ctx, claimed, candidates, spillover);
    if (!(round instanceof Round)) return round;
    if ((job.transientFailures ?? 0) >= ctx.deps.settings.maxTransientFailures) {
      return finish(ctx, claimed, {
        code: round.transient?.code ?? 'upstream_unavailable',
        message: `gave up after ${job.transientFailures} transient failures; last: ${round.transient?.message ?? 'unknown'}`,
      });
    }
    const retryAt = Number.isFinite(round.earliestRetry) ? round.earliestRetry : ctx.clock.now() + ctx.deps.settings.maxRetryDelayMs;
    const waited = await holdOrPark(ctx, claimed, retryAt, round.handBack);
    if (waited !== 'held') return waited;
  }
}

/** One pass over the candidates: how each was passed over, and the earliest time one may take the job. */
class Round {
  earliestRetry = Number.POSITIVE_INFINITY;
  /** The last retryable failure of a call in this pass. */
  transient: SluiceError | undefined;
  /** How each deployment of the current priority group was passed over, for the spill-over rule. */
  private group: { priority: number; passed: PassedOver[] } | undefined;

  constructor(private readonly spillover: boolean) {}

  /** False when the walk stops before this deployment: it opens a new priority group the spill-over rule forbids. */
  enter(priority: number): boolean {
    if (this.group && this.group.priority !== priority) {
      if (!mayLeaveGroup(this.group.passed, this.spillover)) return false;
      this.group = undefined;
    }
    this.group ??= { priority, passed: [] };
    return true;
  }

  /** Every deployment passed over was refused for want of a seat at this instance: hand the job back. */
  get handBack(): boolean {
    return this.seats > 0 && this.seats === this.passes;
  }
  private passes = 0;
  private seats = 0;

  passOver(how: PassedOver, retryAt: number, seat = false): void {
    this.group!.passed.push(how);
    this.earliestRetry = Math.min(this.earliestRetry, retryAt);
    this.passes += 1;
    if (seat) this.seats += 1;
  }
}

async function walkDeployments(ctx: RunContext, claimed: ClaimedJob, candidates: readonly EndpointSettings[], spillover: boolean): Promise<Round | WorkerResult> {
  const round = new Round(spillover);
  for (const endpoint of candidates) {
    if (!round.enter(endpoint.priority)) break;
    const step = await tryDeployment(ctx, claimed, endpoint);
    if ('outcome' in step) return step;
    round.passOver(step.passed, step.retryAt, step.seat);
    if (step.error) round.transient = step.error;
  }
  return round;
}

type PassedStep = { passed: PassedOver; retryAt: number; error?: SluiceError; seat?: boolean };

/** Gates, call, record: either the job's delivery ends here, or the deployment is passed over. */
async function tryDeployment(ctx: RunContext, claimed: ClaimedJob, endpoint: EndpointSettings): Promise<WorkerResult | PassedStep> {
  const ref = deploymentRef(endpoint);
  const gate = await passGates(ctx, claimed, ref);
  if (gate !== 'go') return gate;
  const { job } = claimed;
  const call = await callModel(ctx, job, endpoint);
  if (call.ok) {
    await recordAnswer(ctx, job, endpoint, ref, call.started, call.result);
    return finish(ctx, claimed);
  }
  const error = await recordFailure(ctx, job, endpoint, ref, call.started, call.err);
  const fields = { jobId: job.id, attempt: job.attempts, region: endpoint.region };
  if (!error.retryable) {
    ctx.log('warn', `failed: ${error.code}: ${error.message}`, fields);
    return finish(ctx, claimed, { code: error.code, message: error.message });
  }
  ctx.log('warn', `transient ${error.code}; trying the next deployment`, fields);
  if (error.code === 'rate_limited') job.throttles += 1;
  else job.transientFailures = (job.transientFailures ?? 0) + 1;
  const delay = retryDelayMs(job.attempts, error.retryAfterMs, { maxMs: ctx.deps.settings.maxRetryDelayMs }, ctx.random);
  return { passed: 'failed', retryAt: ctx.clock.now() + delay, error };
}

/**
 * Breaker, budget, claim: 'go' when the call may start, else how the deployment is passed over (or the delivery's
 * end, when the claim was lost).
 */
async function passGates(ctx: RunContext, claimed: ClaimedJob, ref: DeploymentRef): Promise<'go' | PassedStep | WorkerResult> {
  const { job } = claimed;
  const permission = await ctx.health.check(ref, ctx.clock.now());
  if (permission === 'open') return breakerOpen(ctx, ref);
  const admission = await ctx.deps.budget.admit(ref, chargeOf(job), job.priority, ctx.clock.now(), { jobId: job.id, team: job.team, model: job.model });
  // A probe we hold but cannot use is released by its lease running out.
  if (!admission.granted) return { passed: 'budget', retryAt: admission.retryAt, seat: admission.reason === 'seat' };
  // Never start a call that could outlive our claim. A job shown as waiting during a hold is shown running again
  // (same write).
  const shownWaiting = job.notBefore !== undefined;
  job.notBefore = undefined;
  if (!(await renewClaim(ctx, claimed, shownWaiting))) {
    ctx.log('warn', 'the job changed under our claim (claim expired and taken over, or cancelled or expired while held for quota); stopping here', { jobId: job.id, attempt: job.attempts });
    return { outcome: 'claimed-elsewhere' };
  }
  // The renewal was a storage round trip: re-check (from the local cache, free) that no other job on this instance
  // opened the breaker meanwhile, so one instance sends at most one failing call per outage.
  if (permission === 'closed' && (await ctx.health.check(ref, ctx.clock.now())) === 'open') return breakerOpen(ctx, ref);
  return 'go';
}

function breakerOpen(ctx: RunContext, ref: DeploymentRef): PassedStep {
  return { passed: 'open', retryAt: ctx.health.retryAt(ref) ?? ctx.clock.now() + ctx.deps.settings.maxRetryDelayMs };
}

type CallResult = { ok: true; started: number; result: ModelCallResult } | { ok: false; started: number; err: unknown };

/** The model call, and only it, inside a try: what it throws is the upstream's answer. */
async function callModel(ctx: RunContext, job: JobRecord, endpoint: EndpointSettings): Promise<CallResult> {
  const { deps, clock } = ctx;
  job.attempts += 1;
  deps.faultPoint?.('before-call', job.id);
  const started = clock.now();
  let result: ModelCallResult;
  try {
    result = await deps.model.chat(endpoint, job.request, { jobId: job.id, attempt: job.attempts, timeoutMs: deps.settings.callTimeoutMs });
  } catch (err) {
    return { ok: false, started, err };
  }
  deps.faultPoint?.('after-call', job.id);
  return { ok: true, started, result };
}

/** Takes the answer into the job, then tells telemetry, the budget and the breaker. Never throws. */
async function recordAnswer(ctx: RunContext, job: JobRecord, endpoint: EndpointSettings, ref: DeploymentRef, started: number, result: ModelCallResult): Promise<void> {
  const { deps, clock, health } = ctx;
  const finished = clock.now();
  job.regionsTried.push({ region: endpoint.region, deployment: endpoint.deployment, at: started, status: result.status, outcome: 'ok' });
  job.response = result.body;
  job.usage = result.body.usage as Record<string, unknown> | undefined;
  job.latencyMs = finished - started;
  job.region = endpoint.region;
  job.deployment = endpoint.deployment;
  const fields = { jobId: job.id, attempt: job.attempts, region: endpoint.region };
  ctx.log('debug', `succeeded in ${job.latencyMs} ms`, fields);
  await report(ctx, fields, 'model-call telemetry', () => deps.onModelCall?.({ ...callFields(job, endpoint, started, finished), status: result.status, success: true, outcome: 'ok' }));
  await report(ctx, fields, 'quota observation', () => deps.budget.observe(ref, quotaSignal(result.status, result.header), finished));
  await report(ctx, fields, 'breaker report', () => health.report(ref, { ok: true }, finished));
}

/** Notes a failed call on the job and tells telemetry, the breaker and the budget. Returns it as a SluiceError. */
async function recordFailure(ctx: RunContext, job: JobRecord, endpoint: EndpointSettings, ref: DeploymentRef, started: number, err: unknown): Promise<SluiceError> {
  const { deps, clock, health } = ctx;
  const error = err instanceof SluiceError ? err : new UpstreamUnavailableError('worker_error', String(err));
  const fields = { jobId: job.id, attempt: job.attempts, region: endpoint.region };
  job.regionsTried.push({ region: endpoint.region, deployment: endpoint.deployment, at: started, status: error.status, outcome: error.code });
  await report(ctx, fields, 'model-call telemetry', () => deps.onModelCall?.({ ...callFields(job, endpoint, started, clock.now()), status: error.status, success: false, outcome: error.code }));
  // Breaker first: the instance stops sending here at once, before the budget's storage write.
  const outcome = outcomeOf(err);
  if (outcome) await report(ctx, fields, 'breaker report', () => health.report(ref, outcome, clock.now()));
  // A Retry-After over the cap (a spent daily quota) is the breaker's business: it opens and probes. The budget then
  // gets only a short pause, or it would freeze the deployment for a day even after the probe succeeds.
  const overCap = (error.retryAfterMs ?? 0) > deps.settings.maxRetryDelayMs;
  const headers = (err as { headers?: Headers }).headers;
  const signal = quotaSignal(error.status, (n) => headers?.get(n) ?? null);
  await report(ctx, fields, 'quota observation', () => deps.budget.observe(ref, { ...signal, retryAfterMs: overCap ? OVER_CAP_PAUSE_MS : error.retryAfterMs }, clock.now()));
  return error;
}

/** Runs one report; a failure is a warning, never the call's outcome. */
async function report(ctx: RunContext, fields: { jobId: string; attempt: number; region: string }, what: string, send: () => unknown): Promise<void> {
  try {
    await send();
  } catch (err) {
    ctx.log('warn', `${what} failed (the call's outcome stands): ${(err as Error)?.message ?? err}`, fields);
  }
}

/**
 * Waits up to holdInProcessMs in-process ('held': try again), else parks the job. Held, the message stays invisible,
 * so this instance takes no more work than its share of quota lets it run (parking every refused job instead churns
 * the queue and storage). On shutdown the job is parked rather than held, so the drain ends promptly.
 */
/**
 * `handBack`: no deployment had a seat for this instance (docs/design/budget.md, "Seats"). The job waits until
 * `retryAt` (a second or two: this also paces how fast an instance without seats takes messages) and goes back to
 * the queue, visible at once, for an instance that has a seat: holding it here for the seat's back-off would keep it
 * from them.
 */
async function holdOrPark(ctx: RunContext, claimed: ClaimedJob, retryAt: number, handBack = false): Promise<'held' | WorkerResult> {
  const { deps, clock } = ctx;
  const now = clock.now();
  const wait = Math.max(0, retryAt - now);
  if (wait > deps.settings.holdInProcessMs || deps.stopping?.()) return park(ctx, claimed, retryAt);
  if (handBack) {
    while (clock.now() < retryAt && !deps.stopping?.()) await clock.sleep(Math.min(1_000, retryAt - clock.now()));
    return park(ctx, claimed, clock.now());
  }
  const until = now + wait;
  if (wait > SHOWN_HOLD_MS && claimed.job.notBefore === undefined) {
    // A user polling the job sees it waiting, with an estimated start (toJobView), not running.
    claimed.job.notBefore = until;
    if (!(await renewClaim(ctx, claimed, true))) return { outcome: 'claimed-elsewhere' };
  }
  // Shutdown ends a hold within a second.
  while (clock.now() < until && !deps.stopping?.()) await clock.sleep(Math.min(1_000, until - clock.now()));
  if (deps.stopping?.()) return park(ctx, claimed, until);
  return 'held';
}

function callFields(job: JobRecord, endpoint: EndpointSettings, started: number, finished: number): Omit<ModelCallRecord, 'status' | 'success' | 'outcome'> {
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
