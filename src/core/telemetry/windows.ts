/** UTC minute windows named "yyyyMMddHHmm" (e.g. "202611231951"), and their hour/day/month prefixes. */

export const MINUTE_MS = 60_000;

/** The window holding epoch ms `t`. */
export function windowOf(t: number): string {
  return new Date(t).toISOString().slice(0, 16).replace(/[-T:]/g, '');
}

/** Epoch ms at which `window` starts. */
export function windowStart(window: string): number {
  if (!/^\d{12}$/.test(window)) throw new Error(`not a window: "${window}"`);
  const iso = `${window.slice(0, 4)}-${window.slice(4, 6)}-${window.slice(6, 8)}T${window.slice(8, 10)}:${window.slice(10, 12)}:00.000Z`;
  return Date.parse(iso);
}

export function nextWindow(window: string): string {
  return windowOf(windowStart(window) + MINUTE_MS);
}

/** "2026-11-23T19:51:00.000Z" */
export function windowIso(window: string): string {
  return new Date(windowStart(window)).toISOString();
}

/** "yyyyMM" of epoch ms. */
export function monthOf(t: number): string {
  return windowOf(t).slice(0, 6);
}

/** Start and end (exclusive) of the UTC month holding t. */
export function monthBounds(t: number): { start: number; end: number } {
  const d = new Date(t);
  return { start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
}
