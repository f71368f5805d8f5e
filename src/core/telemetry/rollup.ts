/**
 * The rollup: closes finished minute windows exactly once, in order, and for each one
 *  1. aggregates its usage rows (streamed page by page into per-group counters and sketches),
 *  2. stores minute rollup rows and merges them into hour and day rows (sketches included),
 *  3. updates month-to-date cost per scope, raises budget and quota alerts (each once) (spend.ts, quotaAdvice.ts),
 *  4. sends the window's metrics to the telemetry sink (windowMetrics.ts),
 *  5. advances the watermark (watermark.ts).
 *
 * Exactly once: a window is claimed on the watermark entity with its ETag; the claim's server commit time is the
 * window's cut, and only rows committed at or before the cut are counted, so a run that takes over a crashed claim
 * counts the same rows. Steps 2–3 are idempotent (upserts, applyOnce, create-once alerts). Metrics (4) are sent
 * at least once: only a run that dies between sending and step 5 can repeat them, and every metric carries the
 * `window` dimension to de-duplicate on. Rows committed after the cut are re-filed by their writer (usage.ts).
 */
import { randomUUID } from 'node:crypto';
import { GroupAggregate, WindowAggregate } from './aggregate';
import { EVENTS, GAUGE_METRICS } from './names';
import { ROLLUP_PARTITIONS } from './partitions';
import { adviseQuota } from './quotaAdvice';
import type { RollupDeps, UsageRowSource } from './rollupDeps';
import { updateMonthToDate } from './spend';
import { applyOnce } from './store';
import { claimNextWindow, completeWindow, lagWindows } from './watermark';
import { windowIso } from './windows';
import { emitWindow } from './windowMetrics';

// The rollup's entry point also names what its callers use from the modules above.
export type { RollupDeps, TelemetrySink, UsageRowSource } from './rollupDeps';
export { ROLLUP_PARTITIONS, WATERMARK, scopeKey } from './partitions';
export { monthToDateOf } from './spend';
export { watermarkCuts } from './watermark';

interface RollupResult {
  closed: string[];
  rows: number;
  /** Another run held the claim. */
  busy: boolean;
  /** Closable windows still open after this run. */
  lagWindows: number;
}

/** Runs until no window is closable, another run holds the claim, or maxWindowsPerRun were closed. */
export async function runRollup(deps: RollupDeps): Promise<RollupResult> {
  const runId = deps.runId ?? randomUUID();
  const leaseMs = deps.leaseMs ?? 300_000;
  const result: RollupResult = { closed: [], rows: 0, busy: false, lagWindows: 0 };
  for (let i = 0; i < (deps.maxWindowsPerRun ?? 30); i += 1) {
    const next = await claimNextWindow(deps, runId, leaseMs);
    if (next.kind === 'none') break;
    if (next.kind === 'busy') {
      result.busy = true;
      break;
    }
    const { window, cut } = next.claim;
    const agg = await aggregateWindow(deps.usage, window, cut);
    await persistWindow(deps, window, agg);
    emitWindow(deps, window, agg);
    await deps.sink.flush();
    if (!(await completeWindow(deps, next.claim))) {
      result.busy = true;
      break;
    }
    result.closed.push(window);
    result.rows += agg.rows;
    deps.log('debug', `rollup: closed window ${window}: ${agg.rows} rows, ${agg.groups.size} groups`);
  }

  result.lagWindows = await lagWindows(deps.state, deps.clock.now(), deps.settings.latenessMs);
  const gauges = deps.gauges ? await deps.gauges().catch((err: Error) => (deps.log('warn', `rollup: gauges failed: ${err.message}`), [])) : [];
  for (const g of gauges) deps.sink.metric(g.name, g.value, g.properties);
  deps.sink.metric(GAUGE_METRICS.rollupLagWindows, result.lagWindows, {});
  await deps.sink.flush();
  return result;
}

async function aggregateWindow(source: UsageRowSource, window: string, cut: string): Promise<WindowAggregate> {
  const agg = new WindowAggregate();
  for await (const page of source.rows(window, cut)) for (const row of page) agg.add(row);
  return agg;
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
