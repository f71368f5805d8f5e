/**
 * A stack for the synchronous API's tests: Azurite, the simulator (chat and embeddings deployments in two regions),
 * and the local host serving the app with HTTP streaming, as `npm start` does.
 */
import { TableClient } from '@azure/data-tables';
import { endpointsFromSimulator, logicalModelName, startStack, type RunningStack } from '../../local/stack';
import { DEFAULT_SIMULATOR_CONFIG, startSimulator, type RunningSimulator, type SimulatorConfig } from '../../local/simulator';
import { eventually } from '../support/api';

export interface SyncStack {
  stack: RunningStack;
  sim: RunningSimulator;
  /** http://127.0.0.1:PORT/api */
  baseUrl: string;
  apiKey: string;
  stop(): Promise<void>;
}

export interface SyncStackOptions {
  /** Chat deployment TPM in every region. @default 1000000 */
  chatTpm?: number;
  /** Simulator latency. @default none */
  latency?: { firstTokenMs: number; perTokenMs: number };
  env?: Record<string, string>;
}

/** Starts the stack; every simulator deployment (chat and embeddings) serves the logical model of its name. */
export async function startSyncStack(opts: SyncStackOptions = {}): Promise<SyncStack> {
  const config: SimulatorConfig = {
    ...DEFAULT_SIMULATOR_CONFIG,
    latency: opts.latency ?? { firstTokenMs: 0, perTokenMs: 0 },
    regions: DEFAULT_SIMULATOR_CONFIG.regions.map((r) => ({
      ...r,
      port: 0,
      deployments: r.deployments.map((d) => ((d.kind ?? 'chat') === 'chat' ? { ...d, tpm: opts.chatTpm ?? 1_000_000 } : d)),
    })),
    adminPort: 0,
  };
  const sim = await startSimulator(config);
  try {
    // The chat endpoints as the stack makes them, plus the embeddings deployments where the stack leaves them out.
    const endpoints = endpointsFromSimulator(sim, config) as Array<Record<string, unknown>>;
    const chat = endpoints[0]!;
    for (const [index, region] of config.regions.entries()) {
      for (const d of region.deployments) {
        if (d.kind !== 'embeddings' || endpoints.some((e) => e.region === region.name && e.deployment === d.name)) continue;
        const running = sim.regions.find((r) => r.name === region.name)!;
        endpoints.push({ region: region.name, endpoint: running.baseUrl, deployment: d.name, model: logicalModelName(d.model), priority: index + 1, tpm: d.tpm, auth: 'key', apiKey: chat.apiKey });
      }
    }
    const stack = await startStack({
      simulator: false,
      env: {
        SLUICE_ENDPOINTS: JSON.stringify(endpoints),
        SLUICE_MODELS: JSON.stringify({ 'text-embedding-3-small': { contextWindow: 8191, maxOutputTokens: 1, defaultMaxTokens: 1 } }),
        SLUICE_MAX_RETRY_DELAY_MS: '2000',
        ...opts.env,
      },
    });
    return {
      stack,
      sim,
      baseUrl: stack.baseUrl,
      apiKey: stack.apiKey!,
      async stop() {
        await stack.stop();
        await sim.close();
      },
    };
  } catch (err) {
    await sim.close();
    throw err;
  }
}

export interface StoredUsageRow {
  rowKey: string;
  team: string;
  model: string;
  region: string;
  status: string;
  kind?: string;
  abandoned?: boolean;
  cacheHit?: boolean;
  promptTokens: number;
  completionTokens: number;
  costUsd?: number;
  errorCode: string;
  finishReason: string;
  ttftMs?: number;
  queueWaitMs: number;
  modelVersion: string;
}

/** The usage row of a sync request, once written. */
export async function usageRowOf(stack: RunningStack, requestId: string, timeoutMs = 30_000): Promise<StoredUsageRow> {
  const table = TableClient.fromConnectionString(stack.connectionString, 'sluiceusage', { allowInsecureConnection: true });
  return eventually(
    `the usage row of ${requestId}`,
    async () => {
      for await (const e of table.listEntities<StoredUsageRow>({ queryOptions: { filter: `RowKey eq '${requestId}'` } })) return e as StoredUsageRow;
      return undefined;
    },
    timeoutMs,
  );
}
