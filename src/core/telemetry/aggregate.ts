/**
 * Aggregates of usage rows: per group (team × model × region × deployment × kind) counters and latency sketches, and
 * per deployment the quota it was charged. Memory grows with the number of groups, not rows.
 */
import { LatencySketch, type Percentiles } from './sketch';
import { kindOf, type UsageRow } from './usage';

/** The fields of a usage row the rollup reads (the usage table selects only these: less to fetch, parse and hold). */
export const ROLLUP_FIELDS = [
  'team', 'model', 'region', 'deployment', 'status', 'promptTokens', 'cachedTokens', 'completionTokens',
  'reservedOutputTokens', 'reservedUnusedTokens', 'estimatedPromptTokens', 'costUsd', 'queueWaitMs', 'modelLatencyMs',
  'totalLatencyMs', 'attempts', 'throttles', 'regionsTried', 'calls', 'kind', 'ttftMs', 'abandoned', 'cacheHit', 'savedUsd',
] as const satisfies ReadonlyArray<keyof UsageRow>;
export type RollupRow = Pick<UsageRow, (typeof ROLLUP_FIELDS)[number]>;

interface GroupKey {
  team: string;
  model: string;
  region: string;
  deployment: string;
  /** job, batch or sync ('*' in merged views). */
  kind: string;
}

export const GROUP_DIMENSIONS = ['team', 'model', 'region', 'deployment', 'kind'] as const;
export type GroupDimension = (typeof GROUP_DIMENSIONS)[number];

/**
 * Table-safe key: the values URI-encoded and joined with "|". A job group keeps the four-part key it had before
 * groups had a kind, so hour and day rows already stored go on merging with new minutes.
 */
function groupKeyString(k: GroupKey): string {
  const parts = [k.team, k.model, k.region, k.deployment, ...(k.kind === 'job' ? [] : [k.kind])];
  return parts.map(encodeURIComponent).join('|');
}

export class GroupAggregate {
  succeeded = 0;
  failed = 0;
  promptTokens = 0;
  cachedTokens = 0;
  completionTokens = 0;
  reservedOutputTokens = 0;
  reservedUnusedTokens = 0;
  costUsd = 0;
  unpricedJobs = 0;
  throttles = 0;
  failovers = 0;
  attempts = 0;
  /** Sync answers served from the exact cache, and what they would have cost. */
  cacheHits = 0;
  savedUsd = 0;
  /** Streams the client left before the end. */
  abandoned = 0;
  queueWait = new LatencySketch();
  modelLatency = new LatencySketch();
  totalLatency = new LatencySketch();
  /** Time to first token (sync requests). */
  ttft = new LatencySketch();

  constructor(readonly key: GroupKey) {}

  get jobs(): number {
    return this.succeeded + this.failed;
  }

  add(row: RollupRow): void {
    if (row.status === 'succeeded') this.succeeded += 1;
    else this.failed += 1;
    this.promptTokens += row.promptTokens;
    this.cachedTokens += row.cachedTokens;
    this.completionTokens += row.completionTokens;
    this.reservedOutputTokens += row.reservedOutputTokens;
    this.reservedUnusedTokens += row.reservedUnusedTokens;
    if (row.costUsd === null) this.unpricedJobs += 1;
    else this.costUsd += row.costUsd;
    this.throttles += row.throttles;
    if (row.regionsTried > 1) this.failovers += 1;
    this.attempts += row.attempts;
    if (row.cacheHit) this.cacheHits += 1;
    this.savedUsd += row.savedUsd ?? 0;
    if (row.abandoned) this.abandoned += 1;
    this.queueWait.add(row.queueWaitMs);
    this.modelLatency.add(row.modelLatencyMs);
    this.totalLatency.add(row.totalLatencyMs);
    this.ttft.add(row.ttftMs);
  }

  merge(o: GroupAggregate): void {
    for (const f of COUNTERS) this[f] += o[f];
    this.queueWait.merge(o.queueWait);
    this.modelLatency.merge(o.modelLatency);
    this.totalLatency.merge(o.totalLatency);
    this.ttft.merge(o.ttft);
  }

  /** Share of reserved output tokens never generated (oversized max_tokens), 0–1; null when nothing reserved. */
  get reservedUnusedShare(): number | null {
    return this.reservedOutputTokens > 0 ? this.reservedUnusedTokens / this.reservedOutputTokens : null;
  }

