// The whole app on one machine for tests and benchmarks: Azurite + the Azure OpenAI simulator + the real
// functions in a local host (in-process), optionally with worker processes draining the jobs queue.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startAzurite, type RunningAzurite } from './azurite';
import { startFunctionsHost } from './host';
import { TableClient } from '@azure/data-tables';
import { TeamStore } from '../src/azure/teamTable';
import { ensureTeamWithKey } from '../src/core/teams/admin';
import { laneCount } from '../src/config';
import { DEFAULT_SIMULATOR_CONFIG, defaultRpmForTpm, startSimulator, type RunningSimulator, type SimulatorConfig } from './simulator';

export interface StackOptions {
  /** Simulator config, or false for none (then pass SLUICE_ENDPOINTS in env). @default DEFAULT_SIMULATOR_CONFIG, ephemeral ports */
  simulator?: SimulatorConfig | false;
  /** Extra app settings; they win over the generated ones. */
  env?: Record<string, string>;
  /** 0: the in-process host runs everything. N>0: the in-process host runs HTTP, timers and every function but
   *  `worker`; N child processes (local/host/cli.js --only worker --no-http) drain the jobs queue. @default 0 */
  workers?: number;
  /** Run the HTTP host (and timers, and every function but the workers') in a child process too, so that a
   *  benchmark's load generator does not share its event loop with the functions it measures. @default false */
  hostProcess?: boolean;
  /** @default { inMemory: true } (a temporary data folder, removed on stop, when false) */
  azurite?: { inMemory?: boolean };
  /** Merged over host.json for the in-process host and the workers (e.g. a short visibilityTimeout). */
  hostJson?: object;
  /** Create team "default" with a member key and team "admin" with an admin key before the app starts.
   *  @default true */
  bootstrapKeys?: boolean;
  /** Receives every host and worker log line, at every level. @default kept in memory (see RunningStack.logs);
   *  SLUICE_STACK_LOG=1 prints them */
  log?: (line: string) => void;
}

export interface RunningStack {
  /** http://127.0.0.1:PORT/api */
  baseUrl: string;
  connectionString: string;
  sim?: RunningSimulator;
  azurite: RunningAzurite;
  /** App settings the stack set (also in process.env until stop()). */
  env: Record<string, string>;
  /** A member key of team "default", unless bootstrapKeys was false. */
  apiKey?: string;
  /** An admin key (team "admin"), unless bootstrapKeys was false. */
  adminKey?: string;
  workerProcesses: ChildProcess[];
  /** Sends `signal` (default SIGTERM: graceful drain; SIGKILL for a crash) to worker i. */
  killWorker(i: number, signal?: NodeJS.Signals): void;
  /** Starts one more worker process (appended to workerProcesses); it is ready shortly after. */
  startWorker(): ChildProcess;
  /** The last 2,000 log lines from the host and workers. */
  logs(): string[];
  stop(): Promise<void>;
}

/** The queue-triggered functions that run jobs (one per queue lane); worker processes run only them. */
export const WORKER_FUNCTION = 'worker*';
const PROJECT_ROOT = resolve(__dirname, '..', '..');
const SIMULATOR_API_KEY = 'local-simulator-key';
const LOG_LINES_KEPT = 2000;

/** "gpt-4o-mini-2024-07-18" → "gpt-4o-mini": clients ask for the logical model, Azure reports the version. */
export function logicalModelName(model: string): string {
  return model.replace(/-\d{4}-\d{2}-\d{2}$/, '');
}

/**
 * SLUICE_ENDPOINTS entries for the simulator's deployments, chat and embeddings alike (each serves the logical model
 * of its name, e.g. "text-embedding-3-small"); priority follows region order (1 = first).
 */
export function endpointsFromSimulator(sim: RunningSimulator, config: SimulatorConfig): object[] {
  const apiKey = config.apiKeys?.[0] ?? SIMULATOR_API_KEY;
  return config.regions.flatMap((region, index) => {
    const running = sim.regions.find((r) => r.name === region.name);
    if (!running) throw new Error(`simulator region ${region.name} is not running`);
    return region.deployments
      .map((d) => ({
        region: region.name,
        endpoint: running.baseUrl,
        deployment: d.name,
        model: logicalModelName(d.model),
        ...(d.modelVersion ? { modelVersion: d.modelVersion } : {}),
        priority: index + 1,
        tpm: d.tpm,
        rpm: d.rpm ?? defaultRpmForTpm(d.tpm),
        auth: 'key',
        apiKey,
      }));
  });
}

