/**
 * Month-to-date cost per scope (all, each team, each deployment), its projection to the month's end, and budget
 * threshold alerts, each sent once per month × scope × basis × threshold however many runs see it.
 */
import { round6, type GroupAggregate, type WindowAggregate } from './aggregate';
import { addToMonth, crossedThresholds, projectMonthEnd, type MonthToDate } from './budget';
import { COST_METRICS, EVENTS } from './names';
import { ROLLUP_PARTITIONS, scopeKey, type Scope } from './partitions';
import type { RollupDeps, RollupSettings } from './rollupDeps';
import { applyOnce, ConflictError, type StateValue } from './store';
import { MINUTE_MS, monthOf, windowIso, windowStart } from './windows';

export function monthToDateOf(v: StateValue | undefined): MonthToDate | undefined {
  if (!v) return undefined;
  return { costUsd: Number(v.costUsd ?? 0), hourly: JSON.parse(String(v.hourly ?? '{}')) as Record<string, number>, firstAt: Number(v.firstAt ?? 0) };
}

/** The monthly budget of a scope, USD; undefined when it has none. */
export function budgetOf(settings: RollupSettings, scope: Scope): number | undefined {
  if (scope.kind === 'all') return settings.monthlyBudgetUsd;
  if (scope.kind === 'team') return settings.teamBudgetsUsd[scope.team];
  return undefined;
}

function costByScope(agg: WindowAggregate): Map<string, { scope: Scope; usd: number; unpriced: number }> {
  const out = new Map<string, { scope: Scope; usd: number; unpriced: number }>();
  const add = (scope: Scope, g: GroupAggregate) => {
    const k = scopeKey(scope);
    const e = out.get(k) ?? { scope, usd: 0, unpriced: 0 };
    e.usd += g.costUsd;
    e.unpriced += g.unpricedJobs;
    out.set(k, e);
  };
  for (const g of agg.groups.values()) {
    add({ kind: 'all' }, g);
    add({ kind: 'team', team: g.key.team }, g);
    add({ kind: 'deployment', region: g.key.region, deployment: g.key.deployment }, g);
  }
  return out;
}

function scopeDimensions(scope: Scope, window: string): Record<string, string> {
  const dims: Record<string, string> = { window: windowIso(window), scope: scope.kind };
  if (scope.kind === 'team') dims.team = scope.team;
  if (scope.kind === 'deployment') Object.assign(dims, { region: scope.region, deployment: scope.deployment });
  return dims;
}

/** Adds a window's cost to each scope's month, sends month-to-date and projected cost, raises budget alerts. */
export async function updateMonthToDate(deps: RollupDeps, window: string, agg: WindowAggregate): Promise<void> {
  const start = windowStart(window);
  const asOf = start + MINUTE_MS; // projections use the window's end, not the wall clock: a re-run decides the same
  const month = monthOf(start);
  const scopes = costByScope(agg);
  // Every scope with a budget is evaluated each window, spend or not, so projections fall as well as rise.
  if (!scopes.has('all')) scopes.set('all', { scope: { kind: 'all' }, usd: 0, unpriced: 0 });
  for (const team of Object.keys(deps.settings.teamBudgetsUsd)) {
    const k = scopeKey({ kind: 'team', team });
    if (!scopes.has(k)) scopes.set(k, { scope: { kind: 'team', team }, usd: 0, unpriced: 0 });
  }
  for (const [key, { scope, usd, unpriced }] of scopes) {
    const written = await applyOnce(deps.state, ROLLUP_PARTITIONS.monthToDate(month), key, window, (prev) => {
      const mtd = addToMonth(monthToDateOf(prev), usd, start);
      return {
        scope: scope.kind,
        name: scope.kind === 'team' ? scope.team : scope.kind === 'deployment' ? `${scope.region}/${scope.deployment}` : 'all',
        costUsd: mtd.costUsd,
        unpricedJobs: Number(prev?.unpricedJobs ?? 0) + unpriced,
        hourly: JSON.stringify(mtd.hourly),
        firstAt: mtd.firstAt,
      };
    });
    const current = written ?? (await deps.state.get(ROLLUP_PARTITIONS.monthToDate(month), key))?.value;
    const mtd = monthToDateOf(current)!;
    const projected = projectMonthEnd(mtd, asOf);
    const dims = scopeDimensions(scope, window);
    deps.sink.metric(COST_METRICS.monthToDateUsd, round6(mtd.costUsd), dims);
    deps.sink.metric(COST_METRICS.projectedMonthUsd, round6(projected), dims);
    const budget = budgetOf(deps.settings, scope);
    if (budget === undefined) continue;
    for (const c of crossedThresholds(mtd.costUsd, projected, budget, deps.settings.budgetThresholdsPct)) {
      try {
        await deps.state.create(ROLLUP_PARTITIONS.alerts(month), `${key}|${c.basis}|${c.thresholdPct}`, { window, valueUsd: c.valueUsd, budgetUsd: budget });
      } catch (err) {
        if (err instanceof ConflictError) continue; // sent before (by this or another run)
        throw err;
      }
      const who = scope.kind === 'team' ? `team ${scope.team}` : 'overall';
      deps.log('warn', `budget: ${who} ${c.basis} cost $${c.valueUsd.toFixed(2)} reached ${c.thresholdPct}% of the $${budget} monthly budget (${month})`);
      deps.sink.event(
        EVENTS.budgetThreshold,
        { ...dims, month, basis: c.basis, threshold_pct: String(c.thresholdPct), spent_usd: mtd.costUsd.toFixed(2), projected_usd: projected.toFixed(2), budget_usd: String(budget) },
        { threshold_pct: c.thresholdPct, spent_usd: mtd.costUsd, projected_usd: projected, budget_usd: budget },
      );
    }
  }
}
