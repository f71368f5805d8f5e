/** Month-to-date cost, its projection to month end, and budget thresholds. Pure functions of numbers and time. */
import { monthBounds } from './windows';

const HOUR_MS = 3_600_000;
/** Run rate is measured over the last day of spend... */
const RUN_RATE_WINDOW_MS = 24 * HOUR_MS;
/** ...but over at least an hour, so one expensive first minute does not project a fortune. */
const MIN_RUN_RATE_SPAN_MS = HOUR_MS;

export interface MonthToDate {
  costUsd: number;
  /** Cost per hour bucket ("yyyyMMddHH" → USD) for the last day, for the run rate. */
  hourly: Record<string, number>;
  /** Epoch ms of the first window counted this month for this scope. */
  firstAt: number;
}

/** Month-end projection: MTD plus the recent run rate over the rest of the month. */
export function projectMonthEnd(mtd: MonthToDate, now: number): number {
  const { end } = monthBounds(now);
  const since = now - RUN_RATE_WINDOW_MS;
  let recent = 0;
  for (const [hour, usd] of Object.entries(mtd.hourly)) {
    const start = Date.UTC(+hour.slice(0, 4), +hour.slice(4, 6) - 1, +hour.slice(6, 8), +hour.slice(8, 10));
    if (start + HOUR_MS > since) recent += usd;
  }
  const span = Math.max(MIN_RUN_RATE_SPAN_MS, now - Math.max(since, mtd.firstAt));
  return mtd.costUsd + (recent / span) * Math.max(0, end - now);
}

/** Adds one window's cost to a scope's month-to-date, pruning hour buckets older than the run-rate window. */
export function addToMonth(mtd: MonthToDate | undefined, usd: number, windowStartMs: number): MonthToDate {
  const hour = new Date(windowStartMs).toISOString().slice(0, 13).replace(/[-T]/g, '');
  const hourly: Record<string, number> = {};
  const keepFrom = new Date(windowStartMs - RUN_RATE_WINDOW_MS - HOUR_MS).toISOString().slice(0, 13).replace(/[-T]/g, '');
  for (const [h, v] of Object.entries(mtd?.hourly ?? {})) if (h >= keepFrom) hourly[h] = v;
  hourly[hour] = (hourly[hour] ?? 0) + usd;
  return { costUsd: (mtd?.costUsd ?? 0) + usd, hourly, firstAt: mtd?.firstAt ?? windowStartMs };
}

type Basis = 'actual' | 'projected';

interface Crossing {
  basis: Basis;
  thresholdPct: number;
  valueUsd: number;
}

/** Thresholds reached by actual and by projected cost (each its own alert). */
export function crossedThresholds(actualUsd: number, projectedUsd: number, budgetUsd: number, thresholdsPct: number[]): Crossing[] {
  const out: Crossing[] = [];
  for (const t of thresholdsPct) {
    const limit = (budgetUsd * t) / 100;
    if (actualUsd > 0 && actualUsd >= limit) out.push({ basis: 'actual', thresholdPct: t, valueUsd: actualUsd });
    if (projectedUsd > 0 && projectedUsd >= limit) out.push({ basis: 'projected', thresholdPct: t, valueUsd: projectedUsd });
  }
  return out;
}

export type BudgetStatus = 'no_budget' | 'ok' | 'projected_over' | 'over';

export function budgetStatus(actualUsd: number, projectedUsd: number, budgetUsd: number | undefined): BudgetStatus {
  if (budgetUsd === undefined) return 'no_budget';
  if (actualUsd >= budgetUsd && actualUsd > 0) return 'over';
  if (projectedUsd >= budgetUsd && projectedUsd > 0) return 'projected_over';
  return 'ok';
}
