/**
 * The rollup: closes finished minute windows exactly once, in order, and for each one
 *  1. aggregates its usage rows (streamed page by page into per-group counters and sketches),
 *  2. stores minute rollup rows and merges them into hour and day rows (sketches included),
 *  3. updates month-to-date cost per scope, raises budget and quota alerts (each once),
 *  4. sends the window's metrics to the telemetry sink,
 *  5. advances the watermark.
 *
 * Exactly once: a window is claimed on the watermark entity with its ETag; the claim's server commit time is the
 * window's cut, and only rows committed at or before the cut are counted, so a run that takes over a crashed claim
 * counts the same rows. Steps 2–3 are idempotent (upserts, applyOnce, create-once alerts). Metrics (4) are sent
 * at least once: only a run that dies between sending and step 5 can repeat them, and every metric carries the
 * `window` dimension to de-duplicate on. Rows committed after the cut are re-filed by their writer (usage.ts).
 */
import { randomUUID } from 'node:crypto';
import { GroupAggregate, WindowAggregate, round6, type RollupRow } from './aggregate';
import { addToMonth, crossedThresholds, projectMonthEnd, type MonthToDate } from './budget';
import { COST_METRICS, DEPLOYMENT_METRICS, EVENTS, GAUGE_METRICS, WINDOW_METRICS } from './names';
import { applyOnce, ConflictError, normalizeCommitTime, type StateStore, type StateValue, type Versioned } from './store';
import type { UsageRow, WindowCuts } from './usage';
import { MINUTE_MS, monthOf, nextWindow, windowIso, windowOf, windowStart } from './windows';

/** What the rollup sends to Application Insights (src/azure/telemetry.ts), or a log in tests and local runs. */
export interface TelemetrySink {
  metric(name: string, value: number, properties: Record<string, string>): void;
  event(name: string, properties: Record<string, string>, measurements?: Record<string, number>): void;
  flush(): Promise<void>;
}

export interface UsageRowSource {
  /** Rows of `window` committed at or before `cut`, page by page (only the fields the rollup reads). */
  rows(window: string, cut: string): AsyncIterable<RollupRow[]>;
}

export interface DeploymentLimits {
  region: string;
  deployment: string;
  model: string;
  tpm: number;
  rpm: number;
}

export interface Gauge {
  name: string;
  value: number;
  properties: Record<string, string>;
}

/** What the rollup needs of the telemetry settings (units and defaults: src/configSchema.ts). */
export interface RollupSettings {
  /** A minute window closes this long after its end, ms. */
  latenessMs: number;
  /** Overall monthly budget, USD; undefined: no overall alerts. */
  monthlyBudgetUsd?: number;
  /** team → USD per month */
  teamBudgetsUsd: Record<string, number>;
  /** Percentages of a budget that raise an alert, ascending. */
  budgetThresholdsPct: number[];
  quotaAdviceMinutes: number;
  quotaAdvicePercent: number;
}

export interface RollupDeps {
  usage: UsageRowSource;
  state: StateStore;
  sink: TelemetrySink;
  clock: { now(): number };
  settings: RollupSettings;
  endpoints: readonly DeploymentLimits[];
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Queue depths, waiting jobs: sent once per run. */
  gauges?: () => Promise<Gauge[]>;
  /** @default a random id */
  runId?: string;
  /** How long a claim keeps other runs off a window, ms. @default 300000 */
  leaseMs?: number;
  /** Windows one run closes at most (catch-up after an outage continues next run). @default 30 */
  maxWindowsPerRun?: number;
  /** Where the very first run starts, ms before now. @default 3600000 */
  initialLookbackMs?: number;
}

export interface RollupResult {
  closed: string[];
  rows: number;
  /** Another run held the claim. */
  busy: boolean;
  /** Closable windows still open after this run. */
  lagWindows: number;
}

export const WATERMARK = { partition: 'watermark', row: 'usage' } as const;
const HISTORY_KEPT = 180;

interface Watermark {
  closedThrough: string;
  claimWindow: string;
  claimRun: string;
  leaseUntil: number;
  cut: string;
  /** JSON [[window, cut], ...], newest last. */
  history: string;
}

function readWatermark(v: Versioned | undefined, fallback: string): Watermark {
  return {
    closedThrough: String(v?.value.closedThrough ?? fallback),
    claimWindow: String(v?.value.claimWindow ?? ''),
    claimRun: String(v?.value.claimRun ?? ''),
    leaseUntil: Number(v?.value.leaseUntil ?? 0),
    cut: String(v?.value.cut ?? ''),
    history: String(v?.value.history ?? '[]'),
  };
}

