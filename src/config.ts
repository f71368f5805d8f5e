/**
 * The one place that reads app settings. Every setting is read and validated once, at start-up, into a typed
 * object; a bad value fails fast with a ConfigError that names the setting. The settings themselves (names, units,
 * defaults) are listed in src/configSchema.ts.
 *
 * Settings come from the Functions app settings (Azure), `local.settings.json` Values (Core Tools or `npm start`),
 * or the process environment. Nothing here writes to the environment.
 */
import type { z } from 'zod';
import { defaultRpm, type EndpointSettings } from './core/endpoints';
import { KNOWN_MODELS, modelSchema, type ModelSettings } from './core/models';
import type { EntraMapping } from './core/teams/auth';
import type { PriceOverrides } from './core/telemetry/prices';
import { settingsSchema, zodDetail, type SettingName, type Settings } from './configSchema';

// The domain types the config is made of, for code outside src/core (src/core imports them from core itself).
export type { EndpointSettings, ModelSettings };

/** Thrown when a setting is missing or invalid; the message names the setting. */
export class ConfigError extends Error {
  constructor(readonly setting: string, detail: string) {
    super(`Invalid setting ${setting}: ${detail}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

export interface StorageSettings {
  /** Connection string (Azurite, or a key-based account), when set. */
  connectionString?: string;
  /** Identity-based connection: service URIs and an optional user-assigned identity client id. */
  queueServiceUri?: string;
  tableServiceUri?: string;
  blobServiceUri?: string;
  clientId?: string;
}

/** Settings of the whole app; each field's unit and default are documented with its setting in configSchema.ts. */
export interface SluiceConfig {
  storage: StorageSettings;
  endpoints: EndpointSettings[];
  models: Record<string, ModelSettings>;
  jobsQueue: string;
  jobsTable: string;
  payloadContainer: string;
  openaiApiVersion: string;
  /** bytes */
  maxRequestBytes: number;
  callTimeoutMs: number;
  maxRetryDelayMs: number;
  /** 0 disables the backlog check. */
  maxBacklog: number;
  holdInProcessMs: number;
  breaker: BreakerSettings;
  budget: BudgetSettings;
  batch: BatchSettings;
  telemetry: TelemetrySettings;
  teams: TeamSettings;
  dispatch: DispatchSettings;
  retention: RetentionSettings;
  syncCache: SyncCacheSettings;
  sync: SyncApiSettings;
}

/** The synchronous OpenAI-compatible API (see docs/sync.md). */
export interface SyncApiSettings {
  /** ms */
  defaultMaxWaitMs: number;
  /** ms; at least defaultMaxWaitMs. */
  maxWaitCapMs: number;
}

/** The exact cache of synchronous answers (src/core/sync/cache.ts). */
export interface SyncCacheSettings {
  table: string;
  defaultTtlMs: number;
  maxTtlMs: number;
  /** A read or write slower than this is a miss (or given up), ms. */
  timeoutMs: number;
}

/** The shared circuit breaker per deployment (see docs/failover.md). */
export interface BreakerSettings {
  enabled: boolean;
  table: string;
  failureThreshold: number;
  windowMs: number;
  cooldownMs: number;
  probeLeaseMs: number;
  cacheMs: number;
}

/** The shared TPM/RPM budget per deployment (see docs/design/budget.md). */
export interface BudgetSettings {
  enabled: boolean;
  table: string;
  leaseMs: number;
  jobsPerLease: number;
  /** In (0, 1]. */
  safety: number;
  /** Seats (lease holders) per deployment: ceil(TPM / tpmPerSeat), 2..maxSeats. */
  tpmPerSeat: number;
  maxSeats: number;
  debug: boolean;
}

/** Files, batches and the submission queue (see docs/batch.md). */
export interface BatchSettings {
  filesContainer: string;
  batchesTable: string;
  batchQueue: string;
  submitQueue: string;
  submitDeadLetterQueue: string;
  /** bytes */
  maxFileBytes: number;
  maxFileLines: number;
  /** seconds */
  completionWindowS: number;
  fanoutChunk: number;
  concurrency: number;
  /** seconds */
  leaseS: number;
  sweepSchedule: string;
}

/** Usage rows, rollup, prices and cost budgets (see docs/telemetry.md). */
export interface TelemetrySettings {
  priceOverrides: PriceOverrides;
  /** USD; undefined: no overall budget alerts. */
  monthlyBudgetUsd?: number;
  /** team → USD per month */
  teamBudgetsUsd: Record<string, number>;
  /** Ascending, distinct. */
  budgetThresholdsPct: number[];
  quotaAdviceMinutes: number;
  quotaAdvicePercent: number;
  latenessMs: number;
  usageTable: string;
  rollupTable: string;
  rollupSchedule: string;
}

/** Teams, API keys, Entra ID mapping and queue lanes (see docs/teams.md). */
export interface TeamSettings {
  table: string;
  authCacheMs: number;
  /** Undefined unless SLUICE_ENTRA_TEAMS or SLUICE_ENTRA_ADMINS is set. */
  entra?: EntraMapping;
  lanes: number;
  fairShare: boolean;
  spendCacheMs: number;
}

/** Team queues and the dispatcher (see docs/design/dispatch.md). */
export interface DispatchSettings {
  enabled: boolean;
  table: string;
  schedule: string;
  depthSeconds: number;
}

/** What is deleted when (see docs/retention.md). */
export interface RetentionSettings {
  /** days after a job finished */
  jobsDays: number;
  /** days after a usage row's minute */
  usageDays: number;
  /** days after a file's creation, unless its upload set expires_after */
  filesDays: number;
  /** rows or blobs per sweep run */
  sweepMaxRows: number;
  sweepSchedule: string;
  table: string;
}

/** Azurite's well-known development account on its default ports. */
const DEVELOPMENT_STORAGE =
  'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;' +
  'AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;' +
  'BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;' +
  'TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;';

function configError(error: z.ZodError): ConfigError {
  const issue = error.issues[0]!;
  const [setting, ...rest] = issue.path;
  return new ConfigError(String(setting), `${rest.length ? `${rest.join('.')}: ` : ''}${issue.message}`);
}

/** Parses `names` of the schema (all of them by default); throws ConfigError naming the first bad setting. */
function parse<K extends SettingName>(env: Env, names?: readonly K[]): Pick<Settings, K> {
  const schema = names ? settingsSchema.pick(Object.fromEntries(names.map((n) => [n, true])) as Partial<Record<SettingName, true>>) : settingsSchema;
  const parsed = schema.safeParse({ ...env });
  if (!parsed.success) throw configError(parsed.error);
  return parsed.data as unknown as Pick<Settings, K>;
}

function storageOf(s: Settings): StorageSettings {
  const conn = s.AzureWebJobsStorage;
  if (conn) return { connectionString: conn === 'UseDevelopmentStorage=true' ? DEVELOPMENT_STORAGE : conn };
  const account = s.AzureWebJobsStorage__accountName;
  const settings: StorageSettings = {
    queueServiceUri: s.AzureWebJobsStorage__queueServiceUri ?? (account && `https://${account}.queue.core.windows.net`),
    tableServiceUri: s.AzureWebJobsStorage__tableServiceUri ?? (account && `https://${account}.table.core.windows.net`),
    blobServiceUri: s.AzureWebJobsStorage__blobServiceUri ?? (account && `https://${account}.blob.core.windows.net`),
    clientId: s.AzureWebJobsStorage__clientId,
  };
  if (!settings.queueServiceUri || !settings.tableServiceUri || !settings.blobServiceUri) {
    throw new ConfigError(
      'AzureWebJobsStorage',
      'set a connection string, or AzureWebJobsStorage__accountName (or the __queueServiceUri, __tableServiceUri and __blobServiceUri settings) for identity-based access',
    );
  }
  return settings;
}

function endpointsOf(s: Settings): EndpointSettings[] {
  if (s.SLUICE_ENDPOINTS === undefined) {
    throw new ConfigError('SLUICE_ENDPOINTS', 'missing: a JSON list of Azure OpenAI deployments (see README "Configuration")');
  }
  const endpoints = s.SLUICE_ENDPOINTS.map((e) => ({ ...e, rpm: e.rpm ?? defaultRpm(e.tpm) }));
  const seen = new Set<string>();
  for (const e of endpoints) {
    const key = `${e.endpoint}|${e.deployment}`;
    if (seen.has(key)) throw new ConfigError('SLUICE_ENDPOINTS', `deployment ${e.deployment} at ${e.endpoint} is listed twice`);
    seen.add(key);
  }
  return endpoints;
}

/** Built-in limits merged with SLUICE_MODELS, for every model an endpoint serves or the setting names. */
function modelsOf(s: Settings, endpoints: EndpointSettings[]): Record<string, ModelSettings> {
  const overrides = s.SLUICE_MODELS;
  const names = new Set([...endpoints.map((e) => e.model), ...Object.keys(overrides)]);
  const models: Record<string, ModelSettings> = {};
  for (const name of names) {
    const full = modelSchema.safeParse({ ...KNOWN_MODELS[name], ...overrides[name] });
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

function entraOf(s: Settings): EntraMapping | undefined {
  if (s.SLUICE_ENTRA_TEAMS === undefined && s.SLUICE_ENTRA_ADMINS === undefined) return undefined;
  return { teams: s.SLUICE_ENTRA_TEAMS ?? {}, admins: s.SLUICE_ENTRA_ADMINS ?? [], adminTeam: s.SLUICE_ENTRA_ADMIN_TEAM, appServiceAuth: s.WEBSITE_AUTH_ENABLED };
}

function syncOf(s: Settings): SyncApiSettings {
  if (s.SLUICE_SYNC_MAX_WAIT_MS > s.SLUICE_SYNC_MAX_WAIT_CAP_MS) {
    throw new ConfigError('SLUICE_SYNC_MAX_WAIT_MS', `${s.SLUICE_SYNC_MAX_WAIT_MS} exceeds SLUICE_SYNC_MAX_WAIT_CAP_MS (${s.SLUICE_SYNC_MAX_WAIT_CAP_MS})`);
  }
  return { defaultMaxWaitMs: s.SLUICE_SYNC_MAX_WAIT_MS, maxWaitCapMs: s.SLUICE_SYNC_MAX_WAIT_CAP_MS };
}

/** Reads and validates every setting. Throws ConfigError naming the first bad setting. */
export function loadConfig(env: Env = process.env): SluiceConfig {
  const s = parse(env);
  const endpoints = endpointsOf(s);
  const entra = entraOf(s);
  return {
    storage: storageOf(s),
    endpoints,
    models: modelsOf(s, endpoints),
    jobsQueue: s.SLUICE_JOBS_QUEUE,
    jobsTable: s.SLUICE_JOBS_TABLE,
    payloadContainer: s.SLUICE_PAYLOAD_CONTAINER,
    openaiApiVersion: s.SLUICE_OPENAI_API_VERSION,
    maxRequestBytes: s.SLUICE_MAX_REQUEST_BYTES,
    callTimeoutMs: s.SLUICE_CALL_TIMEOUT_MS,
    maxRetryDelayMs: s.SLUICE_MAX_RETRY_DELAY_MS,
    maxBacklog: s.SLUICE_MAX_BACKLOG,
    holdInProcessMs: s.SLUICE_HOLD_IN_PROCESS_MS,
    breaker: {
      enabled: s.SLUICE_BREAKER_ENABLED,
      table: s.SLUICE_BREAKER_TABLE,
      failureThreshold: s.SLUICE_BREAKER_FAILURE_THRESHOLD,
      windowMs: s.SLUICE_BREAKER_WINDOW_MS,
      cooldownMs: s.SLUICE_BREAKER_COOLDOWN_MS,
      probeLeaseMs: s.SLUICE_BREAKER_PROBE_LEASE_MS,
      cacheMs: s.SLUICE_BREAKER_CACHE_MS,
    },
    budget: {
      enabled: s.SLUICE_BUDGET_ENABLED,
      table: s.SLUICE_BUDGET_TABLE,
      leaseMs: s.SLUICE_BUDGET_LEASE_MS,
      jobsPerLease: s.SLUICE_BUDGET_JOBS_PER_LEASE,
      safety: s.SLUICE_BUDGET_SAFETY,
      tpmPerSeat: s.SLUICE_BUDGET_TPM_PER_SEAT,
      maxSeats: s.SLUICE_BUDGET_MAX_SEATS,
      debug: s.SLUICE_BUDGET_DEBUG,
    },
    batch: {
      filesContainer: s.SLUICE_FILES_CONTAINER,
      batchesTable: s.SLUICE_BATCHES_TABLE,
      batchQueue: s.SLUICE_BATCH_QUEUE,
      submitQueue: s.SLUICE_SUBMIT_QUEUE,
      submitDeadLetterQueue: s.SLUICE_SUBMIT_DEADLETTER_QUEUE,
      maxFileBytes: s.SLUICE_MAX_FILE_BYTES,
      maxFileLines: s.SLUICE_MAX_FILE_LINES,
      completionWindowS: s.SLUICE_BATCH_COMPLETION_WINDOW_S,
      fanoutChunk: s.SLUICE_BATCH_FANOUT_CHUNK,
      concurrency: s.SLUICE_BATCH_CONCURRENCY,
      leaseS: s.SLUICE_BATCH_LEASE_S,
      sweepSchedule: s.SLUICE_BATCH_SWEEP_SCHEDULE,
    },
    telemetry: {
      priceOverrides: s.SLUICE_PRICES,
      ...(s.SLUICE_BUDGET_MONTHLY_USD === undefined ? {} : { monthlyBudgetUsd: s.SLUICE_BUDGET_MONTHLY_USD }),
      teamBudgetsUsd: s.SLUICE_TEAM_BUDGETS,
      budgetThresholdsPct: s.SLUICE_BUDGET_THRESHOLDS,
      quotaAdviceMinutes: s.SLUICE_QUOTA_ADVICE_MINUTES,
      quotaAdvicePercent: s.SLUICE_QUOTA_ADVICE_PERCENT,
      latenessMs: s.SLUICE_ROLLUP_LATENESS_SECONDS * 1000,
      usageTable: s.SLUICE_USAGE_TABLE,
      rollupTable: s.SLUICE_ROLLUP_TABLE,
      rollupSchedule: s.SLUICE_ROLLUP_SCHEDULE,
    },
    teams: {
      table: s.SLUICE_TEAMS_TABLE,
      authCacheMs: s.SLUICE_AUTH_CACHE_MS,
      ...(entra ? { entra } : {}),
      lanes: s.SLUICE_QUEUE_LANES,
      fairShare: s.SLUICE_FAIR_SHARE,
      spendCacheMs: s.SLUICE_TEAM_SPEND_CACHE_MS,
    },
    dispatch: {
      enabled: s.SLUICE_DISPATCH,
      table: s.SLUICE_TEAM_QUEUE_TABLE,
      schedule: s.SLUICE_DISPATCH_SCHEDULE,
      depthSeconds: s.SLUICE_DISPATCH_DEPTH_SECONDS,
    },
    retention: {
      jobsDays: s.SLUICE_RETENTION_JOBS_DAYS,
      usageDays: s.SLUICE_RETENTION_USAGE_DAYS,
      filesDays: s.SLUICE_RETENTION_FILES_DAYS,
      sweepMaxRows: s.SLUICE_RETENTION_SWEEP_MAX_ROWS,
      sweepSchedule: s.SLUICE_RETENTION_SWEEP_SCHEDULE,
      table: s.SLUICE_RETENTION_TABLE,
    },
    syncCache: {
      table: s.SLUICE_CACHE_TABLE,
      defaultTtlMs: s.SLUICE_CACHE_DEFAULT_TTL_SECONDS * 1000,
      maxTtlMs: s.SLUICE_CACHE_MAX_TTL_SECONDS * 1000,
      timeoutMs: s.SLUICE_CACHE_TIMEOUT_MS,
    },
    sync: syncOf(s),
  };
}

/** What trigger registrations need: queue names, schedules and the lane count. */
export interface BindingSettings {
  jobsQueue: string;
  submitQueue: string;
  batchQueue: string;
  batchSweepSchedule: string;
  rollupSchedule: string;
  retentionSweepSchedule: string;
  dispatchSchedule: string;
  lanes: number;
}

/**
 * The settings function files register their triggers with, read when they are imported. Triggers are registered
 * with the resolved names rather than `%SETTING%` expressions, so they work whether or not the host has the setting
 * (the default applies), in Azure, under Core Tools and in the local host alike. Reads only these settings, so a
 * function file can be indexed without the rest of the configuration; writes nothing.
 */
export function bindingSettings(env: Env = process.env): BindingSettings {
  const s = parse(env, ['SLUICE_JOBS_QUEUE', 'SLUICE_SUBMIT_QUEUE', 'SLUICE_BATCH_QUEUE', 'SLUICE_BATCH_SWEEP_SCHEDULE', 'SLUICE_ROLLUP_SCHEDULE', 'SLUICE_RETENTION_SWEEP_SCHEDULE', 'SLUICE_DISPATCH_SCHEDULE', 'SLUICE_QUEUE_LANES']);
  return {
    jobsQueue: s.SLUICE_JOBS_QUEUE,
    submitQueue: s.SLUICE_SUBMIT_QUEUE,
    batchQueue: s.SLUICE_BATCH_QUEUE,
    batchSweepSchedule: s.SLUICE_BATCH_SWEEP_SCHEDULE,
    rollupSchedule: s.SLUICE_ROLLUP_SCHEDULE,
    retentionSweepSchedule: s.SLUICE_RETENTION_SWEEP_SCHEDULE,
    dispatchSchedule: s.SLUICE_DISPATCH_SCHEDULE,
    lanes: s.SLUICE_QUEUE_LANES,
  };
}

/** Queue lanes per priority (SLUICE_QUEUE_LANES); the same on every instance and in every tool. */
export function laneCount(env: Env = process.env): number {
  return parse(env, ['SLUICE_QUEUE_LANES']).SLUICE_QUEUE_LANES;
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
