/**
 * The one place that reads app settings. Every setting is read and validated once, at start-up, into a typed
 * object; a bad value fails fast with a message that names the setting.
 *
 * Settings come from the Functions app settings (Azure), `local.settings.json` Values (Core Tools or `npm start`),
 * or the process environment.
 */
import { z } from 'zod';
import { KNOWN_MODELS } from './core/models';
import { ConfigError } from './configError';
import { loadBatchSettings, type BatchSettings } from './core/batch/settings';
import { loadTelemetrySettings, type TelemetrySettings } from './core/telemetry/settings';
import { loadTeamSettings, type TeamSettings } from './core/teams/settings';

export { ConfigError };

const endpointSchema = z
  .object({
    /** Region label shown in job records and telemetry, e.g. "swedencentral". */
    region: z.string().min(1),
    /** Azure OpenAI resource endpoint, e.g. https://my-aoai.openai.azure.com */
    endpoint: z.string().url(),
    /** Deployment name inside that resource. */
    deployment: z.string().min(1),
    /** Logical model clients ask for, e.g. "gpt-4o-mini". */
    model: z.string().min(1),
    /** Lower is preferred. Endpoints with equal priority form a group. @default 1 */
    priority: z.number().int().min(0).default(1),
    /** Share of traffic within a priority group. @default 1 */
    weight: z.number().positive().default(1),
    /** Tokens per minute the deployment is granted (capacity × 1,000 for Standard SKUs). */
    tpm: z.number().int().positive(),
    /** Requests per minute. @default 6 per 1,000 TPM */
    rpm: z.number().int().positive().optional(),
    /** `managed-identity` (default) uses DefaultAzureCredential; `key` needs apiKey. */
    auth: z.enum(['managed-identity', 'key']).default('managed-identity'),
    apiKey: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((e, ctx) => {
    if (e.auth === 'key' && !e.apiKey) {
      ctx.addIssue({ code: 'custom', message: `auth "key" needs apiKey (endpoint ${e.region}/${e.deployment})` });
    }
  });

export type EndpointSettings = z.output<typeof endpointSchema> & { rpm: number };

const modelSchema = z
  .object({
    /** Context window in tokens (prompt + completion). */
    contextWindow: z.number().int().positive(),
    /** Largest max_tokens a request may ask for. */
    maxOutputTokens: z.number().int().positive(),
    /** Charged and sent when a request names no max_tokens (Azure charges quota for it). */
    defaultMaxTokens: z.number().int().positive(),
    /** May work overflow to the next priority group when this group's budget is spent? @default true */
    spillover: z.boolean().default(true),
  })
  .strict();
export type ModelSettings = z.output<typeof modelSchema>;

export const endpointsSchema = z.array(endpointSchema).min(1);
const modelsSchema = z.record(z.string(), modelSchema.partial());

export interface StorageSettings {
  /** Connection string (Azurite, or a key-based account), when set. */
  connectionString?: string;
  /** Identity-based connection: service URIs and an optional user-assigned identity client id. */
  queueServiceUri?: string;
  tableServiceUri?: string;
  blobServiceUri?: string;
  clientId?: string;
}

export interface SluiceConfig {
  storage: StorageSettings;
  endpoints: EndpointSettings[];
  models: Record<string, ModelSettings>;
  /** Storage Queue the worker drains. @default "sluice-jobs" */
  jobsQueue: string;
  /** Table of job records. @default "sluicejobs" */
  jobsTable: string;
  /** Blob container for job payloads too large for a table property. @default "sluice-payloads" */
  payloadContainer: string;
  /** api-version sent to Azure OpenAI. @default "2024-10-21" */
  openaiApiVersion: string;
  /** Largest accepted submit body, bytes. @default 1 MiB */
  maxRequestBytes: number;
  /** Per-call timeout to Azure OpenAI, ms. @default 120000 */
  callTimeoutMs: number;
  /** Cap on one transient-retry delay, ms (protects against Retry-After of a day). @default 60000 */
  maxRetryDelayMs: number;
  /** Jobs waiting in the queue beyond which submit answers 429; 0 disables. @default 100000 */
  maxBacklog: number;
  /** Longest wait for quota a worker sits out holding the job (its message stays invisible, so the instance takes no
   *  more work than the quota lets it run); longer waits park the job in the queue with a delay, ms. @default 30000 */
  holdInProcessMs: number;
  breaker: BreakerSettings;
  budget: BudgetSettings;
  /** Files, batches and the submission queue (src/core/batch/settings.ts). */
  batch: BatchSettings;
  /** Usage rows, rollup, prices and cost budgets (src/core/telemetry/settings.ts). */
  telemetry: TelemetrySettings;
  /** Teams, API keys, Entra ID mapping and queue lanes (src/core/teams/settings.ts). */
  teams: TeamSettings;
}

/** The shared TPM/RPM budget per deployment (see docs/budget.md). */
export interface BudgetSettings {
  /** false: no shared accounting (every call is sent; only for comparison runs). @default true */
  enabled: boolean;
  /** Table of budget rows, one per deployment. @default "sluicebudget" */
  table: string;
  /** Longest budget lease an instance takes, ms. @default 10000 */
  leaseMs: number;
  /** Jobs one lease should cover at this instance's recent pace. @default 24 */
  jobsPerLease: number;
  /** Share of the quota Sluice plans to use (headroom for clock skew and estimates). @default 0.99 */
  safety: number;
  /** Log one line per budget row write (lease sizes, what the old lease spent): diagnostics. @default false */
  debug: boolean;
}

/** The shared circuit breaker per deployment (see docs/failover.md). */
export interface BreakerSettings {
  /** false: every instance tries every deployment. @default true */
  enabled: boolean;
  /** Table of breaker states. @default "sluicebreakers" */
  table: string;
  /** 5xx answers within windowMs that open the breaker. @default 3 */
  failureThreshold: number;
  /** @default 30000 ms */
  windowMs: number;
  /** Open time before a probe when the service gave no usable Retry-After. @default 15000 ms */
  cooldownMs: number;
  /** How long a probe holder has before another instance may probe. @default 30000 ms */
  probeLeaseMs: number;
  /** Longest time an instance trusts its read of the shared state. @default 1000 ms */
  cacheMs: number;
}

const DEFAULTS = {
  jobsQueue: 'sluice-jobs',
  jobsTable: 'sluicejobs',
  payloadContainer: 'sluice-payloads',
  openaiApiVersion: '2024-10-21',
  maxRequestBytes: 1024 * 1024,
  callTimeoutMs: 120_000,
  maxRetryDelayMs: 60_000,
  maxBacklog: 100_000,
  holdInProcessMs: 30_000,
};

type Env = Record<string, string | undefined>;

function parseJsonSetting(env: Env, name: string): unknown {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(name, `not valid JSON (${(err as Error).message})`);
  }
}

function zodDetail(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') + ': ' : ''}${i.message}`).join('; ');
}

function intSetting(env: Env, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(name, `expected an integer ≥ ${min}, got "${raw}"`);
  return n;
}

function fractionSetting(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > 1) throw new ConfigError(name, `expected a number in (0, 1], got "${raw}"`);
  return n;
}

