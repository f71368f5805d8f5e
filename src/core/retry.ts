/**
 * The one retry policy: a server hint wins (retry-after-ms, then retry-after), otherwise exponential backoff with
 * full jitter. Every delay is capped, because Azure can say "retry after 86400 seconds" when a daily quota is gone.
 */
export interface BackoffOptions {
  /** First backoff step, ms. @default 1000 */
  baseMs?: number;
  /** Longest single delay, ms. @default 60000 */
  maxMs?: number;
}

/**
 * Delay before retry number `attempt` (1 = first retry), ms.
 * @param hintMs the server's Retry-After, if any
 * @param random a [0,1) source, injectable for tests
 */
export function retryDelayMs(attempt: number, hintMs: number | undefined, opts: BackoffOptions = {}, random = Math.random): number {
  const base = opts.baseMs ?? 1000;
  const max = opts.maxMs ?? 60_000;
  if (hintMs !== undefined && hintMs >= 0) return Math.min(hintMs, max);
  const ceiling = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  // Full jitter, with a floor so retries never spin.
  return Math.max(Math.min(base, max) / 4, Math.floor(random() * ceiling));
}
