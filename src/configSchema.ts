/**
 * Every app setting Sluice reads: its name, what it is, its unit and its default, as one zod schema over the
 * environment. src/config.ts parses it once and shapes the result into SluiceConfig.
 *
 * One rule for every setting: a value that is missing, empty or only whitespace is unset, and the default applies.
 * Values are trimmed. Booleans are true/false/1/0 (any case).
 */
import { z } from 'zod';
import { endpointsSchema } from './core/endpoints';
import { modelSchema } from './core/models';

/** Missing, empty and whitespace-only values are unset; others are trimmed. */
function unsetIfBlank(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

/** A setting with a default: `parse` turns the (trimmed, non-blank) text into the value. Each load gets its own copy
 * of an object default. */
function withDefault<T>(parse: z.ZodType<T, string>, fallback: NoInfer<T>) {
  return z.preprocess(unsetIfBlank, parse.optional()).transform((v) => (v === undefined ? structuredClone(fallback) : v));
}

/** A setting with no default: undefined when unset. */
function optional<T>(parse: z.ZodType<T, string>) {
  return z.preprocess(unsetIfBlank, parse.optional());
}

function fail(ctx: z.RefinementCtx<string>, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().transform((raw, ctx) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      return fail(ctx, max === Number.MAX_SAFE_INTEGER ? `expected an integer ≥ ${min}, got "${raw}"` : `expected an integer from ${min} to ${max}, got "${raw}"`);
    }
    return n;
  });

/** A number in [min, max]; `aboveMin` excludes min itself. */
const decimal = (min: number, max: number, aboveMin = false) =>
  z.string().transform((raw, ctx) => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max || (aboveMin && n === min)) {
      return fail(ctx, `expected a number in ${aboveMin ? '(' : '['}${min}, ${max === Infinity ? '∞)' : `${max}]`}, got "${raw}"`);
    }
    return n;
  });

const boolean = z.string().transform((raw, ctx) => {
  const v = raw.toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  return fail(ctx, `expected true or false, got "${raw}"`);
});

const text = z.string();
const matching = (pattern: RegExp, rule: string) =>
  z.string().transform((raw, ctx) => (pattern.test(raw) ? raw : fail(ctx, `"${raw}" ${rule}`)));
const queueName = matching(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'is not a valid queue or container name');
const tableName = matching(/^[A-Za-z][A-Za-z0-9]{2,62}$/, 'is not a valid table name');

/** JSON text checked against `schema`. */
const json = <T>(schema: z.ZodType<T>) =>
  z.string().transform((raw, ctx) => {
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      return fail(ctx, `not valid JSON (${(err as Error).message})`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) return fail(ctx, zodDetail(parsed.error));
    return parsed.data;
  });

export function zodDetail(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') + ': ' : ''}${i.message}`).join('; ');
}

const price = z
  .object({ input: z.number().min(0), cachedInput: z.number().min(0).optional(), output: z.number().min(0) })
  .strict()
  .transform((p) => ({ input: p.input, cachedInput: p.cachedInput ?? p.input, output: p.output }));

const entraSelector = z.string().regex(/^(app|group|role|oid):.+$/, 'selectors look like app:<application id>, group:<object id>, role:<app role> or oid:<object id>');
const teamId = z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'is not a team id');

const percentages = z.string().transform((raw, ctx) => {
  const list = raw.split(',').map((s) => Number(s.trim()));
  if (list.some((t) => !Number.isFinite(t) || t <= 0 || t > 1000)) return fail(ctx, `expected comma-separated percentages (e.g. "50,80,100"), got "${raw}"`);
  return [...new Set(list)].sort((a, b) => a - b);
});

const selectors = z.string().transform((raw, ctx) => {
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.find((s) => !entraSelector.safeParse(s).success);
  if (bad !== undefined) return fail(ctx, `"${bad}": selectors look like role:<app role>, group:<object id>, app:<application id> or oid:<object id>`);
  return list;
});

/** Most queue lanes per priority. */
const MAX_LANES = 16;

