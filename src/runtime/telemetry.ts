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
    // The waiting counters of every team (core/backlog.ts WAITING_COUNT): rows per team, never the jobs table.
    out.push({ name: GAUGE_METRICS.jobsWaiting, value: await services.waiting.total(), properties: {} });
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
