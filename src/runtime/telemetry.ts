/**
 * Wiring of the telemetry feature (issue 7): its settings, tables and sink, built once per process from the shared
 * services. The worker's onFinished calls `recordUsage(job)`; the rollup and usage functions use the rest.
 */
import { systemClock } from '../core/worker';
import type { JobRecord } from '../core/jobs';
import { watermarkCuts, type DeploymentLimits, type Gauge, type RollupDeps, type TelemetrySink } from '../core/telemetry/rollup';
import type { TelemetrySettings } from '../config';
import { recordJobUsage, type UsageRow } from '../core/telemetry/usage';
import { GAUGE_METRICS } from '../core/telemetry/names';
import { RollupTable } from '../azure/rollupTable';
import { telemetrySink } from '../azure/telemetry';
import { UsageTable } from '../azure/usageTable';
import { getServices } from './services';

export interface TelemetryServices {
  settings: TelemetrySettings;
  usage: UsageTable;
  rollup: RollupTable;
  sink: TelemetrySink;
  endpoints: DeploymentLimits[];
  /** Queue depths of the jobs and poison queues. */
  gauges(): Promise<Gauge[]>;
  /** Records a finished job's usage row (idempotent). Call from the worker when a job reaches a terminal state. */
  recordUsage(job: JobRecord, log?: (message: string) => void): Promise<UsageRow>;
  /** Monthly budgets set on teams through the admin API, by team id (USD). */
  teamBudgets(): Promise<Record<string, number>>;
  /** `teamBudgets` join SLUICE_TEAM_BUDGETS (a team's own budget wins). */
  rollupDeps(log: RollupDeps['log'], teamBudgets?: Record<string, number>): RollupDeps;
}

/** Most waiting jobs counted per rollup run (the gauge saturates there). */
const WAITING_COUNT_CAP = 10_000;

let cached: TelemetryServices | undefined;
let cachedFor: object | undefined;

/** Built once per shared Services instance (a reset of those, e.g. by the local stack, rebuilds these too). */
export function getTelemetryServices(): TelemetryServices {
  const services = getServices();
  if (cached && cachedFor === services) return cached;
  cachedFor = services;
  const settings = services.config.telemetry;
  const usage = new UsageTable(services.storage.table(settings.usageTable));
  const rollup = new RollupTable(services.storage.table(settings.rollupTable));
  const sink = telemetrySink(process.env);
  const endpoints = services.config.endpoints.map((e) => ({ region: e.region, deployment: e.deployment, model: e.model, tpm: e.tpm, rpm: e.rpm }));
  const cuts = watermarkCuts(rollup);
  const gauges = async (): Promise<Gauge[]> => {
    const out: Gauge[] = [];
    for (const q of [...services.laneQueues().map((l) => l.queue), services.poisonQueue]) {
      out.push({ name: GAUGE_METRICS.queueDepth, value: await q.depth(), properties: { queue: q.name } });
    }
    // A filtered scan once per rollup run, capped: enough to alert on a growing wait without reading every job.
    out.push({ name: GAUGE_METRICS.jobsWaiting, value: await services.jobs.countWaiting(WAITING_COUNT_CAP), properties: {} });
    return out;
  };
  cached = {
    settings,
    usage,
    rollup,
    sink,
    endpoints,
    gauges,
    recordUsage: (job, log) =>
      recordJobUsage(
        { store: usage, cuts, clock: systemClock, latenessMs: settings.latenessMs, options: { overrides: settings.priceOverrides }, warn: log ?? ((m) => console.warn(m)) },
        job,
        Date.now(),
      ),
    // Issue 10: teams' own monthly budgets (admin API) join SLUICE_TEAM_BUDGETS for the 50/80/100 % alerts.
    teamBudgets: async () => Object.fromEntries((await services.teams.listTeams()).filter((t) => t.monthlyBudgetUsd > 0).map((t) => [t.id, t.monthlyBudgetUsd])),
    rollupDeps: (log, teamBudgets = {}) => ({
      usage,
      state: rollup,
      sink,
      clock: systemClock,
      settings: { ...settings, teamBudgetsUsd: { ...settings.teamBudgetsUsd, ...teamBudgets } },
      endpoints,
      log,
      gauges,
    }),
  };
  return cached;
}

export function resetTelemetryServices(): void {
  cached = undefined;
}
