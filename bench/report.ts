/** Small helpers shared by the benchmarks: percentiles and a readable table. */

/** q in [0,1] of an ascending-sorted array (nearest rank). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** Prints rows as an aligned table; the first row is the header. */
export function printTable(title: string, rows: ReadonlyArray<ReadonlyArray<string | number>>): void {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  console.log(`\n${title}`);
  cells.forEach((r, idx) => {
    console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
    if (idx === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  });
}

/**
 * BENCH_SMOKE=1 runs a bench at a tiny size that finishes in seconds: CI runs every bench this way so none can rot.
 * Its figures mean nothing; the run must complete and print its table and its last-line JSON.
 */
export const SMOKE = process.env.BENCH_SMOKE === '1';

/** A numeric knob: the environment's value when it is a number ≥ 0, else the smoke or the full-size default. */
export function knob(name: string, full: number, smoke: number = full): number {
  const raw = process.env[name];
  const v = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  return Number.isFinite(v) && v >= 0 ? v : SMOKE ? smoke : full;
}

/**
 * Prints a bench's result as its last stdout line. Whatever would print to stdout after it (a host's last telemetry
 * flush while the stack stops) goes to stderr, so readers can take the last line as the result.
 */
export function printResult(result: object): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write;
}
