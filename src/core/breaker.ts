/**
 * The circuit breaker for one deployment (endpoint + deployment, `DeploymentRef.key`), as a pure state machine.
 * Every function takes the current state and `now` (epoch ms) and returns the next state; when nothing changes it
 * returns the SAME object, so callers write to shared storage only on real changes (`changed()`).
 *
 *   closed ──(connection error | timeout | auth | N×5xx in window | 429 with Retry-After > cap)──▶ open
 *   open ──(cool-down over; one instance claims the probe)──▶ half-open (probe lease)
 *   half-open ──(probe succeeds)──▶ closed        half-open ──(probe fails)──▶ open
 *   half-open ──(probe lease runs out: the holder died)──▶ another instance may claim the probe
 *
 * Outcomes of calls that are not the probe (calls in flight when the breaker opened) never move an open or
 * half-open breaker: they say nothing about the endpoint now.
 */

export type FailureKind = 'connection' | 'timeout' | '5xx' | '429' | 'auth';

/** What a caller may do with the deployment now. 'probe': try it once, as the half-open probe. */
export type Permission = 'closed' | 'probe' | 'open';

export interface BreakerState {
  state: 'closed' | 'open' | 'half-open';
  /** Epoch ms of recent 5xx answers still inside the window (closed only); oldest first. */
  recent5xx: number[];
  /** Epoch ms the breaker last opened (kept through half-open for the health page). */
  openedAt?: number;
  /** open: epoch ms after which a probe may be claimed. half-open: epoch ms the probe lease runs out. */
  until?: number;
  /** half-open: the instance holding the probe. */
  probeOwner?: string;
  /** Last failure seen, e.g. "connection: ECONNREFUSED", for the health page. */
  lastError?: string;
  lastErrorAt?: number;
}

export interface BreakerPolicy {
  /** 5xx answers within `windowMs` that open the breaker. @default 3 */
  failureThreshold: number;
  /** Window for counting 5xx answers, ms. @default 30000 */
  windowMs: number;
  /** Cool-down before a probe when the service gave no Retry-After, ms. @default 15000 */
  cooldownMs: number;
  /**
   * Longest Retry-After a 429 may ask for before the deployment is treated as unavailable (the breaker opens and
   * work fails over), ms. Also the longest cool-down. Azure answers "retry after 86400 s" when a daily quota is gone.
   * @default 60000
   */
  retryAfterCapMs: number;
  /** How long the probe holder has to report before another instance may probe, ms. @default 30000 */
  probeLeaseMs: number;
}

export const DEFAULT_BREAKER_POLICY: Readonly<BreakerPolicy> = Object.freeze({
  failureThreshold: 3,
  windowMs: 30_000,
  cooldownMs: 15_000,
  retryAfterCapMs: 60_000,
  probeLeaseMs: 30_000,
});

/** Shortest cool-down, ms, so a "Retry-After: 0" on a 503 cannot make instances spin on probes. */
const MIN_COOLDOWN_MS = 1_000;
/** Longest stored error text (Table properties are limited; the health page needs only the gist). */
const MAX_ERROR_CHARS = 500;

export function closedState(): BreakerState {
  return { state: 'closed', recent5xx: [] };
}

/** May the deployment be tried now? 'probe' means the cool-down is over and nobody holds a live probe lease. */
export function allows(s: BreakerState, now: number): Permission {
  if (s.state === 'closed') return 'closed';
  return now >= (s.until ?? 0) ? 'probe' : 'open';
}

/**
 * Takes the half-open probe for `owner`. Only valid when `allows(s, now) === 'probe'`; otherwise returns `s`.
 * Shared stores make this a compare-and-swap, so exactly one instance wins.
 */
export function claimProbe(s: BreakerState, owner: string, now: number, policy: BreakerPolicy = DEFAULT_BREAKER_POLICY): BreakerState {
  if (allows(s, now) !== 'probe') return s;
  return { ...s, state: 'half-open', recent5xx: [], probeOwner: owner, until: now + policy.probeLeaseMs };
}

/**
 * A call succeeded. Closes a half-open breaker if `by` holds the probe (or `by` is omitted: the caller vouches it
 * was the probe). A success while closed changes nothing: 5xx answers age out of the window instead, so steady
 * traffic never writes.
 */
export function recordSuccess(s: BreakerState, now: number, by?: string): BreakerState {
  void now;
  if (s.state === 'half-open' && (by === undefined || by === s.probeOwner)) return closedState();
  return s;
}

export interface Failure {
  kind: FailureKind;
  /** The service's Retry-After, ms, if it gave one. */
  retryAfterMs?: number;
  /** Short description for the health page. */
  message?: string;
}

/**
 * A call failed. While closed: opens on a connection error, timeout, auth/deployment error, a 429 asking for more
 * than `retryAfterCapMs`, or the `failureThreshold`-th 5xx within `windowMs`; a single 5xx is remembered; a short
 * 429 is the budget's business and changes nothing. While half-open: the probe holder's failure re-opens.
 */
export function recordFailure(
  s: BreakerState,
  failure: Failure,
  now: number,
  policy: BreakerPolicy = DEFAULT_BREAKER_POLICY,
  by?: string,
): BreakerState {
  if (s.state === 'open') return s;
  if (s.state === 'half-open') {
    if (by !== undefined && by !== s.probeOwner) return s;
    return open(s, failure, now, policy);
  }
  switch (failure.kind) {
    case 'connection':
    case 'timeout':
    case 'auth':
      return open(s, failure, now, policy);
    case '429':
      return (failure.retryAfterMs ?? 0) > policy.retryAfterCapMs ? open(s, failure, now, policy) : s;
    case '5xx': {
      const recent5xx = [...s.recent5xx.filter((t) => t > now - policy.windowMs), now];
      if (recent5xx.length >= policy.failureThreshold) return open(s, failure, now, policy);
      return { ...s, recent5xx, ...describe(failure, now) };
    }
  }
}

/**
 * How long the breaker stays open before a probe: the service's Retry-After when it is within the cap, else
 * `cooldownMs`. A Retry-After beyond the cap (a spent daily quota) is not waited out: one probe per cool-down
 * across the fleet costs little and notices a raised quota or a reset early.
 */
export function cooldownMs(failure: Failure, policy: BreakerPolicy = DEFAULT_BREAKER_POLICY): number {
  const hint = failure.retryAfterMs;
  const base = hint !== undefined && hint >= 0 && hint <= policy.retryAfterCapMs ? hint : policy.cooldownMs;
  return Math.min(policy.retryAfterCapMs, Math.max(MIN_COOLDOWN_MS, base));
}

/** True when `next` differs from `prev` (the functions above return the same object when nothing changed). */
export function changed(prev: BreakerState, next: BreakerState): boolean {
  return prev !== next;
}

function open(s: BreakerState, failure: Failure, now: number, policy: BreakerPolicy): BreakerState {
  return {
    state: 'open',
    recent5xx: [],
    openedAt: now,
    until: now + cooldownMs(failure, policy),
    ...describe(failure, now),
  };
}

function describe(failure: Failure, now: number): Pick<BreakerState, 'lastError' | 'lastErrorAt'> {
  const text = failure.message ? `${failure.kind}: ${failure.message}` : failure.kind;
  return { lastError: text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS - 1)}…` : text, lastErrorAt: now };
}
