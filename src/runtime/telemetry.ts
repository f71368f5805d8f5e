/**
 * Wiring of telemetry for the rollup and usage functions: settings, tables and sink, built once per process from the
 * shared services. The worker writes usage rows through its own finished hook (services.ts).
 */
import { systemClock } from '../core/worker';
import type { DeploymentLimits, Gauge, RollupDeps, TelemetrySink } from '../core/telemetry/rollupDeps';
import type { SluiceConfig } from '../config';
import { GAUGE_METRICS } from '../core/telemetry/names';
import { RollupTable } from '../azure/rollupTable';
import { telemetrySink } from '../azure/telemetry';
import { UsageTable } from '../azure/usageTable';
import { getServices } from './services';

interface TelemetryServices {
  settings: SluiceConfig['telemetry'];
  usage: UsageTable;
  rollup: RollupTable;
  sink: TelemetrySink;
  endpoints: DeploymentLimits[];
  /** Queue depths of the jobs and poison queues. */
  gauges(): Promise<Gauge[]>;
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
  const gauges = async (): Promise<Gauge[]> => {
    const out: Gauge[] = [];
    for (const q of [...services.laneQueues().map((l) => l.queue), services.poisonQueue]) {
      out.push({ name: GAUGE_METRICS.queueDepth, value: await q.depth(), properties: { queue: q.name } });
    }
    // A filtered scan once per rollup run, capped: enough to alert on a growing wait without reading every job.
    // Before the first job the jobs table does not exist yet: nothing is waiting.
    let waiting = 0;
    try {
      waiting = await services.jobs.countWaiting(WAITING_COUNT_CAP);
    } catch (err) {
      if (!isTableNotFound(err)) throw err;
    }
    out.push({ name: GAUGE_METRICS.jobsWaiting, value: waiting, properties: {} });
    return out;
  };
  cached = {
    settings,
    usage,
    rollup,
    sink,
    endpoints,
    gauges,
    // Teams' own monthly budgets (admin API) join SLUICE_TEAM_BUDGETS for the 50/80/100 % alerts.
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

function isTableNotFound(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404;
}