function boolSetting(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(name, `expected true or false, got "${env[name]}"`);
}

function nameSetting(env: Env, name: string, fallback: string, pattern: RegExp, rule: string): string {
  const value = env[name]?.trim() || fallback;
  if (!pattern.test(value)) throw new ConfigError(name, `"${value}" ${rule}`);
  return value;
}

function readStorage(env: Env): StorageSettings {
  const conn = env.AzureWebJobsStorage?.trim();
  if (conn) {
    return { connectionString: conn === 'UseDevelopmentStorage=true' ? DEVELOPMENT_STORAGE : conn };
  }
  const account = env.AzureWebJobsStorage__accountName?.trim();
  const settings: StorageSettings = {
    queueServiceUri: env.AzureWebJobsStorage__queueServiceUri ?? (account && `https://${account}.queue.core.windows.net`),
    tableServiceUri: env.AzureWebJobsStorage__tableServiceUri ?? (account && `https://${account}.table.core.windows.net`),
    blobServiceUri: env.AzureWebJobsStorage__blobServiceUri ?? (account && `https://${account}.blob.core.windows.net`),
    clientId: env.AzureWebJobsStorage__clientId || undefined,
  };
  if (!settings.queueServiceUri || !settings.tableServiceUri || !settings.blobServiceUri) {
    throw new ConfigError(
      'AzureWebJobsStorage',
      'set a connection string, or AzureWebJobsStorage__accountName (or the __queueServiceUri, __tableServiceUri and __blobServiceUri settings) for identity-based access',
    );
  }
  return settings;
}

/** Azurite's well-known development account on its default ports. */
export const DEVELOPMENT_STORAGE =
  'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;' +
  'AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;' +
  'BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;' +
  'TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;';

function readModels(env: Env, endpoints: EndpointSettings[]): Record<string, ModelSettings> {
  const parsed = modelsSchema.safeParse(parseJsonSetting(env, 'SLUICE_MODELS') ?? {});
  if (!parsed.success) throw new ConfigError('SLUICE_MODELS', zodDetail(parsed.error));
  const names = new Set([...endpoints.map((e) => e.model), ...Object.keys(parsed.data)]);
  const models: Record<string, ModelSettings> = {};
  for (const name of names) {
    const merged = { ...KNOWN_MODELS[name], ...parsed.data[name] };
    const full = modelSchema.safeParse(merged);
    if (!full.success) {
      throw new ConfigError(
        'SLUICE_MODELS',
        `model "${name}" is not built in; give contextWindow, maxOutputTokens and defaultMaxTokens (${zodDetail(full.error)})`,
      );
    }
    if (full.data.defaultMaxTokens > full.data.maxOutputTokens) {
      throw new ConfigError('SLUICE_MODELS', `model "${name}": defaultMaxTokens exceeds maxOutputTokens`);
    }
    models[name] = full.data;
  }
  return models;
}

