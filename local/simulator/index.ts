// Public entry point of the Azure OpenAI simulator (local dev/test tool; not deployed).
// Start it in-process with startSimulator(), or from a shell with `npm run simulator` (cli.ts).
export {
  DEFAULT_SIMULATOR_CONFIG,
  defaultRpmForTpm,
  loadSimulatorConfig,
  validateSimulatorConfig,
  type FaultSpec,
  type SimDeployment,
  type SimRegion,
  type SimulatorConfig,
} from './config';
export { startSimulator, type RunningSimulator, type SimulatorOptions } from './simulator';
export type { SimCounters, SimDeploymentCounters, SimRequestRecord } from './state';
export type { WindowSnapshot } from './rateLimiter';
export { countChatPromptTokens } from './tokens';
export { main } from './cli';
