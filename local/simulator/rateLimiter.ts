// Azure OpenAI-style admission control for one deployment, kept pure (no I/O, injectable clock)
// so its arithmetic can be unit-tested exactly without sleeping.
//
// Rules (what Sluice's benchmarks rely on):
// - every admitted request is charged an estimate up front; rejected requests cost nothing;
// - tokens: sliding 60 s window, admitted iff (sum of charges admitted in the last 60 s) + charge <= TPM;
// - requests: sliding 10 s window admits at most ceil(RPM / 6), sliding 60 s window at most RPM;
// - a single charge above TPM can never be admitted; Azure answers 429 with retry-after 60.
//
// The windows are a time-ordered log (parallel arrays plus two head indices), so admission is
// amortised O(1); only a rejection walks the log to compute the exact retry-after.

export const TOKEN_WINDOW_MS = 60_000;
export const REQUEST_SHORT_WINDOW_MS = 10_000;
export const REQUEST_LONG_WINDOW_MS = 60_000;
/** retry-after Azure gives for a request that can never fit (charge > TPM). */
export const OVERSIZED_RETRY_AFTER_MS = 60_000;

export interface RateLimits {
  /** Tokens per minute. */
  tpm: number;
  /** Requests per minute; the 10 s window allows ceil(rpm / 6). */
  rpm: number;
}

export type LimitKind = 'tokens' | 'requests';

export interface AdmissionState {
  /** TPM minus the tokens charged in the last 60 s (after this decision), never negative. */
  remainingTokens: number;
  /** Requests still admissible right now across both request windows, never negative. */
  remainingRequests: number;
}

export type AdmissionResult =
  | ({ admitted: true } & AdmissionState)
  | ({ admitted: false; limitKind: LimitKind; retryAfterMs: number } & AdmissionState);

export interface WindowSnapshot {
  tpm: number;
  rpm: number;
  requestLimit10s: number;
  tokensUsed60s: number;
  requests10s: number;
  requests60s: number;
}

/** Requests allowed in any 10 s span for a given RPM. */
export function shortWindowRequestLimit(rpm: number): number {
  return Math.ceil(rpm / 6);
}

export class SlidingWindowRateLimiter {
  private limits: RateLimits;
  private readonly now: () => number;
  // Admission log, oldest first. Entries before head60 have left every window.
  private times: number[] = [];
  private charges: number[] = [];
  private head60 = 0;
  private head10 = 0;
  private tokens60 = 0;
  private lastAdmittedAt = Number.NEGATIVE_INFINITY;

  /** @param options.now clock in epoch ms; default Date.now */
  constructor(limits: RateLimits, options: { now?: () => number } = {}) {
    this.limits = { ...limits };
    this.now = options.now ?? Date.now;
  }

  getLimits(): RateLimits {
    return { ...this.limits };
  }

  /** Changes limits without forgetting what the windows already hold. */
  setLimits(limits: Partial<RateLimits>): void {
    this.limits = { tpm: limits.tpm ?? this.limits.tpm, rpm: limits.rpm ?? this.limits.rpm };
  }

  /** Empties the windows. */
  reset(): void {
    this.times = [];
    this.charges = [];
    this.head60 = 0;
    this.head10 = 0;
    this.tokens60 = 0;
    this.lastAdmittedAt = Number.NEGATIVE_INFINITY;
  }

  /** Admits and charges `charge` tokens, or says why not and exactly how long (ms) until it would fit. */
  tryAdmit(charge: number): AdmissionResult {
    // Never let the log go out of time order, even if a test clock steps backwards.
    const now = Math.max(this.now(), this.lastAdmittedAt);
    this.evict(now);
    const { tpm, rpm } = this.limits;

    if (charge > tpm) {
      return { admitted: false, limitKind: 'tokens', retryAfterMs: OVERSIZED_RETRY_AFTER_MS, ...this.state() };
    }
    const tokenWaitMs = this.tokenWaitMs(charge, now);
    const shortWaitMs = this.requestWaitMs(this.head10, shortWindowRequestLimit(rpm), REQUEST_SHORT_WINDOW_MS, now);
    const longWaitMs = this.requestWaitMs(this.head60, rpm, REQUEST_LONG_WINDOW_MS, now);
    const requestWaitMs = Math.max(shortWaitMs, longWaitMs);

    if (tokenWaitMs === 0 && requestWaitMs === 0) {
      this.times.push(now);
      this.charges.push(charge);
      this.tokens60 += charge;
      this.lastAdmittedAt = now;
      return { admitted: true, ...this.state() };
    }
    // Every constraint only relaxes as time passes (nothing new is admitted meanwhile),
    // so the request fits once the slowest constraint does.
    return {
      admitted: false,
      limitKind: tokenWaitMs >= requestWaitMs ? 'tokens' : 'requests',
      retryAfterMs: Math.max(tokenWaitMs, requestWaitMs),
      ...this.state(),
    };
  }

  /** Current window contents (after dropping expired entries). */
  snapshot(): WindowSnapshot {
    this.evict(Math.max(this.now(), this.lastAdmittedAt));
    return {
      tpm: this.limits.tpm,
      rpm: this.limits.rpm,
      requestLimit10s: shortWindowRequestLimit(this.limits.rpm),
      tokensUsed60s: this.tokens60,
      requests10s: this.times.length - this.head10,
      requests60s: this.times.length - this.head60,
    };
  }

  /** Remaining tokens/requests right now, without admitting anything. */
  peek(): AdmissionState {
    this.evict(Math.max(this.now(), this.lastAdmittedAt));
    return this.state();
  }

  private state(): AdmissionState {
    const { tpm, rpm } = this.limits;
    const count10 = this.times.length - this.head10;
    const count60 = this.times.length - this.head60;
    return {
      remainingTokens: Math.max(0, tpm - this.tokens60),
      remainingRequests: Math.max(0, Math.min(shortWindowRequestLimit(rpm) - count10, rpm - count60)),
    };
  }

  private tokenWaitMs(charge: number, now: number): number {
    const { tpm } = this.limits;
    if (this.tokens60 + charge <= tpm) return 0;
    let stillCharged = this.tokens60;
    for (let i = this.head60; i < this.times.length; i++) {
      stillCharged -= this.charges[i]!;
      if (stillCharged + charge <= tpm) return this.times[i]! + TOKEN_WINDOW_MS - now;
    }
    // Unreachable while charge <= tpm: once everything expires the request fits.
    return TOKEN_WINDOW_MS;
  }

  private requestWaitMs(head: number, limit: number, windowMs: number, now: number): number {
    const inWindow = this.times.length - head;
    if (inWindow + 1 <= limit) return 0;
    // The (inWindow - limit + 1)-th oldest entry must leave the window first.
    const index = head + (inWindow - limit);
    return this.times[index]! + windowMs - now;
  }

  private evict(now: number): void {
    while (this.head60 < this.times.length && this.times[this.head60]! + TOKEN_WINDOW_MS <= now) {
      this.tokens60 -= this.charges[this.head60]!;
      this.head60++;
    }
    if (this.head10 < this.head60) this.head10 = this.head60;
    while (this.head10 < this.times.length && this.times[this.head10]! + REQUEST_SHORT_WINDOW_MS <= now) {
      this.head10++;
    }
    // Compact occasionally so memory stays proportional to one window's admissions.
    if (this.head60 > 4096 && this.head60 * 2 > this.times.length) {
      this.times = this.times.slice(this.head60);
      this.charges = this.charges.slice(this.head60);
      this.head10 -= this.head60;
      this.head60 = 0;
    }
  }
}
