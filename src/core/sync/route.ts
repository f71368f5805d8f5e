/**
 * The sync request's routing loop: the worker's walk (priority groups, breaker, then budget, then the call) with a
 * deadline instead of parking. A request the budget cannot admit waits in the same fair-share line as queued jobs
 * (its team, interactive priority), sleeping until the budget's retryAt and holding no upstream connection; past its
 * deadline it is refused with the budget's own estimate. A failure before the answer (or a stream's headers) fails
 * over exactly as a job's call does; what happens after the first byte is the caller's (stream.ts).
 */
import type { DeploymentRef, QuotaSignal } from '../budget/gate';
import { outcomeOf } from '../breaker/outcome';
import { mayLeaveGroup, type PassedOver } from '../breaker/spillover';
import type { EndpointSettings } from '../endpoints';
import { SluiceError, UpstreamUnavailableError } from '../errors';
import { retryDelayMs } from '../retry';
import { candidatesFor, deploymentRef } from '../routing';
import type { SyncDeps } from './types';

/** Quota pause passed to the budget when a Retry-After is over the cap (the breaker handles the long wait), ms. */
const OVER_CAP_PAUSE_MS = 1_000;

export interface RouteRequest {
  id: string;
  team: string;
  model: string;
  /** Tokens the budget is asked for (prompt + reserved output). */
  tokens: number;
  /** Epoch ms after which the request stops waiting. */
  deadline: number;
  signal: AbortSignal;
}

/** One upstream call made for the request, in order (for the usage row's calls and regions). */
export interface CallAttempt {
  region: string;
  deployment: string;
  status: number;
  outcome: string;
}

export type Routed<T> =
  /** The deployment answered (or a stream's headers arrived). The quota and breaker reports are made. */
  | { kind: 'answered'; endpoint: EndpointSettings; ref: DeploymentRef; answer: T; started: number; admittedAt: number; calls: CallAttempt[] }
  /** Not admitted by the deadline: nothing was charged. `retryAt` is the budget's (or breaker's) estimate. */
  | { kind: 'deadline'; retryAt: number; calls: CallAttempt[] }
  /** A final error (the request's own fault, no deployment configured, or too many failures). */
  | { kind: 'failed'; error: SluiceError; calls: CallAttempt[] }
  /** The client went away while the request waited or before the answer arrived. */
  | { kind: 'gone'; calls: CallAttempt[] };

/** Runs `call` on the first deployment that is healthy and admits the request, waiting for quota up to the deadline. */
export async function routeSync<T extends { status: number; header(name: string): string | null }>(
  deps: SyncDeps,
  req: RouteRequest,
  call: (endpoint: EndpointSettings) => Promise<T>,
): Promise<Routed<T>> {
  const { clock } = deps;
  const calls: CallAttempt[] = [];
  const candidates = candidatesFor(req.model, deps.endpoints, deps.random);
  if (candidates.length === 0) return { kind: 'failed', error: new SluiceError('model_not_found', `no deployment serves model "${req.model}"`, false, 404), calls };
  const spillover = deps.spillover?.(req.model) ?? true;
  let failures = 0;
  let lastFailure: SluiceError | undefined;
  for (;;) {
    let earliest = Number.POSITIVE_INFINITY;
    let group: { priority: number; passed: PassedOver[] } | undefined;
    for (const endpoint of candidates) {
      if (req.signal.aborted) return { kind: 'gone', calls };
      if (group && group.priority !== endpoint.priority) {
        if (!mayLeaveGroup(group.passed, spillover)) break;
        group = undefined;
      }
      group ??= { priority: endpoint.priority, passed: [] };
      const ref = deploymentRef(endpoint);
      if ((await deps.health.check(ref, clock.now())) === 'open') {
        group.passed.push('open');
        earliest = Math.min(earliest, deps.health.retryAt(ref) ?? clock.now() + deps.settings.maxRetryDelayMs);
        continue;
      }
      const admission = await deps.budget.admit(ref, req.tokens, 'interactive', clock.now(), { jobId: req.id, team: req.team, model: req.model });
      if (!admission.granted) {
        group.passed.push('budget');
        earliest = Math.min(earliest, admission.retryAt);
        continue;
      }
      const admittedAt = clock.now();
      const started = clock.now();
      try {
        const answer = await call(endpoint);
        calls.push({ region: endpoint.region, deployment: endpoint.deployment, status: answer.status, outcome: 'ok' });
        await report(deps, endpoint, started, answer.status, 'ok', req);
        await quiet(deps, 'quota observation', () => deps.budget.observe(ref, quotaSignal(answer.status, (n) => answer.header(n)), clock.now()));
        await quiet(deps, 'breaker report', () => deps.health.report(ref, { ok: true }, clock.now()));
        return { kind: 'answered', endpoint, ref, answer, started, admittedAt, calls };
      } catch (err) {
        if (req.signal.aborted) return { kind: 'gone', calls };
        const error = await recordFailure(deps, endpoint, ref, started, err, req);
        calls.push({ region: endpoint.region, deployment: endpoint.deployment, status: error.status, outcome: error.code });
        if (!error.retryable) return { kind: 'failed', error, calls };
        deps.log('warn', `[sync=${req.id} region=${endpoint.region}] transient ${error.code}; trying the next deployment`);
        if (error.code !== 'rate_limited') {
          failures += 1;
          lastFailure = error;
        }
        if (failures >= deps.settings.maxTransientFailures) {
          return { kind: 'failed', error: new UpstreamUnavailableError(lastFailure?.code ?? 'upstream_unavailable', `gave up after ${failures} failed calls; last: ${lastFailure?.message ?? 'unknown'}`, 503), calls };
        }
        group.passed.push('failed');
        earliest = Math.min(earliest, clock.now() + retryDelayMs(calls.length, error.retryAfterMs, { maxMs: deps.settings.maxRetryDelayMs }, deps.random));
      }
    }
    const now = clock.now();
    const retryAt = Number.isFinite(earliest) ? earliest : now + deps.settings.maxRetryDelayMs;
    if (now >= req.deadline) return { kind: 'deadline', retryAt: Math.max(retryAt, now), calls };
    // Sleep until the budget expects room, but wake at the deadline for one last try.
    if (!(await sleepUnlessGone(deps, Math.min(retryAt, req.deadline) - now, req.signal))) return { kind: 'gone', calls };
  }
}