/** Partitions of the rollup table. */
export const ROLLUP_PARTITIONS = {
  minute: (window: string) => `M${window}`,
  hour: (window: string) => `H${window.slice(0, 10)}`,
  day: (window: string) => `D${window.slice(0, 8)}`,
  monthToDate: (month: string) => `mtd${month}`,
  alerts: (month: string) => `alert${month}`,
  quota: 'quota',
} as const;

export type Scope = { kind: 'all' } | { kind: 'team'; team: string } | { kind: 'deployment'; region: string; deployment: string };

export function scopeKey(s: Scope): string {
  if (s.kind === 'all') return 'all';
  if (s.kind === 'team') return `team|${encodeURIComponent(s.team)}`;
  return `deployment|${encodeURIComponent(`${s.region}/${s.deployment}`)}`;
}

/** Runs until no window is closable, another run holds the claim, or maxWindowsPerRun were closed. */
export async function runRollup(deps: RollupDeps): Promise<RollupResult> {
  const runId = deps.runId ?? randomUUID();
  const leaseMs = deps.leaseMs ?? 300_000;
  const result: RollupResult = { closed: [], rows: 0, busy: false, lagWindows: 0 };
  for (let i = 0; i < (deps.maxWindowsPerRun ?? 30); i += 1) {
    const now = deps.clock.now();
    const stored = await deps.state.get(WATERMARK.partition, WATERMARK.row);
    const wm = readWatermark(stored, windowOf(now - (deps.initialLookbackMs ?? 3_600_000)));
    const target = nextWindow(wm.closedThrough);
    if (!closable(target, now, deps.settings.latenessMs)) break;

    // Claim the window. A live claim by another run means it is being closed: leave it.
    if (wm.claimWindow === target && wm.claimRun !== runId && wm.leaseUntil > now) {
      result.busy = true;
      break;
    }
    let etag: string;
    let cut: string;
    try {
      if (wm.claimWindow === target) {
        // Taking over a claim that expired: same cut (the commit time of the write that made the claim).
        cut = wm.cut || stored!.committedAt;
        etag = (await deps.state.replace(WATERMARK.partition, WATERMARK.row, { ...wm, claimRun: runId, leaseUntil: now + leaseMs, cut }, stored!.etag)).etag;
        deps.log('warn', `rollup: took over the expired claim on window ${target}`);
      } else {
        const claim: Watermark = { ...wm, claimWindow: target, claimRun: runId, leaseUntil: now + leaseMs, cut: '' };
        const written = stored
          ? await deps.state.replace(WATERMARK.partition, WATERMARK.row, { ...claim }, stored.etag)
          : await deps.state.create(WATERMARK.partition, WATERMARK.row, { ...claim });
        cut = normalizeCommitTime(written.committedAt);
        etag = (await deps.state.replace(WATERMARK.partition, WATERMARK.row, { ...claim, cut }, written.etag)).etag;
      }
    } catch (err) {
      if (err instanceof ConflictError) {
        result.busy = true;
        break;
      }
      throw err;
    }

    const agg = await aggregateWindow(deps.usage, target, cut);
    await persistWindow(deps, target, agg);
    emitWindow(deps, target, agg);
    await deps.sink.flush();

    const history = (JSON.parse(wm.history) as Array<[string, string]>).concat([[target, cut]]).slice(-HISTORY_KEPT);
    const done: Watermark = { closedThrough: target, claimWindow: '', claimRun: '', leaseUntil: 0, cut: '', history: JSON.stringify(history) };
    try {
      await deps.state.replace(WATERMARK.partition, WATERMARK.row, { ...done }, etag);
    } catch (err) {
      if (err instanceof ConflictError) {
        deps.log('warn', `rollup: lost the claim on window ${target} (lease ran out); the run that took it over finishes it`);
        result.busy = true;
        break;
      }
      throw err;
    }
    result.closed.push(target);
    result.rows += agg.rows;
    deps.log('info', `rollup: closed window ${target}: ${agg.rows} rows, ${agg.groups.size} groups`);
  }

  const now = deps.clock.now();
  const wm = readWatermark(await deps.state.get(WATERMARK.partition, WATERMARK.row), windowOf(now));
  const lastClosable = windowOf(now - deps.settings.latenessMs - MINUTE_MS);
  result.lagWindows = Math.max(0, Math.round((windowStart(lastClosable) - windowStart(wm.closedThrough)) / MINUTE_MS));
  const gauges = deps.gauges ? await deps.gauges().catch((err: Error) => (deps.log('warn', `rollup: gauges failed: ${err.message}`), [])) : [];
  for (const g of gauges) deps.sink.metric(g.name, g.value, g.properties);
  deps.sink.metric(GAUGE_METRICS.rollupLagWindows, result.lagWindows, {});
  await deps.sink.flush();
  return result;
}

