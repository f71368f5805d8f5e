/**
 * Settings of the telemetry feature (issue 7), read and validated once. To be folded into src/config.ts
 * (SluiceConfig.telemetry = loadTelemetrySettings(env)); until then the rollup and usage functions call it.
 */
import { z } from 'zod';
import { ConfigError } from '../../configError';
import type { PriceOverrides } from './prices';

export interface TelemetrySettings {
  /** SLUICE_PRICES: per "<region>/<deployment>" or per model, USD per 1M tokens. @default {} */
  priceOverrides: PriceOverrides;
  /** SLUICE_BUDGET_MONTHLY_USD: overall monthly budget, USD. @default none (no overall alerts) */
  monthlyBudgetUsd?: number;
  /** SLUICE_TEAM_BUDGETS: {team: USD per month}. @default {} */
  teamBudgetsUsd: Record<string, number>;
  /** SLUICE_BUDGET_THRESHOLDS: percentages of a budget that raise an alert. @default [50, 80, 100] */
  budgetThresholdsPct: number[];
  /** SLUICE_QUOTA_ADVICE_MINUTES: consecutive minutes above the TPM advice threshold before advice. @default 15 */
  quotaAdviceMinutes: number;
  /** SLUICE_QUOTA_ADVICE_PERCENT: TPM utilisation above which a minute counts. @default 80 */
  quotaAdvicePercent: number;
  /** SLUICE_ROLLUP_LATENESS_SECONDS: a minute window closes this long after its end. @default 120 */
  latenessMs: number;
  /** SLUICE_USAGE_TABLE: per-job usage rows. @default "sluiceusage" */
  usageTable: string;
  /** SLUICE_ROLLUP_TABLE: rollups, watermark, month-to-date cost, alert state. @default "sluicerollup" */
  rollupTable: string;
}

/** NCRONTAB of the rollup timer (bound as %SLUICE_ROLLUP_SCHEDULE%). */
export const DEFAULT_ROLLUP_SCHEDULE = '0 */1 * * * *';

/**
 * Sets defaults for settings used in trigger bindings, which must exist as app settings before the host resolves
 * them. The config module should call this at load; in Azure, infra sets SLUICE_ROLLUP_SCHEDULE explicitly.
 */
export function applyTelemetryEnvDefaults(env: Record<string, string | undefined> = process.env): void {
  if (!env.SLUICE_ROLLUP_SCHEDULE?.trim()) env.SLUICE_ROLLUP_SCHEDULE = DEFAULT_ROLLUP_SCHEDULE;
}

type Env = Record<string, string | undefined>;

const price = z
  .object({ input: z.number().min(0), cachedInput: z.number().min(0).optional(), output: z.number().min(0) })
  .strict()
  .transform((p) => ({ input: p.input, cachedInput: p.cachedInput ?? p.input, output: p.output }));

function json<T>(env: Env, name: string, schema: z.ZodType<T>, fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(name, `not valid JSON (${(err as Error).message})`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ConfigError(name, parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') + ': ' : ''}${i.message}`).join('; '));
  }
  return parsed.data;
}

function num(env: Env, name: string, fallback: number | undefined, min: number, max = Number.POSITIVE_INFINITY, integer = false): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new ConfigError(name, `expected ${integer ? 'an integer' : 'a number'} between ${min} and ${max}, got "${raw}"`);
  }
  return n;
}

function tableName(env: Env, name: string, fallback: string): string {
  const v = env[name]?.trim() || fallback;
  if (!/^[A-Za-z][A-Za-z0-9]{2,62}$/.test(v)) throw new ConfigError(name, `"${v}" is not a valid table name`);
  return v;
}

export function loadTelemetrySettings(env: Env = process.env): TelemetrySettings {
  const thresholdsRaw = env.SLUICE_BUDGET_THRESHOLDS?.trim() || '50,80,100';
  const thresholds = thresholdsRaw.split(',').map((s) => Number(s.trim()));
  if (thresholds.some((t) => !Number.isFinite(t) || t <= 0 || t > 1000)) {
    throw new ConfigError('SLUICE_BUDGET_THRESHOLDS', `expected comma-separated percentages (e.g. "50,80,100"), got "${thresholdsRaw}"`);
  }
  return {
    priceOverrides: json(env, 'SLUICE_PRICES', z.record(z.string().min(1), price), {}),
    monthlyBudgetUsd: num(env, 'SLUICE_BUDGET_MONTHLY_USD', undefined, 0),
    teamBudgetsUsd: json(env, 'SLUICE_TEAM_BUDGETS', z.record(z.string().min(1), z.number().min(0)), {}),
    budgetThresholdsPct: [...new Set(thresholds)].sort((a, b) => a - b),
    quotaAdviceMinutes: num(env, 'SLUICE_QUOTA_ADVICE_MINUTES', 15, 1, 1440, true)!,
    quotaAdvicePercent: num(env, 'SLUICE_QUOTA_ADVICE_PERCENT', 80, 1, 100)!,
    latenessMs: num(env, 'SLUICE_ROLLUP_LATENESS_SECONDS', 120, 0, 3600, true)! * 1000,
    usageTable: tableName(env, 'SLUICE_USAGE_TABLE', 'sluiceusage'),
    rollupTable: tableName(env, 'SLUICE_ROLLUP_TABLE', 'sluicerollup'),
  };
}