/** Sleeps `ms` (at least 1); false when the client went away meanwhile. */
async function sleepUnlessGone(deps: SyncDeps, ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  let onAbort: (() => void) | undefined;
  const gone = new Promise<void>((resolve) => {
    onAbort = resolve;
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([deps.clock.sleep(Math.max(1, ms)), gone]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
  return !signal.aborted;
}

/** Tells telemetry, the breaker and the budget about a failed call. Returns it as a SluiceError. */
async function recordFailure(deps: SyncDeps, endpoint: EndpointSettings, ref: DeploymentRef, started: number, err: unknown, req: RouteRequest): Promise<SluiceError> {
  const { clock } = deps;
  const error = err instanceof SluiceError ? err : new UpstreamUnavailableError('connection_failed', String(err));
  await report(deps, endpoint, started, error.status, error.code, req);
  const outcome = outcomeOf(err);
  if (outcome) await quiet(deps, 'breaker report', () => deps.health.report(ref, outcome, clock.now()));
  // As the worker: a Retry-After over the cap is the breaker's business; the budget only pauses briefly.
  const overCap = (error.retryAfterMs ?? 0) > deps.settings.maxRetryDelayMs;
  const headers = (err as { headers?: Headers }).headers;
  const signal = quotaSignal(error.status, (n) => headers?.get(n) ?? null);
  await quiet(deps, 'quota observation', () => deps.budget.observe(ref, { ...signal, retryAfterMs: overCap ? OVER_CAP_PAUSE_MS : error.retryAfterMs }, clock.now()));
  return error;
}

async function report(deps: SyncDeps, endpoint: EndpointSettings, started: number, status: number, outcome: string, req: RouteRequest): Promise<void> {
  await quiet(deps, 'model-call telemetry', () =>
    deps.onModelCall?.({
      jobId: req.id,
      attempt: 1,
      region: endpoint.region,
      deployment: endpoint.deployment,
      model: req.model,
      endpoint: endpoint.endpoint,
      startedAt: started,
      durationMs: deps.clock.now() - started,
      status,
      success: outcome === 'ok',
      outcome,
    }),
  );
}

/** Runs one report; a failure is a warning, never the call's outcome. */
export async function quiet(deps: Pick<SyncDeps, 'log'>, what: string, send: () => unknown): Promise<void> {
  try {
    await send();
  } catch (err) {
    deps.log('warn', `${what} failed (the call's outcome stands): ${(err as Error)?.message ?? err}`);
  }
}

export function quotaSignal(status: number, header: (name: string) => string | null): QuotaSignal {
  const num = (name: string) => {
    const v = header(name);
    return v === null || v === '' || !Number.isFinite(Number(v)) ? undefined : Number(v);
  };
  return { status, remainingTokens: num('x-ratelimit-remaining-tokens'), remainingRequests: num('x-ratelimit-remaining-requests') };
}
