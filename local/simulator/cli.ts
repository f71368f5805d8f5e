// `npm run simulator`: starts the simulator from SIMULATOR_CONFIG / SIMULATOR_CONFIG_FILE (or the
// default two regions) on fixed ports so local tools can rely on stable URLs.
import { loadSimulatorConfig, type SimulatorConfig } from './config';
import { startSimulator, type RunningSimulator } from './simulator';

/** Admin listens on the base port, region i on base + 1 + i (8400, 8401, 8402 by default). */
export const DEFAULT_CLI_BASE_PORT = 8400;

/**
 * Fills in ports the config leaves unset (absent or 0) from SIMULATOR_BASE_PORT (default 8400).
 * SIMULATOR_BASE_PORT=0 keeps them ephemeral.
 */
export function withCliPorts(config: SimulatorConfig, env: NodeJS.ProcessEnv = process.env): SimulatorConfig {
  const rawBase = env['SIMULATOR_BASE_PORT'];
  const basePort = rawBase === undefined || rawBase === '' ? DEFAULT_CLI_BASE_PORT : Number(rawBase);
  if (!Number.isInteger(basePort) || basePort < 0 || basePort > 65535 - 1 - config.regions.length) {
    throw new Error(`SIMULATOR_BASE_PORT must be a port number, got "${rawBase}"`);
  }
  if (basePort === 0) return config;
  return {
    ...config,
    adminPort: config.adminPort || basePort,
    regions: config.regions.map((region, index) => ({ ...region, port: region.port || basePort + 1 + index })),
  };
}

export function describeSimulator(simulator: RunningSimulator, config: SimulatorConfig): string {
  const lines = ['Azure OpenAI simulator running (127.0.0.1 only):'];
  for (const region of simulator.regions) {
    lines.push(`  ${region.name}: ${region.baseUrl}`);
    const deployments = config.regions.find((candidate) => candidate.name === region.name)?.deployments ?? [];
    for (const deployment of deployments) {
      const rpm = deployment.rpm === undefined ? 'default' : String(deployment.rpm);
      lines.push(`    - ${deployment.name} (${deployment.model}, ${deployment.kind ?? 'chat'}, ${deployment.tpm} TPM, RPM ${rpm})`);
    }
  }
  lines.push(`  admin: ${simulator.adminUrl}  (GET ${simulator.adminUrl}/state)`);
  return lines.join('\n');
}

/** Starts the simulator and stops it cleanly on SIGINT/SIGTERM. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<RunningSimulator> {
  const config = withCliPorts(loadSimulatorConfig(env), env);
  const simulator = await startSimulator(config);
  const stop = (signal: NodeJS.Signals) => {
    console.log(`\n${signal} received, stopping simulator`);
    simulator.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // Print the URLs only once the handlers are in place: a SIGTERM sent as soon as they appear (a supervisor, the
  // CLI test on a loaded machine) otherwise found the default action and killed the process without a clean stop.
  console.log(describeSimulator(simulator, config));
  return simulator;
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
