/**
 * Wiring of the synchronous API, built once per shared Services instance: the same budget, fair share, breaker and
 * endpoints as the worker, the upstream client, the optional cache, and the usage table.
 */
import type { InvocationContext } from '@azure/functions';
import { systemClock } from '../core/worker';
import type { SyncServeDeps } from '../core/sync/serve';
import { buildSyncUsageRow, recordUsageRow, type RecorderDeps } from '../core/telemetry/usage';
import { watermarkCuts } from '../core/telemetry/rollup';
import { modelEntry } from '../core/models';
import { RollupTable } from '../azure/rollupTable';
import { trackModelCall } from '../azure/telemetry';
import { UsageTable } from '../azure/usageTable';
import { getServices, type Services } from './services';

/** Failed calls (5xx, timeouts, connection failures) after which a sync request fails, as for a job. */
const MAX_TRANSIENT_FAILURES = 8;

let cached: { for: Services; recorder: RecorderDeps } | undefined;

/** The sync path's dependencies for one invocation (its log lines go through the invocation's context). */
export function syncDeps(context: InvocationContext): SyncServeDeps {
  const services = getServices();
  const { config } = services;
  if (cached?.for !== services) {
    const settings = config.telemetry;
    cached = {
      for: services,
      recorder: {
        store: new UsageTable(services.storage.table(settings.usageTable)),
        cuts: watermarkCuts(new RollupTable(services.storage.table(settings.rollupTable))),
        clock: systemClock,
        latenessMs: settings.latenessMs,
        options: { overrides: settings.priceOverrides },
        warn: (m) => context.warn(m),
      },
    };
  }
  const recorder = { ...cached.recorder, warn: (m: string) => context.warn(m) };
  return {
    endpoints: config.endpoints,
    budget: services.budget,
    health: services.health,
    upstream: services.sync.upstream,
    cache: services.syncCache,
    settings: {
      defaultMaxWaitMs: config.sync.defaultMaxWaitMs,
      maxWaitCapMs: config.sync.maxWaitCapMs,
      callTimeoutMs: config.callTimeoutMs,
      maxRetryDelayMs: config.maxRetryDelayMs,
      maxTransientFailures: MAX_TRANSIENT_FAILURES,
    },
    clock: systemClock,
    spillover: (model) => modelEntry(config.models, model)?.spillover ?? true,
    log: (level, message) => context[level](message),
    onModelCall: (call) => trackModelCall(call),
    safety: config.budget.enabled ? config.budget.safety : 1,
    usageRow: (usage, now) => buildSyncUsageRow(usage, now, recorder.options, recorder.warn),
    storeUsage: (row) => recordUsageRow(recorder, row),
  };
}