/** The app caches its config/services per process; a fresh stack must not reuse a previous stack's clients. */
function resetAppCaches(): void {
  for (const [file, fn] of [['src/runtime/services.js', 'resetServices'], ['src/config.js', 'resetConfig']] as const) {
    try {
      const mod = require(join(PROJECT_ROOT, 'dist', file)) as Record<string, unknown>;
      if (typeof mod[fn] === 'function') (mod[fn] as () => void)();
    } catch {
      // Not built or no reset hook: nothing cached to clear.
    }
  }
}

export async function startStack(opts: StackOptions = {}): Promise<RunningStack> {
  const buffer: string[] = [];
  const log =
    opts.log ??
    ((line: string) => {
      buffer.push(line);
      if (buffer.length > LOG_LINES_KEPT) buffer.splice(0, buffer.length - LOG_LINES_KEPT);
      if (process.env.SLUICE_STACK_LOG === '1') console.log(line);
    });
  const inMemory = opts.azurite?.inMemory ?? true;
  const dataDir = inMemory ? undefined : mkdtempSync(join(tmpdir(), 'sluice-azurite-'));
  const cleanups: (() => Promise<void> | void)[] = [];
  const previousEnv: Record<string, string | undefined> = {};
  const cleanup = async () => {
    for (const step of cleanups.reverse()) await Promise.resolve(step()).catch(() => undefined);
    for (const [name, value] of Object.entries(previousEnv)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    const azurite = await startAzurite({ rootDir: PROJECT_ROOT, inMemory, location: dataDir });
    cleanups.push(() => azurite.stop());
    const simConfig = opts.simulator === false ? undefined : (opts.simulator ?? DEFAULT_SIMULATOR_CONFIG);
    const sim = simConfig ? await startSimulator(simConfig) : undefined;
    if (sim) cleanups.push(() => sim.close());

    const env: Record<string, string> = {
      FUNCTIONS_WORKER_RUNTIME: 'node',
      AzureWebJobsStorage: azurite.connectionString,
      SLUICE_JOBS_QUEUE: process.env.SLUICE_JOBS_QUEUE ?? 'sluice-jobs',
      ...(sim && simConfig ? { SLUICE_ENDPOINTS: JSON.stringify(endpointsFromSimulator(sim, simConfig)) } : {}),
      ...opts.env,
    };
    for (const [name, value] of Object.entries(env)) {
      previousEnv[name] = process.env[name];
      process.env[name] = value;
    }
    resetAppCaches();

    let keys: { apiKey: string; adminKey: string } | undefined;
    if (opts.bootstrapKeys !== false) {
      keys = await bootstrapKeys(azurite.connectionString, env.SLUICE_TEAMS_TABLE ?? 'sluiceteams', laneCount(env));
    }

    const workers = opts.workers ?? 0;
    const workerProcesses: ChildProcess[] = [];
    /** A local host child process; `ready` resolves with the URL it printed (if it serves HTTP). */
    const spawnHost = (name: string, args: string[], http = false) => {
      // The environment as it is now: tests start a worker with extra settings (e.g. a fault hook) set for the spawn.
      const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, ...(opts.hostJson ? { SLUICE_HOST_JSON_OVERRIDE: JSON.stringify(opts.hostJson) } : {}) };
      // Crash injection exists only in processes the crash tests start with SLUICE_FAULT_CRASH_AT (local/faults.ts).
      const preload = childEnv.SLUICE_FAULT_CRASH_AT ? ['--require', join(PROJECT_ROOT, 'dist', 'local', 'faults.js')] : [];
      // --verbose: tests and benchmarks read the workers' debug lines (deliveries, failovers) from their output.
      const hostArgs = [...preload, join(PROJECT_ROOT, 'dist', 'local', 'host', 'cli.js'), ...args, '--root', PROJECT_ROOT, '--verbose'];
      const child = spawn(process.execPath, hostArgs, { cwd: PROJECT_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      let url = '';
      let routePrefix: string | undefined;
      const ready = new Promise<{ url: string; routePrefix: string }>((resolveReady, rejectReady) => {
        let pending = '';
        const onData = (chunk: Buffer) => {
          pending += chunk.toString();
          const lines = pending.split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) {
            log(`[${name}] ${line}`);
            const listening = /^Local Functions host listening on (\S+)/.exec(line);
            if (listening) url = listening[1]!;
            const banner = /^Functions \(local host, routePrefix "([^"]*)"/.exec(line);
            if (banner) routePrefix = banner[1]!;
            // The banner comes when the functions are registered; an HTTP host prints its URL just after.
            if (routePrefix !== undefined && (!http || url)) resolveReady({ url, routePrefix });
          }
        };
        child.stdout?.on('data', onData);
        child.stderr?.on('data', onData);
        child.once('exit', (code, signal) => {
          log(`[${name}] exited (code ${code}, signal ${signal})`);
          rejectReady(new Error(`${name} exited before it was ready (code ${code}); see stack.logs()`));
        });
      });
      ready.catch(() => undefined);
      return { child, ready };
    };
    const spawnWorker = () => spawnHost(`worker ${workerProcesses.length}`, ['--only', WORKER_FUNCTION, '--no-http']);

    let host: { url: string; routePrefix: string; close(): Promise<void> };
    if (opts.hostProcess) {
      const started = spawnHost('host', ['--port', '0', ...(workers > 0 ? ['--exclude', WORKER_FUNCTION] : [])], true);
      cleanups.push(() => stopChild(started.child));
      const { url, routePrefix } = await started.ready;
      host = { url, routePrefix, close: () => stopChild(started.child) };
    } else {
      host = await startFunctionsHost({
        rootDir: PROJECT_ROOT,
        port: 0,
        log,
        logLevel: 'Trace',
        hostJson: opts.hostJson,
        ...(workers > 0 ? { exclude: [WORKER_FUNCTION] } : {}),
      });
      cleanups.push(() => host.close());
    }

    cleanups.push(() => Promise.all(workerProcesses.map(stopChild)).then(() => undefined));
    const startWorkerProcess = () => {
      const started = spawnWorker();
      workerProcesses.push(started.child);
      return started;
    };
    await Promise.all(Array.from({ length: workers }, () => startWorkerProcess().ready));

    const baseUrl = [host.url, host.routePrefix].filter((s) => s !== '').join('/');
    if (keys) {
      stackKeys.set(baseUrl, keys.apiKey);
      cleanups.push(() => void stackKeys.delete(baseUrl));
    }
    return {
      baseUrl,
      ...(keys ?? {}),
      connectionString: azurite.connectionString,
      sim,
      azurite,
      env,
      workerProcesses,
      killWorker(i, signal = 'SIGTERM') {
        const child = workerProcesses[i];
        if (!child) throw new Error(`no worker ${i} (have ${workerProcesses.length})`);
        child.kill(signal);
      },
      startWorker: () => startWorkerProcess().child,
      logs: () => [...buffer],
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** The default member key of each running stack, by base URL (test helpers send it unless told otherwise). */
export const stackKeys = new Map<string, string>();

/** `{ 'api-key': … }` for a running stack's default key (empty when it has none): for raw fetch calls. */
export function authHeaders(baseUrl: string): Record<string, string> {
  const key = stackKeys.get(baseUrl);
  return key ? { 'api-key': key } : {};
}

/** A local team and admin, as `npm start` and the tests need them. The keys exist only in this Azurite. */
export async function bootstrapKeys(connectionString: string, table: string, lanes: number): Promise<{ apiKey: string; adminKey: string }> {
  const store = new TeamStore(TableClient.fromConnectionString(connectionString, table, { allowInsecureConnection: true }));
  const now = Date.now();
  const member = await ensureTeamWithKey(store, 'default', 'member', lanes, now, 'local member key');
  const admin = await ensureTeamWithKey(store, 'admin', 'admin', lanes, now, 'local admin key');
  return { apiKey: member.key, adminKey: admin.key };
}

/** SIGTERM (graceful drain), SIGKILL after 15 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolveExit) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolveExit();
    });
    child.kill('SIGTERM');
  });
}