  toRecord(): Record<string, string | number> {
    const out: Record<string, string | number> = { ...this.key };
    for (const f of COUNTERS) out[f] = this[f];
    out.queueWaitSketch = this.queueWait.serialize();
    out.modelLatencySketch = this.modelLatency.serialize();
    out.totalLatencySketch = this.totalLatency.serialize();
    out.ttftSketch = this.ttft.serialize();
    return out;
  }

  static fromRecord(r: Record<string, unknown>): GroupAggregate {
    const key = { team: String(r.team ?? ''), model: String(r.model ?? ''), region: String(r.region ?? ''), deployment: String(r.deployment ?? ''), kind: String(r.kind || 'job') };
    const g = new GroupAggregate(key);
    for (const f of COUNTERS) g[f] = Number(r[f] ?? 0);
    g.queueWait = LatencySketch.deserialize(r.queueWaitSketch as string | undefined);
    g.modelLatency = LatencySketch.deserialize(r.modelLatencySketch as string | undefined);
    g.totalLatency = LatencySketch.deserialize(r.totalLatencySketch as string | undefined);
    g.ttft = LatencySketch.deserialize(r.ttftSketch as string | undefined);
    return g;
  }

  summary(): GroupSummary {
    return {
      jobs: { succeeded: this.succeeded, failed: this.failed },
      tokens: {
        prompt: this.promptTokens,
        cached: this.cachedTokens,
        completion: this.completionTokens,
        reserved_output: this.reservedOutputTokens,
        reserved_unused: this.reservedUnusedTokens,
        reserved_unused_share: this.reservedUnusedShare,
      },
      cost_usd: round6(this.costUsd),
      unpriced_jobs: this.unpricedJobs,
      throttles: this.throttles,
      failovers: this.failovers,
      cache_hits: this.cacheHits,
      saved_usd: round6(this.savedUsd),
      abandoned: this.abandoned,
      latency_ms: { queue_wait: this.queueWait.percentiles(), model: this.modelLatency.percentiles(), total: this.totalLatency.percentiles(), ttft: this.ttft.percentiles() },
    };
  }
}

export interface GroupSummary {
  jobs: { succeeded: number; failed: number };
  tokens: { prompt: number; cached: number; completion: number; reserved_output: number; reserved_unused: number; reserved_unused_share: number | null };
  cost_usd: number;
  unpriced_jobs: number;
  throttles: number;
  failovers: number;
  cache_hits: number;
  saved_usd: number;
  abandoned: number;
  latency_ms: { queue_wait: Percentiles | null; model: Percentiles | null; total: Percentiles | null; ttft: Percentiles | null };
}

const COUNTERS = [
  'succeeded', 'failed', 'promptTokens', 'cachedTokens', 'completionTokens', 'reservedOutputTokens', 'reservedUnusedTokens',
  'costUsd', 'unpricedJobs', 'throttles', 'failovers', 'attempts', 'cacheHits', 'savedUsd', 'abandoned',
] as const;

export function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

/** Quota charged on one deployment in a window: every call that got past its rate limiter (not a 429, not a
 *  transport failure) is charged prompt + max output tokens, as Azure estimates at admission. */
interface DeploymentUse {
  region: string;
  deployment: string;
  tokensCharged: number;
  requests: number;
}

/** All aggregates of one window. */
export class WindowAggregate {
  readonly groups = new Map<string, GroupAggregate>();
  readonly deployments = new Map<string, DeploymentUse>();
  rows = 0;
  /** Models seen without a price. */
  readonly unpricedModels = new Set<string>();

  add(row: RollupRow): void {
    this.rows += 1;
    const key: GroupKey = { team: row.team, model: row.model, region: row.region, deployment: row.deployment, kind: kindOf(row) };
    const ks = groupKeyString(key);
    let g = this.groups.get(ks);
    if (!g) this.groups.set(ks, (g = new GroupAggregate(key)));
    g.add(row);
    if (row.costUsd === null) this.unpricedModels.add(`${row.model} (${row.region}/${row.deployment})`);
    const charge = row.estimatedPromptTokens + row.reservedOutputTokens;
    for (const [region, deployment, status] of row.calls) {
      if (status === 429 || status === 0) continue;
      const dk = `${region}/${deployment}`;
      let d = this.deployments.get(dk);
      if (!d) this.deployments.set(dk, (d = { region, deployment, tokensCharged: 0, requests: 0 }));
      d.tokensCharged += charge;
      d.requests += 1;
    }
  }
}
