// startSimulator: wires state, one RegionServer per region and the admin endpoint together.
import { AdminServer, type AdminController } from './admin';
import {
  DEFAULT_SIMULATOR_CONFIG,
  faultSpecSchema,
  limitsSchema,
  validateSimulatorConfig,
  type FaultSpec,
  type SimulatorConfig,
} from './config';
import { RegionServer } from './regionServer';
import { resolveSettings } from './settings';
import { SimulatorState, type SimCounters, type SimRequestRecord } from './state';

export interface RunningSimulator {
  /** baseUrl like http://127.0.0.1:PORT (no trailing slash) = the Azure "endpoint". */
  regions: { name: string; baseUrl: string; port: number }[];
  /** http://127.0.0.1:ADMINPORT/_admin */
  adminUrl: string;
  /** Same as POST /_admin/regions/{region}/fault; `{}` clears. A 'refuse' closes the port synchronously. */
  setFault(region: string, fault: FaultSpec): void;
  setLimits(region: string, deployment: string, limits: { tpm?: number; rpm?: number }): void;
  /** Per region, per deployment. */
  counters(): SimCounters;
  /** Recent request log, oldest first (last 100,000). */
  requests(): SimRequestRecord[];
  /** Counters, windows, limits, request log and faults back to config. */
  reset(): void;
  close(): Promise<void>;
}

export interface SimulatorOptions {
  /** Clock for rate-limit windows and the request log, epoch ms; default Date.now. */
  now?: () => number;
  /** Randomness for fault injection, [0, 1); default Math.random. */
  random?: () => number;
}

/** Starts one server per region plus the admin endpoint, all on 127.0.0.1. Default config: DEFAULT_SIMULATOR_CONFIG. */
export async function startSimulator(
  config: SimulatorConfig = DEFAULT_SIMULATOR_CONFIG,
  options: SimulatorOptions = {},
): Promise<RunningSimulator> {
  const validConfig = validateSimulatorConfig(structuredClone(config));
  const state = new SimulatorState(validConfig, options.now ?? Date.now, options.random ?? Math.random);
  const settings = resolveSettings(validConfig);
  const servers = new Map<string, RegionServer>();
  for (const region of state.regions.values()) servers.set(region.config.name, new RegionServer(state, region, settings));

  const applyFault = async (regionName: string, fault: FaultSpec): Promise<void> => {
    const region = state.region(regionName);
    const server = servers.get(regionName)!;
    region.fault = faultSpecSchema.parse(fault);
    await (region.fault.down === 'refuse' ? server.refuse() : server.reopen());
  };
  const setLimits = (regionName: string, deploymentName: string, limits: { tpm?: number; rpm?: number }): void => {
    state.deployment(regionName, deploymentName).limiter.setLimits(limitsSchema.parse(limits));
  };
  const resetAll = async (): Promise<void> => {
    state.resetCountersAndWindows();
    await Promise.all([...state.regions.keys()].map((name) => applyFault(name, {})));
  };

  const controller: AdminController = {
    stateSnapshot: () => ({
      config: validConfig,
      regions: [...state.regions.values()].map((region) => ({
        name: region.config.name,
        baseUrl: servers.get(region.config.name)!.baseUrl,
        fault: region.fault,
        deployments: [...region.deployments.values()].map((deployment) => ({
          name: deployment.config.name,
          model: deployment.config.model,
          kind: deployment.config.kind ?? 'chat',
          limits: deployment.limiter.getLimits(),
        })),
      })),
      counters: state.counters(),
    }),
    requests: (sinceMs) => state.requests(sinceMs),
    applyFault,
    setLimits,
    resetAll,
  };
  const admin = new AdminServer(controller, validConfig.adminPort);

  const started: { close(): Promise<void> }[] = [];
  try {
    for (const server of servers.values()) {
      await server.start();
      started.push(server);
    }
    await admin.start();
    started.push(admin);
  } catch (error) {
    await Promise.all(started.map((server) => server.close()));
    throw error;
  }

  const logFailure = (error: unknown) => console.error('[simulator] fault change failed:', error);
  return {
    regions: [...servers.values()].map((server) => ({ name: server.name, baseUrl: server.baseUrl, port: server.port })),
    adminUrl: admin.url,
    setFault: (region, fault) => {
      // Validate and look up synchronously so mistakes throw at the caller.
      faultSpecSchema.parse(fault);
      state.region(region);
      applyFault(region, fault).catch(logFailure);
    },
    setLimits,
    counters: () => state.counters(),
    requests: () => state.requests(),
    reset: () => {
      resetAll().catch(logFailure);
    },
    close: async () => {
      await Promise.all([...servers.values()].map((server) => server.close()).concat(admin.close()));
    },
  };
}