/** Setting name → how its text becomes a value. Docs say what it is, its unit and its default. */
export const settingsSchema = z.object({
  // Storage: a connection string (Azurite, key-based account) or identity-based service URIs (Azure).
  /** Connection string; "UseDevelopmentStorage=true" means Azurite on its default ports. @default unset */
  AzureWebJobsStorage: optional(text),
  /** Storage account name, from which the three service URIs are derived. @default unset */
  AzureWebJobsStorage__accountName: optional(text),
  /** Queue service URI for identity-based access. @default from accountName */
  AzureWebJobsStorage__queueServiceUri: optional(text),
  /** Table service URI for identity-based access. @default from accountName */
  AzureWebJobsStorage__tableServiceUri: optional(text),
  /** Blob service URI for identity-based access. @default from accountName */
  AzureWebJobsStorage__blobServiceUri: optional(text),
  /** Client id of a user-assigned managed identity. @default the system-assigned identity */
  AzureWebJobsStorage__clientId: optional(text),

  // Deployments, models and jobs.
  /** JSON list of Azure OpenAI deployments (src/core/endpoints.ts). Required. */
  SLUICE_ENDPOINTS: optional(json(endpointsSchema)),
  /** JSON {model: limits}: overrides or adds to the built-in model limits (src/core/models.ts). @default {} */
  SLUICE_MODELS: withDefault(json(z.record(z.string(), modelSchema.partial())), {}),
  /** Storage Queue the worker drains (lane 0, interactive; other lanes add a suffix). @default "sluice-jobs" */
  SLUICE_JOBS_QUEUE: withDefault(queueName, 'sluice-jobs'),
  /** Table of job records. @default "sluicejobs" */
  SLUICE_JOBS_TABLE: withDefault(tableName, 'sluicejobs'),
  /** Blob container for job payloads too large for a table property. @default "sluice-payloads" */
  SLUICE_PAYLOAD_CONTAINER: withDefault(queueName, 'sluice-payloads'),
  /** api-version sent to Azure OpenAI. @default "2024-10-21" */
  SLUICE_OPENAI_API_VERSION: withDefault(text, '2024-10-21'),
  /** Largest accepted submit body, bytes. @default 1048576 (1 MiB) */
  SLUICE_MAX_REQUEST_BYTES: withDefault(integer(1), 1024 * 1024),
  /** Per-call timeout to Azure OpenAI, ms. @default 120000 */
  SLUICE_CALL_TIMEOUT_MS: withDefault(integer(1), 120_000),
  /** Cap on one transient-retry delay, ms (a Retry-After of a day must not park a job for a day). @default 60000 */
  SLUICE_MAX_RETRY_DELAY_MS: withDefault(integer(1), 60_000),
  /** Jobs waiting in the queues beyond which submit answers 429; 0 disables the check. @default 100000 */
  SLUICE_MAX_BACKLOG: withDefault(integer(0), 100_000),
  /** Longest quota wait a worker sits out holding the job; longer waits park it in the queue, ms. @default 30000 */
  SLUICE_HOLD_IN_PROCESS_MS: withDefault(integer(0), 30_000),

  // Circuit breaker per deployment (docs/failover.md).
  /** false: every instance tries every deployment. @default true */
  SLUICE_BREAKER_ENABLED: withDefault(boolean, true),
  /** Table of breaker states. @default "sluicebreakers" */
  SLUICE_BREAKER_TABLE: withDefault(tableName, 'sluicebreakers'),
  /** 5xx answers within the window that open the breaker. @default 3 */
  SLUICE_BREAKER_FAILURE_THRESHOLD: withDefault(integer(1), 3),
  /** The window failures are counted in, ms. @default 30000 */
  SLUICE_BREAKER_WINDOW_MS: withDefault(integer(1), 30_000),
  /** Open time before a probe when the service gave no usable Retry-After, ms. @default 15000 */
  SLUICE_BREAKER_COOLDOWN_MS: withDefault(integer(1), 15_000),
  /** How long a probe holder has before another instance may probe, ms. @default 30000 */
  SLUICE_BREAKER_PROBE_LEASE_MS: withDefault(integer(1), 30_000),
  /** Longest time an instance trusts its read of the shared state, ms. @default 1000 */
  SLUICE_BREAKER_CACHE_MS: withDefault(integer(0), 1_000),

  // Shared TPM/RPM budget per deployment (docs/design/budget.md).
  /** false: no shared accounting, every call is sent (comparison runs only). @default true */
  SLUICE_BUDGET_ENABLED: withDefault(boolean, true),
  /** Table of budget rows, one per deployment. @default "sluicebudget" */
  SLUICE_BUDGET_TABLE: withDefault(tableName, 'sluicebudget'),
  /** Longest budget lease an instance takes, ms. @default 10000 */
  SLUICE_BUDGET_LEASE_MS: withDefault(integer(1_000), 10_000),
  /** Jobs one lease should cover at this instance's recent pace. @default 24 */
  SLUICE_BUDGET_JOBS_PER_LEASE: withDefault(integer(1), 24),
  /** Share of the quota Sluice plans to use (headroom for clock skew and estimates), in (0, 1]. @default 0.99 */
  SLUICE_BUDGET_SAFETY: withDefault(decimal(0, 1, true), 0.99),
  /** Quota per lease holder: a deployment admits ceil(TPM / this) instances as holders (its seats), between 2 and
   *  SLUICE_BUDGET_MAX_SEATS; the others wait for a seat. @default 60000 */
  SLUICE_BUDGET_TPM_PER_SEAT: withDefault(integer(1_000), 60_000),
  /** Most lease holders per deployment, 2-16 (the row's size is split between them). @default 16 */
  SLUICE_BUDGET_MAX_SEATS: withDefault(integer(2, 16), 16),
  /** Log one line per budget row write (lease sizes, what the old lease spent). @default false */
  SLUICE_BUDGET_DEBUG: withDefault(boolean, false),

  // Files, batches and the submission queue (docs/batch.md).
  /** Blob container of uploaded and produced files. @default "sluice-files" */
  SLUICE_FILES_CONTAINER: withDefault(queueName, 'sluice-files'),
  /** Table of batches, their line-completion markers and indexes. @default "sluicebatches" */
  SLUICE_BATCHES_TABLE: withDefault(tableName, 'sluicebatches'),
  /** Queue driving batches (validate, fan out, stop, finalise). @default "sluice-batches" */
  SLUICE_BATCH_QUEUE: withDefault(queueName, 'sluice-batches'),
  /** Queue producers submit jobs to. @default "sluice-submit" */
  SLUICE_SUBMIT_QUEUE: withDefault(queueName, 'sluice-submit'),
  /** Where unusable submissions go, with the reason. @default "sluice-submit-deadletter" */
  SLUICE_SUBMIT_DEADLETTER_QUEUE: withDefault(queueName, 'sluice-submit-deadletter'),
  /** Largest uploaded file, bytes. @default 209715200 (200 MB, as OpenAI) */
  SLUICE_MAX_FILE_BYTES: withDefault(integer(1), 200 * 1024 * 1024),
  /** Most lines (requests) in a batch input file. @default 50000 (as OpenAI) */
  SLUICE_MAX_FILE_LINES: withDefault(integer(1), 50_000),
  /** Actual completion window of a batch, seconds ("24h" is what clients send). @default 86400 */
  SLUICE_BATCH_COMPLETION_WINDOW_S: withDefault(integer(1), 86_400),
  /** Lines fanned out per driver invocation (a checkpoint follows each chunk). @default 2500 */
  SLUICE_BATCH_FANOUT_CHUNK: withDefault(integer(1), 2_500),
  /** Parallel storage calls while fanning out, stopping and finalising. @default 64 */
  SLUICE_BATCH_CONCURRENCY: withDefault(integer(1), 64),
  /** How long a driver invocation owns a batch, seconds; a crashed owner's batch resumes after it. @default 60 */
  SLUICE_BATCH_LEASE_S: withDefault(integer(1), 60),
  /** NCRONTAB schedule of the batch sweep and the submission poison drain. @default "*\/5 * * * * *" (every 5 s) */
  SLUICE_BATCH_SWEEP_SCHEDULE: withDefault(text, '*/5 * * * * *'),

  // Usage rows, rollup, prices and cost budgets (docs/telemetry.md).
  /** JSON {"<region>/<deployment>" or model: {input, cachedInput?, output}}, USD per 1M tokens. @default {} */
  SLUICE_PRICES: withDefault(json(z.record(z.string().min(1), price)), {}),
  /** Overall monthly budget, USD. @default unset (no overall alerts) */
  SLUICE_BUDGET_MONTHLY_USD: optional(decimal(0, Infinity)),
  /** JSON {team: USD per month}. @default {} */
  SLUICE_TEAM_BUDGETS: withDefault(json(z.record(z.string().min(1), z.number().min(0))), {}),
  /** Comma-separated percentages of a budget that raise an alert. @default "50,80,100" */
  SLUICE_BUDGET_THRESHOLDS: withDefault(percentages, [50, 80, 100]),
  /** Consecutive minutes above the TPM advice threshold before quota advice. @default 15 */
  SLUICE_QUOTA_ADVICE_MINUTES: withDefault(integer(1, 1440), 15),
  /** TPM utilisation, percent, above which a minute counts towards quota advice. @default 80 */
  SLUICE_QUOTA_ADVICE_PERCENT: withDefault(decimal(1, 100), 80),
  /** A minute window closes this long after its end, seconds. @default 120 */
  SLUICE_ROLLUP_LATENESS_SECONDS: withDefault(integer(0, 3600), 120),
  /** Table of per-job usage rows. @default "sluiceusage" */
  SLUICE_USAGE_TABLE: withDefault(tableName, 'sluiceusage'),
  /** Table of rollups, watermark, month-to-date cost and alert state. @default "sluicerollup" */
  SLUICE_ROLLUP_TABLE: withDefault(tableName, 'sluicerollup'),
  /** NCRONTAB schedule of the rollup timer. @default "0 *\/1 * * * *" (every minute) */
  SLUICE_ROLLUP_SCHEDULE: withDefault(text, '0 */1 * * * *'),

  // Teams, keys, Entra ID and queue lanes (docs/teams.md).
  /** Table of teams and API key hashes. @default "sluiceteams" */
  SLUICE_TEAMS_TABLE: withDefault(tableName, 'sluiceteams'),
  /** How long an instance reuses a key or team lookup, ms (revocation reaches other instances within it). @default 30000 */
  SLUICE_AUTH_CACHE_MS: withDefault(integer(0), 30_000),
  /** JSON {selector: team id} mapping Entra ID principals to teams. @default unset */
  SLUICE_ENTRA_TEAMS: optional(json(z.record(entraSelector, teamId))),
  /** Comma-separated Entra ID selectors granted the admin role. @default unset */
  SLUICE_ENTRA_ADMINS: optional(selectors),
  /** Team Entra ID admins act as. @default "admin" */
  SLUICE_ENTRA_ADMIN_TEAM: withDefault(text, 'admin'),
  /**
   * Set by App Service (never by infra or by hand) when App Service Authentication fronts the app. The Entra ID
   * principal header is trusted only when it is true. @default false
   */
  WEBSITE_AUTH_ENABLED: withDefault(boolean, false),
  /**
   * Queue lanes per priority (0: one plain FIFO queue, comparison runs only); the same on every instance. With the
   * dispatcher, a model's jobs travel in one lane (core/teams/lanes.ts modelLanes; infra sets one per model); with
   * SLUICE_DISPATCH=false, a team's. @default 1
   */
  SLUICE_QUEUE_LANES: withDefault(integer(0, MAX_LANES), 1),
  /** Weighted fair admission between teams at each deployment (false: first come, first served). @default true */
  SLUICE_FAIR_SHARE: withDefault(boolean, true),
  /** How long submit reuses a team's month-to-date cost, ms. @default 60000 */
  SLUICE_TEAM_SPEND_CACHE_MS: withDefault(integer(0), 60_000),

  // Dispatch: team queues and the dispatcher that feeds the jobs queue (docs/design/dispatch.md).
  /** Jobs wait in per-team queues and a dispatcher releases them in fair order (false: submit sends to the lane queues). @default true */
  SLUICE_DISPATCH: withDefault(boolean, true),
  /** Table of team queues, their markers and the dispatch lease. @default "sluiceteamqueues" */
  SLUICE_TEAM_QUEUE_TABLE: withDefault(tableName, 'sluiceteamqueues'),
  /** NCRONTAB schedule that starts a dispatcher run (it keeps running while work waits). @default "*\/5 * * * * *" */
  SLUICE_DISPATCH_SCHEDULE: withDefault(text, '*/5 * * * * *'),
  /** Seconds of its models' pace each jobs-queue lane may hold before batch work waits in the team queues. @default 20 */
  SLUICE_DISPATCH_DEPTH_SECONDS: withDefault(integer(1, 600), 20),

  // Retention: what is deleted when, by the retention sweep and the storage lifecycle policy (docs/retention.md).
  /** Days a job record and its payload blobs (prompt, answer) are kept after the job finished. @default 30 */
  SLUICE_RETENTION_JOBS_DAYS: withDefault(integer(1, 3650), 30),
  /** Days usage rows (one per finished job, the rollup's input) are kept; rollup figures are kept for good. @default 400 */
  SLUICE_RETENTION_USAGE_DAYS: withDefault(integer(1, 3650), 400),
  /** Days a file (upload or batch output) is kept when its upload gave no expires_after. @default 30 (as OpenAI for purpose=batch) */
  SLUICE_RETENTION_FILES_DAYS: withDefault(integer(1, 3650), 30),
  /** Rows or blobs one retention sweep run looks at (each deleted at most once). @default 2000 */
  SLUICE_RETENTION_SWEEP_MAX_ROWS: withDefault(integer(10, 100_000), 2_000),
  /** NCRONTAB schedule of the retention sweep. @default "0 *\/5 * * * *" (every 5 minutes) */
  SLUICE_RETENTION_SWEEP_SCHEDULE: withDefault(text, '0 */5 * * * *'),
  /** Table holding the retention sweep's cursor row. @default "sluiceretention" */
  SLUICE_RETENTION_TABLE: withDefault(tableName, 'sluiceretention'),

  // The exact cache of synchronous answers (README, "Exact cache").
  /** Table of cached answers. @default "sluicecache" */
  SLUICE_CACHE_TABLE: withDefault(tableName, 'sluicecache'),
  /** TTL of an entry when neither the team setting nor the request header names one, seconds. @default 3600 */
  SLUICE_CACHE_DEFAULT_TTL_SECONDS: withDefault(integer(1, 2_592_000), 3600),
  /** Longest TTL a team setting or request header may ask for (longer ones are cut to it), seconds. @default 86400 */
  SLUICE_CACHE_MAX_TTL_SECONDS: withDefault(integer(1, 2_592_000), 86_400),
  /** How long a cache read or write may take before it counts as a miss (or is given up), ms. @default 300 */
  SLUICE_CACHE_TIMEOUT_MS: withDefault(integer(10, 10_000), 300),

  // The synchronous OpenAI-compatible API (docs/sync.md). Both stay well under the 230 s the Azure front end allows
  // one HTTP request, leaving room for the call itself.
  /** Quota wait of a sync request that sends no x-sluice-max-wait-ms, ms. @default 30000 */
  SLUICE_SYNC_MAX_WAIT_MS: withDefault(integer(0, 180_000), 30_000),
  /** Longest quota wait a sync request may ask for with x-sluice-max-wait-ms (larger asks are capped), ms. @default 120000 */
  SLUICE_SYNC_MAX_WAIT_CAP_MS: withDefault(integer(0, 180_000), 120_000),
});

export type SettingName = keyof typeof settingsSchema.shape;
export type Settings = z.output<typeof settingsSchema>;

/** Every setting the app reads, by name (infra's drift test checks them against Bicep). */
export const SETTING_NAMES = Object.keys(settingsSchema.shape) as SettingName[];
