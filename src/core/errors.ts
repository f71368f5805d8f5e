/**
 * Typed errors with a stable `code`, an HTTP status for API answers, and whether a retry can help.
 * `errorFromResponse` is the one place an upstream HTTP status becomes one of these.
 */

export class SluiceError extends Error {
  constructor(
    /** Stable machine-readable code, e.g. "rate_limited", "context_length_exceeded". */
    readonly code: string,
    message: string,
    /** True when the same request may succeed later or elsewhere. */
    readonly retryable: boolean,
    /** HTTP status this error maps to in Sluice's own API (or the upstream status). */
    readonly status = 500,
    /** Server hint for the next try, ms (Retry-After). */
    readonly retryAfterMs?: number,
    /** True when the fault is the endpoint's (down, throttled, misconfigured), so another region may serve. */
    readonly endpointFault = retryable,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad client input: 400 with the offending field named. */
export class ValidationError extends SluiceError {
  constructor(message: string, readonly param?: string, code = 'invalid_request', status = 400) {
    super(code, message, false, status);
  }
}

/** The deployment said 429. */
export class RateLimitedError extends SluiceError {
  constructor(message: string, retryAfterMs?: number) {
    super('rate_limited', message, true, 429, retryAfterMs);
  }
}

/** 5xx, 408, connection failures, timeouts. */
export class UpstreamUnavailableError extends SluiceError {
  constructor(code: string, message: string, status = 503, retryAfterMs?: number) {
    super(code, message, true, status, retryAfterMs);
  }
}

/** The request itself is wrong for the model: never retried, never failed over. */
export class FinalModelError extends SluiceError {
  constructor(code: string, message: string, status = 400) {
    super(code, message, false, status, undefined, false);
  }
}

/** Auth or deployment misconfiguration at one endpoint: this endpoint can't serve, another might. */
export class EndpointConfigError extends SluiceError {
  constructor(code: string, message: string, status: number) {
    super(code, message, true, status, undefined, true);
  }
}

/** Reads retry-after-ms, then retry-after (seconds or HTTP date), as openai-node does. */
export function retryAfterFromHeaders(get: (name: string) => string | null | undefined, now = Date.now()): number | undefined {
  const ms = Number(get('retry-after-ms'));
  if (Number.isFinite(ms) && ms >= 0 && get('retry-after-ms') != null) return ms;
  const raw = get('retry-after');
  if (raw == null) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(raw);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

interface UpstreamBody {
  error?: { code?: unknown; message?: unknown; innererror?: { code?: unknown } };
}

/** Maps an upstream Azure OpenAI answer to a typed error. */
export function errorFromResponse(status: number, body: unknown, retryAfterMs?: number): SluiceError {
  const err = (body as UpstreamBody | undefined)?.error;
  const upstreamCode = typeof err?.code === 'string' ? err.code : undefined;
  const message = typeof err?.message === 'string' ? err.message : `Azure OpenAI answered HTTP ${status}`;
  if (status === 429) return new RateLimitedError(message, retryAfterMs);
  if (status === 408 || status >= 500) return new UpstreamUnavailableError(`upstream_${status}`, message, status, retryAfterMs);
  if (status === 401 || status === 403) return new EndpointConfigError('endpoint_auth_failed', message, status);
  if (status === 404) return new EndpointConfigError(upstreamCode === 'DeploymentNotFound' ? 'deployment_not_found' : 'endpoint_not_found', message, status);
  if (upstreamCode === 'context_length_exceeded') return new FinalModelError('context_length_exceeded', message, status);
  if (upstreamCode === 'content_filter' || err?.innererror?.code === 'ResponsibleAIPolicyViolation') {
    return new FinalModelError('content_filter', message, status);
  }
  return new FinalModelError(upstreamCode ?? `upstream_${status}`, message, status);
}
