/**
 * The metrics of one closed window: per group (team × model × region × deployment × kind) jobs, tokens, cost,
 * throttles, failovers, latency and time-to-first-token percentiles, cache hits and abandoned streams; per deployment the quota charged and its share of the configured TPM and RPM.
 * Every metric carries the `window` dimension, so a window sent twice can be de-duplicated.
 */
import { round6, type WindowAggregate } from './aggregate';
import { DEPLOYMENT_METRICS, WINDOW_METRICS } from './names';
import type { RollupDeps } from './rollupDeps';
import { windowIso } from './windows';

export function emitWindow(deps: RollupDeps, window: string, agg: WindowAggregate): void {
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
    const ttft = g.ttft.percentiles();
    send(m.latencyTtftP50, ttft?.p50);
    send(m.latencyTtftP95, ttft?.p95);
    send(m.latencyTtftP99, ttft?.p99);
    if (g.cacheHits > 0) send(m.cacheHits, g.cacheHits);
    if (g.savedUsd > 0) send(m.cacheSavedUsd, round6(g.savedUsd));
    if (g.abandoned > 0) send(m.abandoned, g.abandoned);
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
