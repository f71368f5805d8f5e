/**
 * The per-job usage row: what one finished job cost, how long it waited and ran, and where. Built from the job record
 * by recordJobUsage; stored by a UsageRowStore (src/azure/usageTable.ts) in the window it finished in.
 */
import type { JobRecord } from '../jobs';
import { costOf, DEFAULT_PRICES, type PriceOverrides, type PriceTable } from './prices';
import { MINUTE_MS, windowOf, windowStart } from './windows';

/** One model call as the rollup needs it for deployment utilisation: [region, deployment, HTTP status]. */
export type CallRef = [region: string, deployment: string, status: number];

export interface UsageRow {
  jobId: string;
  /** UTC minute window the row belongs to ("yyyyMMddHHmm"). */
  window: string;
  team: string;
  /** Logical model the client asked for. */
  model: string;
  /** Region/deployment that answered, else the last one tried, else "none". */
  region: string;
  deployment: string;
  /** response.model, e.g. "gpt-4o-mini-2024-07-18"; "" when no answer. */
  modelVersion: string;
  priority: 'interactive' | 'batch';
  status: 'succeeded' | 'failed';
  errorCode: string;
  finishReason: string;
  /** Actual prompt tokens billed (usage.prompt_tokens), of which cachedTokens were cached. */
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** Output tokens reserved for the call (max_tokens × n). */
  reservedOutputTokens: number;
  /** reservedOutputTokens − completionTokens, ≥ 0 (0 for jobs without an answer). */
  reservedUnusedTokens: number;
  /** Prompt tokens estimated at submit: what the quota is charged per call with reservedOutputTokens. */
  estimatedPromptTokens: number;
  /** USD; null = the model has no price (see warnings). */
  costUsd: number | null;
  /** created → started, ms. */
  queueWaitMs: number | null;
  /** The successful call's duration, ms. */
  modelLatencyMs: number | null;
  /** created → completed, ms. */
  totalLatencyMs: number | null;
  attempts: number;
  throttles: number;
  /** Distinct regions tried. */
  regionsTried: number;
  calls: CallRef[];
  completedAt: number;
  /** Writer clock when the row was built, epoch ms. */
  writtenAt: number;
  /** Set when the row was re-filed because its first window had already been closed. */
  lateFrom?: string;
  /** What made the call: a queued job, a batch line, or a synchronous API request. Absent on job rows. */
  kind?: 'job' | 'batch' | 'sync';
  /** Request received → first chunk with a choice sent to the client, ms (streams only). */
  ttftMs?: number | null;
  /** The client disconnected before the answer was complete; tokens are what was generated until then. */
  abandoned?: boolean;
  /** Answered from the exact-match cache: no quota spent, costUsd 0. */
  cacheHit?: boolean;
  /** USD a cache hit saved (the cost of the answer it reused). */
  savedUsd?: number | null;
}

/** What kind of work a row records: absent means a job (rows written before kinds existed were all jobs). */
export type UsageKind = NonNullable<UsageRow['kind']>;
export const kindOf = (row: Pick<UsageRow, 'kind'>): UsageKind => row.kind ?? 'job';

/** Where rows go. Insert-only and idempotent by (window, jobId). */
export interface UsageRowStore {
  /**
   * Inserts the row; resolves 'exists' if a row for this job is already in that window. Returns the server commit
   * time (ISO, 7 fractional digits) when known.
   */
  insert(row: UsageRow): Promise<{ result: 'inserted' | 'exists'; committedAt?: string }>;
}

