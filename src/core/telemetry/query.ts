/**
 * GET /api/v1/usage: parameters, which rollup partitions cover a time range (days, then hours, then minutes at the
 * ragged edges), merging groups by the requested dimension, and month-to-date status per scope.
 */
import { ValidationError } from '../errors';
import { GroupAggregate, GROUP_DIMENSIONS, round6, type GroupDimension, type GroupSummary } from './aggregate';
import { budgetStatus, projectMonthEnd, type BudgetStatus } from './budget';
import { ROLLUP_PARTITIONS, type Scope } from './partitions';
import type { RollupSettings } from './rollupDeps';
import { budgetOf, monthToDateOf } from './spend';
import type { StateStore } from './store';
import { MINUTE_MS, monthOf, windowOf } from './windows';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Longest range one request may ask for. */
const MAX_RANGE_MS = 93 * DAY_MS;

interface UsageQuery {
  from: number;
  to: number;
  groupBy: GroupDimension;
  /** Only this team's usage (a member's view). */
  team?: string;
}

function invalid(param: string, message: string): never {
  throw new ValidationError(message, param, 'invalid_parameter', 400);
}

function time(param: string, raw: string | null): number | undefined {
  if (raw === null || raw === '') return undefined;
  const t = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(t)) invalid(param, `${param}: expected an ISO 8601 date or time (e.g. 2026-11-23T19:00:00Z), got "${raw}"`);
  return t;
}

/** Defaults: to = now, from = to − 24 h, group_by = team. Times are floored to the minute. */
export function parseUsageQuery(params: { get(name: string): string | null }, now: number, team?: string): UsageQuery {
  const to = time('to', params.get('to')) ?? now;
  const from = time('from', params.get('from')) ?? to - DAY_MS;
  const groupBy = params.get('group_by') ?? 'team';
  if (!(GROUP_DIMENSIONS as readonly string[]).includes(groupBy)) invalid('group_by', `group_by: expected one of ${GROUP_DIMENSIONS.join(', ')}, got "${groupBy}"`);
  const f = Math.floor(from / MINUTE_MS) * MINUTE_MS;
  const t = Math.floor(to / MINUTE_MS) * MINUTE_MS;
  if (f >= t) invalid('from', 'from: must be at least a minute before to');
  if (t - f > MAX_RANGE_MS) invalid('from', `from: the range may span at most ${MAX_RANGE_MS / DAY_MS} days`);
  return { from: f, to: t, groupBy: groupBy as GroupDimension, ...(team !== undefined ? { team } : {}) };
}

/** Partition ranges [from, to) of the rollup table covering [from, to): whole days, whole hours, then minutes. */
export function partitionPlan(from: number, to: number): Array<[string, string]> {
  const plan: Array<[string, string]> = [];
  const name = (level: 'D' | 'H' | 'M', t: number) => {
    const w = windowOf(t);
    return level === 'D' ? ROLLUP_PARTITIONS.day(w) : level === 'H' ? ROLLUP_PARTITIONS.hour(w) : ROLLUP_PARTITIONS.minute(w);
  };
  let t = from;
  while (t < to) {
    // The largest level whose unit starts at t and fits; a run of units stops at the next boundary of the level above.
    const [level, size, upper] = t % DAY_MS === 0 && t + DAY_MS <= to ? (['D', DAY_MS, Infinity] as const)
      : t % HOUR_MS === 0 && t + HOUR_MS <= to ? (['H', HOUR_MS, DAY_MS] as const)
      : (['M', MINUTE_MS, HOUR_MS] as const);
    let end = t + size;
    while (end + size <= to && end % upper !== 0) end += size;
    plan.push([name(level, t), name(level, end)]);
    t = end;
  }
  return plan;
}

interface UsageGroupView extends GroupSummary {
  [dimension: string]: unknown;
}

interface ScopeStatus {
  scope: Scope['kind'];
  name: string;
  mtd_usd: number;
  projected_usd: number;
  budget_usd: number | null;
  percent_of_budget: number | null;
  status: BudgetStatus;
  unpriced_jobs: number;
}

/** Reads rollup rows for the range and merges them by the requested dimension. */
export async function queryUsage(store: StateStore, q: UsageQuery): Promise<{ groups: UsageGroupView[]; total: GroupSummary }> {
  const merged = new Map<string, GroupAggregate>();
  const total = new GroupAggregate({ team: '*', model: '*', region: '*', deployment: '*', kind: '*' });
  for (const [fromPk, toPk] of partitionPlan(q.from, q.to)) {
    for await (const page of store.list(fromPk, toPk, q.team !== undefined ? { team: q.team } : undefined)) {
      for (const { value } of page) {
        const g = GroupAggregate.fromRecord(value);
        if (q.team !== undefined && g.key.team !== q.team) continue;
        const k = g.key[q.groupBy];
        let m = merged.get(k);
        if (!m) merged.set(k, (m = new GroupAggregate({ team: '*', model: '*', region: '*', deployment: '*', kind: '*', [q.groupBy]: k })));
        m.merge(g);
        total.merge(g);
      }
    }
  }
  const groups = [...merged.entries()]
    .sort((a, b) => b[1].costUsd - a[1].costUsd || a[0].localeCompare(b[0]))
    .map(([k, g]) => ({ [q.groupBy]: k, ...g.summary() }));
  return { groups, total: total.summary() };
}

/** Month-to-date cost, projection and budget status of every scope this month. */
export async function monthStatus(store: StateStore, settings: RollupSettings, now: number): Promise<{ month: string; scopes: ScopeStatus[] }> {
  const month = monthOf(now);
  const pk = ROLLUP_PARTITIONS.monthToDate(month);
  const scopes: ScopeStatus[] = [];
  const seen = new Set<string>();
  for await (const page of store.list(pk, `${pk}~`)) {
    for (const { row, value } of page) {
      const mtd = monthToDateOf(value)!;
      const kind = String(value.scope) as Scope['kind'];
      const name = String(value.name);
      const scope: Scope = kind === 'team' ? { kind, team: name } : kind === 'deployment' ? { kind, region: name.split('/')[0]!, deployment: name.split('/').slice(1).join('/') } : { kind: 'all' };
      seen.add(row);
      scopes.push(status(scope, name, mtd.costUsd, projectMonthEnd(mtd, now), budgetOf(settings, scope), Number(value.unpricedJobs ?? 0)));
    }
  }
  if (!seen.has('all')) scopes.unshift(status({ kind: 'all' }, 'all', 0, 0, settings.monthlyBudgetUsd, 0));
  for (const team of Object.keys(settings.teamBudgetsUsd)) {
    if (!scopes.some((s) => s.scope === 'team' && s.name === team)) scopes.push(status({ kind: 'team', team }, team, 0, 0, settings.teamBudgetsUsd[team], 0));
  }
  const order = { all: 0, team: 1, deployment: 2 } as const;
  scopes.sort((a, b) => order[a.scope] - order[b.scope] || a.name.localeCompare(b.name));
  return { month: `${month.slice(0, 4)}-${month.slice(4)}`, scopes };
}

function status(scope: Scope, name: string, mtd: number, projected: number, budget: number | undefined, unpriced: number): ScopeStatus {
  return {
    scope: scope.kind,
    name,
    mtd_usd: round6(mtd),
    projected_usd: round6(projected),
    budget_usd: budget ?? null,
    percent_of_budget: budget ? Math.round((mtd / budget) * 1000) / 10 : null,
    status: budgetStatus(mtd, projected, budget),
    unpriced_jobs: unpriced,
  };
}