/** Reads and validates every setting. Throws ConfigError naming the first bad setting. */
export function loadConfig(env: Env = process.env): SluiceConfig {
  const rawEndpoints = parseJsonSetting(env, 'SLUICE_ENDPOINTS');
  if (rawEndpoints === undefined) {
    throw new ConfigError('SLUICE_ENDPOINTS', 'missing: a JSON list of Azure OpenAI deployments (see README "Configuration")');
  }
  const parsedEndpoints = endpointsSchema.safeParse(rawEndpoints);
  if (!parsedEndpoints.success) throw new ConfigError('SLUICE_ENDPOINTS', zodDetail(parsedEndpoints.error));
  const endpoints = parsedEndpoints.data.map((e) => ({ ...e, rpm: e.rpm ?? Math.max(1, Math.floor((e.tpm * 6) / 1000)) }));
  const seen = new Set<string>();
  for (const e of endpoints) {
    const key = `${e.endpoint}|${e.deployment}`;
    if (seen.has(key)) throw new ConfigError('SLUICE_ENDPOINTS', `deployment ${e.deployment} at ${e.endpoint} is listed twice`);
    seen.add(key);
  }

  const queueName = /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/;
  const tableName = /^[A-Za-z][A-Za-z0-9]{2,62}$/;
  return {
    storage: readStorage(env),
    endpoints,
    models: readModels(env, endpoints),
    jobsQueue: nameSetting(env, 'SLUICE_JOBS_QUEUE', DEFAULTS.jobsQueue, queueName, 'is not a valid queue name'),
    jobsTable: nameSetting(env, 'SLUICE_JOBS_TABLE', DEFAULTS.jobsTable, tableName, 'is not a valid table name'),
    payloadContainer: nameSetting(env, 'SLUICE_PAYLOAD_CONTAINER', DEFAULTS.payloadContainer, queueName, 'is not a valid container name'),
    openaiApiVersion: env.SLUICE_OPENAI_API_VERSION?.trim() || DEFAULTS.openaiApiVersion,
    maxRequestBytes: intSetting(env, 'SLUICE_MAX_REQUEST_BYTES', DEFAULTS.maxRequestBytes),
    callTimeoutMs: intSetting(env, 'SLUICE_CALL_TIMEOUT_MS', DEFAULTS.callTimeoutMs),
    maxRetryDelayMs: intSetting(env, 'SLUICE_MAX_RETRY_DELAY_MS', DEFAULTS.maxRetryDelayMs),
    maxBacklog: intSetting(env, 'SLUICE_MAX_BACKLOG', DEFAULTS.maxBacklog, 0),
    holdInProcessMs: intSetting(env, 'SLUICE_HOLD_IN_PROCESS_MS', DEFAULTS.holdInProcessMs, 0),
    breaker: {
      enabled: boolSetting(env, 'SLUICE_BREAKER_ENABLED', true),
      table: nameSetting(env, 'SLUICE_BREAKER_TABLE', 'sluicebreakers', tableName, 'is not a valid table name'),
      failureThreshold: intSetting(env, 'SLUICE_BREAKER_FAILURE_THRESHOLD', 3),
      windowMs: intSetting(env, 'SLUICE_BREAKER_WINDOW_MS', 30_000),
      cooldownMs: intSetting(env, 'SLUICE_BREAKER_COOLDOWN_MS', 15_000),
      probeLeaseMs: intSetting(env, 'SLUICE_BREAKER_PROBE_LEASE_MS', 30_000),
      cacheMs: intSetting(env, 'SLUICE_BREAKER_CACHE_MS', 1_000, 0),
    },
    budget: {
      enabled: boolSetting(env, 'SLUICE_BUDGET_ENABLED', true),
      table: nameSetting(env, 'SLUICE_BUDGET_TABLE', 'sluicebudget', tableName, 'is not a valid table name'),
      leaseMs: intSetting(env, 'SLUICE_BUDGET_LEASE_MS', 10_000, 1_000),
      jobsPerLease: intSetting(env, 'SLUICE_BUDGET_JOBS_PER_LEASE', 24),
      safety: fractionSetting(env, 'SLUICE_BUDGET_SAFETY', 0.99),
      debug: boolSetting(env, 'SLUICE_BUDGET_DEBUG', false),
    },
    batch: loadBatchSettings(env),
    telemetry: loadTelemetrySettings(env),
    teams: loadTeamSettings(env),
  };
}

let cached: SluiceConfig | undefined;
/** The process-wide config, loaded on first use. */
export function getConfig(): SluiceConfig {
  cached ??= loadConfig();
  return cached;
}

/** Forgets the cached config (tests and the local stack start fresh apps in one process). */
export function resetConfig(): void {
  cached = undefined;
}