interface UsageOptions {
  prices?: PriceTable;
  overrides?: PriceOverrides;
  /** A job recorded at most this long after completedAt is filed in its completion minute; later, in `now`'s. @default 60000 */
  maxBackdateMs?: number;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** Builds the usage row of a finished job. `warnings` receives "model has no price" notes. */
export function buildUsageRow(job: JobRecord, now: number, options: UsageOptions = {}, warn: (m: string) => void = () => {}): UsageRow {
  const usage = job.usage ?? {};
  const promptTokens = num(usage.prompt_tokens);
  const completionTokens = num(usage.completion_tokens);
  const cachedTokens = num((usage.prompt_tokens_details as Record<string, unknown> | undefined)?.cached_tokens);
  const response = job.response ?? {};
  const choices = Array.isArray(response.choices) ? (response.choices as Array<Record<string, unknown>>) : [];
  const finishReason = [...new Set(choices.map((c) => String(c.finish_reason ?? '')).filter(Boolean))].join(',');
  const modelVersion = typeof response.model === 'string' ? response.model : '';
  const last = job.regionsTried[job.regionsTried.length - 1];
  const region = job.region ?? last?.region ?? 'none';
  const deployment = job.deployment ?? last?.deployment ?? 'none';
  const completedAt = job.completedAt ?? now;
  const status = job.status === 'succeeded' ? 'succeeded' : 'failed';
  const costUsd = costOf(
    { model: job.model, modelVersion: modelVersion || undefined, region, deployment, priority: job.priority, promptTokens, cachedTokens, completionTokens },
    options.prices ?? DEFAULT_PRICES,
    options.overrides ?? {},
  );
  if (costUsd === null) warn(`[job=${job.id}] model "${job.model}" (${region}/${deployment}) has no price: cost recorded as unknown; add it to SLUICE_PRICES`);
  const answered = job.response !== undefined;
  const maxBackdate = options.maxBackdateMs ?? 60_000;
  return {
    jobId: job.id,
    window: windowOf(now - completedAt <= maxBackdate ? completedAt : now),
    team: job.team,
    model: job.model,
    region,
    deployment,
    modelVersion,
    priority: job.priority,
    status,
    errorCode: job.error?.code ?? '',
    finishReason,
    promptTokens,
    cachedTokens,
    completionTokens,
    reservedOutputTokens: job.maxOutputTokens,
    reservedUnusedTokens: answered ? Math.max(0, job.maxOutputTokens - completionTokens) : 0,
    estimatedPromptTokens: job.promptTokens,
    costUsd,
    queueWaitMs: job.startedAt !== undefined ? Math.max(0, job.startedAt - job.createdAt) : null,
    modelLatencyMs: status === 'succeeded' && job.latencyMs !== undefined ? job.latencyMs : null,
    totalLatencyMs: job.completedAt !== undefined ? Math.max(0, job.completedAt - job.createdAt) : null,
    attempts: job.attempts,
    throttles: job.throttles,
    regionsTried: new Set(job.regionsTried.map((a) => a.region)).size,
    calls: job.regionsTried.map((a) => [a.region, a.deployment, a.status]),
    completedAt,
    writtenAt: now,
    // Batch lines are jobs with a batch id; sync requests build their rows elsewhere.
    kind: job.batchId !== undefined ? 'batch' : 'job',
  };
}

/** What one synchronous API request did, for its usage row. Times are epoch ms. */
export interface SyncUsage {
  requestId: string;
  team: string;
  model: string;
  /** The deployment that answered, else the last one tried, else undefined. */
  region?: string;
  deployment?: string;
  modelVersion: string;
  status: 'succeeded' | 'failed';
  errorCode: string;
  finishReason: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  reservedOutputTokens: number;
  estimatedPromptTokens: number;
  receivedAt: number;
  /** When the budget admitted the call that answered. */
  admittedAt?: number;
  /** When the first chunk with a choice reached the client (streams). */
  firstTokenAt?: number;
  /** The answering call's duration (to its last byte), ms. */
  modelLatencyMs?: number;
  completedAt: number;
  calls: CallRef[];
  throttles: number;
  abandoned: boolean;
  cacheHit: boolean;
  /** For a cache hit: the stored answer's cost. */
  savedUsd?: number | null;
}

/** Builds the usage row of a synchronous API request (kind 'sync'). `warn` receives "model has no price" notes. */
export function buildSyncUsageRow(sync: SyncUsage, now: number, options: UsageOptions = {}, warn: (m: string) => void = () => {}): UsageRow {
  const last = sync.calls[sync.calls.length - 1];
  const region = sync.region ?? last?.[0] ?? 'none';
  const deployment = sync.deployment ?? last?.[1] ?? 'none';
  const priced = costOf(
    { model: sync.model, modelVersion: sync.modelVersion || undefined, region, deployment, priority: 'interactive', promptTokens: sync.promptTokens, cachedTokens: sync.cachedTokens, completionTokens: sync.completionTokens },
    options.prices ?? DEFAULT_PRICES,
    options.overrides ?? {},
  );
  if (priced === null && !sync.cacheHit) warn(`[sync=${sync.requestId}] model "${sync.model}" (${region}/${deployment}) has no price: cost recorded as unknown; add it to SLUICE_PRICES`);
  const maxBackdate = options.maxBackdateMs ?? 60_000;
  const answered = sync.status === 'succeeded' || sync.abandoned;
  return {
    jobId: sync.requestId,
    window: windowOf(now - sync.completedAt <= maxBackdate ? sync.completedAt : now),
    team: sync.team,
    model: sync.model,
    region,
    deployment,
    modelVersion: sync.modelVersion,
    priority: 'interactive',
    status: sync.status,
    errorCode: sync.errorCode,
    finishReason: sync.finishReason,
    promptTokens: sync.promptTokens,
    cachedTokens: sync.cachedTokens,
    completionTokens: sync.completionTokens,
    reservedOutputTokens: sync.reservedOutputTokens,
    reservedUnusedTokens: answered && !sync.cacheHit ? Math.max(0, sync.reservedOutputTokens - sync.completionTokens) : 0,
    estimatedPromptTokens: sync.estimatedPromptTokens,
    // A hit spends nothing; what it would have cost is savedUsd.
    costUsd: sync.cacheHit ? 0 : priced,
    queueWaitMs: sync.admittedAt !== undefined ? Math.max(0, sync.admittedAt - sync.receivedAt) : null,
    modelLatencyMs: sync.modelLatencyMs ?? null,
    totalLatencyMs: Math.max(0, sync.completedAt - sync.receivedAt),
    attempts: sync.calls.length,
    throttles: sync.throttles,
    regionsTried: new Set(sync.calls.map((c) => c[0])).size,
    calls: sync.calls,
    completedAt: sync.completedAt,
    writtenAt: now,
    kind: 'sync',
    ttftMs: sync.firstTokenAt !== undefined ? Math.max(0, sync.firstTokenAt - sync.receivedAt) : null,
    abandoned: sync.abandoned,
    cacheHit: sync.cacheHit,
    savedUsd: sync.cacheHit ? (sync.savedUsd ?? priced) : null,
  };
}

/** Where a window's closing cut is looked up by a slow writer (see recordJobUsage). */
export interface WindowCuts {
  /** The server time up to which `window`'s rows were (or are being) counted; undefined while it is open. */
  cutOf(window: string): Promise<string | undefined>;
}

export interface RecorderDeps {
  store: UsageRowStore;
  cuts: WindowCuts;
  clock: { now(): number };
  /** A window is closed this long after its end (the rollup's lateness allowance), ms. */
  latenessMs: number;
  /** Allowance for clock differences between hosts, ms. @default 30000 */
  skewMarginMs?: number;
  options?: UsageOptions;
  warn?: (message: string) => void;
}

/**
 * Records a finished job: one usage row, idempotent (a second call for the same job in the same window is a no-op).
 *
 * Late rows: a row whose insert completes more than (lateness − skew margin) after its window ended may have missed
 * that window's close. Only then the writer reads the window's cut; if the row committed after the cut, it files a
 * copy in the current window (lateFrom set) and the original is never counted (the rollup only counts rows
 * committed at or before the cut). Fast writes — all of them in normal operation — cost one insert.
 */
export async function recordJobUsage(deps: RecorderDeps, job: JobRecord, now: number): Promise<UsageRow> {
  return recordUsageRow(deps, buildUsageRow(job, now, deps.options, deps.warn));
}

/** Records a built usage row: one insert, idempotent, re-filed if its window closed meanwhile (see recordJobUsage). */
export async function recordUsageRow(deps: RecorderDeps, built: UsageRow): Promise<UsageRow> {
  let row = built;
  for (let hop = 0; hop < 5; hop += 1) {
    const { result, committedAt } = await deps.store.insert(row);
    const after = deps.clock.now();
    const deadline = windowStart(row.window) + MINUTE_MS + deps.latenessMs - (deps.skewMarginMs ?? 30_000);
    if (result === 'exists' || after < deadline) return row;
    const cut = await deps.cuts.cutOf(row.window);
    if (cut === undefined || (committedAt !== undefined && committedAt <= cut)) return row;
    deps.warn?.(`[${row.kind === 'sync' ? 'sync' : 'job'}=${row.jobId}] usage row landed after window ${row.window} was closed; counted in ${windowOf(after)}`);
    row = { ...row, lateFrom: row.lateFrom ?? row.window, window: windowOf(after), writtenAt: after };
  }
  return row;
}