/** A window closes once its end is `latenessMs` in the past. */
export function closable(window: string, now: number, latenessMs: number): boolean {
  return windowStart(window) + MINUTE_MS + latenessMs <= now;
}

export async function aggregateWindow(source: UsageRowSource, window: string, cut: string): Promise<WindowAggregate> {
  const agg = new WindowAggregate();
  for await (const page of source.rows(window, cut)) for (const row of page) agg.add(row);
  return agg;
}

/** The cut of a window as the watermark tells it, for slow writers (see recordJobUsage). */
export function watermarkCuts(state: StateStore): WindowCuts {
  return {
    async cutOf(window) {
      const stored = await state.get(WATERMARK.partition, WATERMARK.row);
      if (!stored) return undefined;
      const wm = readWatermark(stored, '');
      if (wm.claimWindow === window) return wm.cut || normalizeCommitTime(stored.committedAt);
      if (window > wm.closedThrough) return undefined;
      const hit = (JSON.parse(wm.history) as Array<[string, string]>).find(([w]) => w === window);
      return hit ? hit[1] : ''; // older than the history: everything is late
    },
  };
}

async function persistWindow(deps: RollupDeps, window: string, agg: WindowAggregate): Promise<void> {
  const { state } = deps;
  // Minute rows: plain upserts (same content on a retry).
  for (const [key, g] of agg.groups) await state.upsert(ROLLUP_PARTITIONS.minute(window), key, { ...g.toRecord(), throughWindow: window });
  // Hour and day rows: merged once per window.
  for (const partition of [ROLLUP_PARTITIONS.hour(window), ROLLUP_PARTITIONS.day(window)]) {
    for (const [key, g] of agg.groups) {
      await applyOnce(state, partition, key, window, (prev) => {
        const merged = prev ? GroupAggregate.fromRecord(prev) : new GroupAggregate(g.key);
        merged.merge(g);
        return merged.toRecord();
      });
    }
  }
  await updateMonthToDate(deps, window, agg);
  await adviseQuota(deps, window, agg);
  if (agg.unpricedModels.size > 0) {
    const models = [...agg.unpricedModels].join(', ');
    deps.log('warn', `rollup: window ${window}: no price for ${models}; their cost is unknown (set SLUICE_PRICES)`);
    deps.sink.event(EVENTS.unpricedModel, { window: windowIso(window), models });
  }
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

export function monthToDateOf(v: StateValue | undefined): MonthToDate | undefined {
  if (!v) return undefined;
  return { costUsd: Number(v.costUsd ?? 0), hourly: JSON.parse(String(v.hourly ?? '{}')) as Record<string, number>, firstAt: Number(v.firstAt ?? 0) };
}

export function budgetOf(settings: RollupSettings, scope: Scope): number | undefined {
  if (scope.kind === 'all') return settings.monthlyBudgetUsd;
  if (scope.kind === 'team') return settings.teamBudgetsUsd[scope.team];
  return undefined;
}

async function updateMonthToDate(deps: RollupDeps, window: string, agg: WindowAggregate): Promise<void> {
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

function scopeDimensions(scope: Scope, window: string): Record<string, string> {
  const dims: Record<string, string> = { window: windowIso(window), scope: scope.kind };
  if (scope.kind === 'team') dims.team = scope.team;
  if (scope.kind === 'deployment') Object.assign(dims, { region: scope.region, deployment: scope.deployment });
  return dims;
}

async function adviseQuota(deps: RollupDeps, window: string, agg: WindowAggregate): Promise<void> {
  const limit = deps.settings.quotaAdvicePercent / 100;
  for (const e of deps.endpoints) {
    const use = agg.deployments.get(`${e.region}/${e.deployment}`);
    const utilisation = (use?.tokensCharged ?? 0) / e.tpm;
    let advise: StateValue | undefined;
    await applyOnce(deps.state, ROLLUP_PARTITIONS.quota, encodeURIComponent(`${e.region}/${e.deployment}`), window, (prev) => {
      advise = undefined;
      if (utilisation <= limit) return { streak: 0, sum: 0, peak: 0, advised: false };
      const streak = Number(prev?.streak ?? 0) + 1;
      const sum = Number(prev?.sum ?? 0) + utilisation;
      const peak = Math.max(Number(prev?.peak ?? 0), utilisation);
      const due = streak >= deps.settings.quotaAdviceMinutes && !prev?.advised;
      const next = { streak, sum, peak, advised: Boolean(prev?.advised) || due };
      if (due) advise = next;
      return next;
    });
    if (!advise) continue;
    const streak = Number(advise.streak);
    const peak = Number(advise.peak);
    const suggested = Math.ceil((peak * e.tpm) / limit / 1000) * 1000;
    deps.log('warn', `quota: ${e.region}/${e.deployment} above ${deps.settings.quotaAdvicePercent}% of its ${e.tpm} TPM for ${streak} minutes (peak ${(peak * 100).toFixed(0)}%); consider ${suggested} TPM`);
    deps.sink.event(
      EVENTS.quotaAdvice,
      { window: windowIso(window), region: e.region, deployment: e.deployment, model: e.model, tpm: String(e.tpm), minutes: String(streak), suggested_tpm: String(suggested) },
      { tpm: e.tpm, minutes: streak, avg_utilisation: Number(advise.sum) / streak, peak_utilisation: peak, suggested_tpm: suggested },
    );
  }
}

function emitWindow(deps: RollupDeps, window: string, agg: WindowAggregate): void {
  const iso = windowIso(window);
  const m = WINDOW_METRICS;
  for (const g of agg.groups.values()) {
    const dims = { window: iso, ...g.key };
    const send = (name: string, value: number | null | undefined) => {
      if (value !== null && value !== undefined) deps.sink.metric(name, value, dims);
    };
    send(m.jobsSucceeded, g.succeeded);
    send(m.jobsFailed, g.failed);
    send(m.tokensPrompt, g.promptTokens);
    send(m.tokensCached, g.cachedTokens);
    send(m.tokensCompletion, g.completionTokens);
    send(m.tokensReservedUnused, g.reservedUnusedTokens);
    send(m.tokensReservedUnusedShare, g.reservedUnusedShare);
    send(m.costUsd, round6(g.costUsd));
    if (g.unpricedJobs > 0) send(m.costUnpricedJobs, g.unpricedJobs);
    send(m.throttles, g.throttles);
    send(m.failovers, g.failovers);
    const q = g.queueWait.percentiles();
    const ml = g.modelLatency.percentiles();
    const t = g.totalLatency.percentiles();
    send(m.latencyQueueP50, q?.p50);
    send(m.latencyQueueP95, q?.p95);
    send(m.latencyQueueP99, q?.p99);
    send(m.latencyModelP50, ml?.p50);
    send(m.latencyModelP95, ml?.p95);
    send(m.latencyModelP99, ml?.p99);
    send(m.latencyTotalP50, t?.p50);
    send(m.latencyTotalP95, t?.p95);
    send(m.latencyTotalP99, t?.p99);
  }
  const seen = new Set<string>();
  const deployment = (region: string, name: string, model: string, tpm: number | undefined, rpm: number | undefined) => {
    const use = agg.deployments.get(`${region}/${name}`);
    const dims = { window: iso, region, deployment: name, model };
    deps.sink.metric(DEPLOYMENT_METRICS.tokensCharged, use?.tokensCharged ?? 0, dims);
    deps.sink.metric(DEPLOYMENT_METRICS.requests, use?.requests ?? 0, dims);
    if (tpm) deps.sink.metric(DEPLOYMENT_METRICS.tpmUtilisation, (use?.tokensCharged ?? 0) / tpm, dims);
    if (rpm) deps.sink.metric(DEPLOYMENT_METRICS.rpmUtilisation, (use?.requests ?? 0) / rpm, dims);
  };
  for (const e of deps.endpoints) {
    seen.add(`${e.region}/${e.deployment}`);
    deployment(e.region, e.deployment, e.model, e.tpm, e.rpm);
  }
  for (const [k, d] of agg.deployments) if (!seen.has(k)) deployment(d.region, d.deployment, '', undefined, undefined);
}

