/**
 * Every metric and event name Sluice sends to Application Insights, in one list. Dashboards, alert rules and
 * docs/telemetry.md are checked against this file; add a name here before sending it.
 *
 * Metrics land in `customMetrics` (value = valueSum: each series is sent once per window), events in `customEvents`.
 * Every window metric carries the custom dimensions window (UTC minute start, ISO: the key to de-duplicate on),
 * team, model, region, deployment and kind (job, batch or sync).
 */

/** Per window × team × logical model × region × deployment × kind. */
export const WINDOW_METRICS = {
  jobsSucceeded: 'sluice.jobs.succeeded',
  jobsFailed: 'sluice.jobs.failed',
  tokensPrompt: 'sluice.tokens.prompt',
  tokensCached: 'sluice.tokens.cached',
  tokensCompletion: 'sluice.tokens.completion',
  /** max_tokens reserved but not generated (maxOutputTokens − completion), summed. */
  tokensReservedUnused: 'sluice.tokens.reserved_unused',
  /** reserved_unused ÷ reserved output tokens, 0–1. */
  tokensReservedUnusedShare: 'sluice.tokens.reserved_unused_share',
  costUsd: 'sluice.cost.usd',
  /** Jobs whose model has no price (their cost is not in sluice.cost.usd). */
  costUnpricedJobs: 'sluice.cost.unpriced_jobs',
  latencyQueueP50: 'sluice.latency.queue_wait.p50',
  latencyQueueP95: 'sluice.latency.queue_wait.p95',
  latencyQueueP99: 'sluice.latency.queue_wait.p99',
  latencyModelP50: 'sluice.latency.model.p50',
  latencyModelP95: 'sluice.latency.model.p95',
  latencyModelP99: 'sluice.latency.model.p99',
  latencyTotalP50: 'sluice.latency.total.p50',
  latencyTotalP95: 'sluice.latency.total.p95',
  latencyTotalP99: 'sluice.latency.total.p99',
  /** Time to first token of sync requests, ms (sent only for groups that have one). */
  latencyTtftP50: 'sluice.latency.ttft.p50',
  latencyTtftP95: 'sluice.latency.ttft.p95',
  latencyTtftP99: 'sluice.latency.ttft.p99',
  /** Sync answers served from the exact cache, and the USD they would have cost (sent when non-zero). */
  cacheHits: 'sluice.cache.hits',
  cacheSavedUsd: 'sluice.cache.saved_usd',
  /** Sync streams the client left before the end (sent when non-zero). */
  abandoned: 'sluice.sync.abandoned',
  throttles: 'sluice.throttles',
  failovers: 'sluice.failovers',
} as const;

/** Per window × region × deployment (× its logical model). Ratios 0–1 of the deployment's configured limits. */
export const DEPLOYMENT_METRICS = {
  tpmUtilisation: 'sluice.deployment.tpm_utilisation',
  rpmUtilisation: 'sluice.deployment.rpm_utilisation',
  tokensCharged: 'sluice.deployment.tokens_charged',
  requests: 'sluice.deployment.requests',
} as const;

/** Per scope (scope = "all" | "team" | "deployment", with team or region/deployment), sent each window. */
export const COST_METRICS = {
  monthToDateUsd: 'sluice.cost.mtd_usd',
  projectedMonthUsd: 'sluice.cost.projected_month_usd',
} as const;

/** Sent by each rollup run (not per window). */
export const GAUGE_METRICS = {
  /** Approximate message count, dimension `queue`. */
  queueDepth: 'sluice.queue.depth',
  /** Jobs in status `waiting` (when the host supplies the count). */
  jobsWaiting: 'sluice.jobs.waiting',
  /** Windows behind: closable windows the rollup has not closed yet. */
  rollupLagWindows: 'sluice.rollup.lag_windows',
} as const;

export const EVENTS = {
  /** Actual or projected month cost crossed a budget threshold (once per month × scope × basis × threshold). */
  budgetThreshold: 'SluiceBudgetThreshold',
  /** A deployment ran above the TPM advice threshold for SLUICE_QUOTA_ADVICE_MINUTES (once per streak). */
  quotaAdvice: 'SluiceQuotaAdvice',
  /** A job ran on a model with no price: its cost is unknown (once per model per process run of the rollup). */
  unpricedModel: 'SluiceUnpricedModel',
} as const;

/** Name prefix of the dependency recorded per Azure OpenAI call (trackModelCall): type Http, name
 *  "POST /openai/deployments/<deployment>/chat/completions", target = endpoint host, resultCode = HTTP status,
 *  custom dimensions job_id, attempt, region, deployment, model, outcome. */
export const MODEL_CALL_DEPENDENCY = 'POST /openai/deployments/' as const;

export const METRIC_NAMES: readonly string[] = [
  ...Object.values(WINDOW_METRICS),
  ...Object.values(DEPLOYMENT_METRICS),
  ...Object.values(COST_METRICS),
  ...Object.values(GAUGE_METRICS),
];
