/**
 * What a failed model call tells the breaker. Only endpoint faults count: a 400 is the request's fault and says
 * nothing about the deployment's health.
 */
import { SluiceError } from '../errors';
import type { CallOutcome } from './health';

/** The breaker outcome for a call that threw `err`, or undefined when the failure is not the endpoint's. */
export function outcomeOf(err: unknown): CallOutcome | undefined {
  if (!(err instanceof SluiceError)) return { ok: false, kind: 'connection', message: String(err) };
  if (!err.endpointFault) return undefined;
  const message = err.message;
  if (err.code === 'connection_failed') return { ok: false, kind: 'connection', message };
  if (err.code === 'timeout') return { ok: false, kind: 'timeout', message };
  if (err.status === 429) return { ok: false, kind: '429', retryAfterMs: err.retryAfterMs, message };
  if (err.status >= 500 || err.status === 408) return { ok: false, kind: '5xx', retryAfterMs: err.retryAfterMs, message: `HTTP ${err.status}: ${message}` };
  if (err.status === 401 || err.status === 403 || err.status === 404) return { ok: false, kind: 'auth', message: `HTTP ${err.status}: ${message}` };
  return { ok: false, kind: '5xx', message };
}
