/** What the rollup needs from its host: where usage rows and its own state live, where metrics go, the time. */
import type { RollupRow } from './aggregate';
import type { StateStore } from './store';

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

/** The telemetry settings the rollup reads (src/config.ts reads and documents them). */
export interface RollupSettings {
  /** A minute window closes this long after its end, ms. */
  latenessMs: number;
  /** Overall monthly budget, USD; none: no overall alerts. */
  monthlyBudgetUsd?: number;
  /** Monthly budget per team id, USD. */
  teamBudgetsUsd: Record<string, number>;
  /** Percentages of a budget that raise an alert. */
  budgetThresholdsPct: number[];
  /** Consecutive minutes above quotaAdvicePercent before quota advice. */
  quotaAdviceMinutes: number;
  /** TPM utilisation, %, above which a minute counts toward quota advice. */
  quotaAdvicePercent: number;
}

/** Routine progress goes to debug; warnings are for a person (budget, quota, a claim taken over). */
export type RollupLog = (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void;

export interface RollupDeps {
  usage: UsageRowSource;
  state: StateStore;
  sink: TelemetrySink;
  clock: { now(): number };
  settings: RollupSettings;
  endpoints: readonly DeploymentLimits[];
  log: RollupLog;
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
