/** Where the rollup keeps what in its table, and the scopes month-to-date cost is kept for. */

/** Partitions of the rollup table. */
export const ROLLUP_PARTITIONS = {
  minute: (window: string) => `M${window}`,
  hour: (window: string) => `H${window.slice(0, 10)}`,
  day: (window: string) => `D${window.slice(0, 8)}`,
  monthToDate: (month: string) => `mtd${month}`,
  alerts: (month: string) => `alert${month}`,
  quota: 'quota',
} as const;

/** The entity that records which windows are closed and which one is being closed. */
export const WATERMARK = { partition: 'watermark', row: 'usage' } as const;

export type Scope = { kind: 'all' } | { kind: 'team'; team: string } | { kind: 'deployment'; region: string; deployment: string };

/** Row key of a scope in the month-to-date and alert partitions. */
export function scopeKey(s: Scope): string {
  if (s.kind === 'all') return 'all';
  if (s.kind === 'team') return `team|${encodeURIComponent(s.team)}`;
  return `deployment|${encodeURIComponent(`${s.region}/${s.deployment}`)}`;
}
