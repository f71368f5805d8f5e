// A local Azure Functions host without Core Tools: loads the app's real function files, serves their HTTP
// triggers, polls their queue triggers and runs their timers, honouring host.json and local.settings.json.
import { resolve } from 'node:path';
import { hookCallbacks, installCoreShim, loadFunctionFile, registeredFunctions, setSystemLogSink, type RegisteredFunction } from './coreShim';
import { functionFilesFromPackageJson } from './functionFiles';
import { readHostJson } from './hostJson';
import { startHttpServer, type RunningHttpServer } from './httpServer';
import { httpStreamUri } from './httpStream';
import { appHookData, triggerBindingName } from './invoke';
import { filteredLog, fromRpcLevel, logLevelRulesFromSettings, mergeLogLevelRules, type LogLevel } from './logging';
import { QueueListener } from './queueListener';
import { loadLocalSettings, resolveAppSettings, storageConnectionString } from './settings';
import { TimerListener } from './timerListener';

export interface FunctionsHostOptions {
  /** Project root (host.json, package.json, local.settings.json). @default process.cwd() */
  rootDir?: string;
  /** HTTP port on 127.0.0.1; 0 = ephemeral. @default FUNCTIONS_HTTP_PORT, else local.settings.json Host.LocalHttpPort, else 7071 */
  port?: number;
  /** Names of the functions to run. @default all registered functions */
  only?: string[];
  /** Names of functions not to run (applied after `only`). @default none */
  exclude?: string[];
  /** Serve HTTP triggers. @default true */
  http?: boolean;
  /** Poll queue triggers. @default true */
  queues?: boolean;
  /** Run timer triggers. @default true */
  timers?: boolean;
  /** Receives the log lines that pass the levels (host and function logs). @default console.log */
  log?: (line: string) => void;
  /**
   * Lowest level passed to `log` in every category (what --verbose and --log-level set), over host.json.
   * @default per category from host.json logging.logLevel and AzureFunctionsJobHost__logging__logLevel__* settings:
   * function logs from Information, the host's own lines (Executing/Executed, polling) from Warning (see logging.ts)
   */
  logLevel?: LogLevel;
  /** Function files to load instead of package.json `main` (absolute or relative to rootDir); for tests. */
  functionFiles?: string[];
  /** Merged over host.json (deeply; this wins); for tests, e.g. a short visibilityTimeout. */
  hostJson?: object;
}

export interface RunningFunctionsHost {
  /** http://127.0.0.1:PORT, or '' when HTTP is off. */
  url: string;
  /** Names of the functions this host runs. */
  functions: string[];
  /** host.json routePrefix in effect ('' = none): HTTP routes live under `${url}/${routePrefix}`. */
  routePrefix: string;
  /** Stops polling and timers, waits for in-flight invocations, closes the HTTP server. Idempotent. */
  close(): Promise<void>;
}

export { type RegisteredFunction } from './coreShim';
export { LOG_LEVELS, parseLogLevel, type LogLevel } from './logging';

const DEFAULT_HTTP_PORT = 7071;

function triggerType(fn: RegisteredFunction): string {
  return String(fn.metadata.bindings[triggerBindingName(fn)]!.type).toLowerCase();
}

/** A name, or a prefix ending in `*` ("worker*" is every queue lane's worker). */
function matches(pattern: string, name: string): boolean {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

function selectFunctions(files: string[], only: string[] | undefined, exclude: string[] = []): RegisteredFunction[] {
  const fileSet = new Set(files);
  const loaded = registeredFunctions().filter((fn) => fn.sourceFile !== undefined && fileSet.has(fn.sourceFile));
  const unknown = [...(only ?? []), ...exclude].filter((p) => !loaded.some((fn) => matches(p, fn.metadata.name)));
  if (unknown.length) {
    throw new Error(`unknown function(s) ${unknown.join(', ')}; registered: ${loaded.map((fn) => fn.metadata.name).join(', ')}`);
  }
  return loaded.filter((fn) => (!only || only.some((p) => matches(p, fn.metadata.name))) && !exclude.some((p) => matches(p, fn.metadata.name)));
}

function describe(fn: RegisteredFunction, url: string, routePrefix: string): string {
  const binding = fn.metadata.bindings[triggerBindingName(fn)]!;
  switch (triggerType(fn)) {
    case 'httptrigger': {
      const methods = Array.isArray(binding.methods) ? binding.methods.join(',') : 'ALL';
      const route = [routePrefix, String(binding.route || fn.metadata.name)].filter((s) => s).join('/');
      return `${fn.metadata.name}: [${methods}] ${url || '(http off)'}/${route}`;
    }
    case 'queuetrigger':
      return `${fn.metadata.name}: queueTrigger (${resolveAppSettings(String(binding.queueName)).toLowerCase()})`;
    case 'timertrigger':
      return `${fn.metadata.name}: timerTrigger (${resolveAppSettings(String(binding.schedule))})`;
    default:
      return `${fn.metadata.name}: ${String(binding.type)} (not supported locally; skipped)`;
  }
}

/** The streaming proxy of an app that enabled HTTP streaming (app.setup), for the HTTP server. */
async function httpStreamOption(): Promise<{ streamUri?: string }> {
  const streamUri = await httpStreamUri();
  return streamUri ? { streamUri } : {};
}

export async function startFunctionsHost(opts: FunctionsHostOptions = {}): Promise<RunningFunctionsHost> {
  const rootDir = resolve(opts.rootDir ?? process.cwd());
  const sink = opts.log ?? ((line: string) => console.log(line));
  const localSettings = loadLocalSettings(rootDir);
  const host = readHostJson(rootDir, opts.hostJson);
  const log = filteredLog(sink, mergeLogLevelRules(host.logLevels, logLevelRulesFromSettings()), opts.logLevel);

  installCoreShim();
  setSystemLogSink((level, _category, message) => {
    if (level !== 'none') log('Host.General', fromRpcLevel(level), `[${new Date().toISOString()}] host ${level}: ${message}`);
  });
  const files = opts.functionFiles?.map((f) => resolve(rootDir, f)) ?? functionFilesFromPackageJson(rootDir);
  for (const file of files) {
    try {
      loadFunctionFile(file);
    } catch (err) {
      throw new Error(`loading function file ${file} failed: ${(err as Error).stack ?? String(err)}`);
    }
  }
  const functions = selectFunctions(files, opts.only, opts.exclude);
  if (functions.length === 0 && !opts.only) {
    throw new Error(
      `no functions were registered by ${files.join(', ')}. If a function file was imported before the local host, ` +
        '@azure/functions switched to "test mode": import local/host (or call startFunctionsHost) first.',
    );
  }
  for (const callback of hookCallbacks('appStart')) await callback({ hookData: {}, appHookData, functionAppDirectory: rootDir });

  const queueListeners: QueueListener[] = [];
  const timerListeners: TimerListener[] = [];
  let httpServer: RunningHttpServer | undefined;
  const stopAll = async () => {
    // Tell the app it is being drained (as SIGTERM does on an Azure instance): Sluice's worker then parks the jobs
    // it holds for quota instead of sitting out their wait (src/runtime/services.ts).
    process.emit('sluice:host-stopping' as never);
    await Promise.allSettled([...queueListeners.map((l) => l.stop()), ...timerListeners.map((t) => t.stop())]);
    await httpServer?.close();
  };

  try {
    if (opts.http !== false) {
      const envPort = process.env.FUNCTIONS_HTTP_PORT ? Number(process.env.FUNCTIONS_HTTP_PORT) : undefined;
      httpServer = await startHttpServer({
        port: opts.port ?? envPort ?? localSettings.localHttpPort ?? DEFAULT_HTTP_PORT,
        routePrefix: host.routePrefix,
        functions: functions.filter((fn) => triggerType(fn) === 'httptrigger'),
        log,
        functionsKey: process.env.SLUICE_LOCAL_FUNCTIONS_KEY || undefined,
        ...(await httpStreamOption()),
      });
    }
    for (const fn of functions) {
      const bindingName = triggerBindingName(fn);
      const binding = fn.metadata.bindings[bindingName]!;
      const type = triggerType(fn);
      if (type === 'queuetrigger' && opts.queues !== false) {
        queueListeners.push(
          new QueueListener({
            fn,
            bindingName,
            queueName: resolveAppSettings(String(binding.queueName)).toLowerCase(),
            connectionString: storageConnectionString(binding.connection as string | undefined),
            settings: host.queues,
            log,
          }),
        );
      } else if (type === 'timertrigger' && opts.timers !== false) {
        timerListeners.push(
          new TimerListener({ fn, bindingName, schedule: resolveAppSettings(String(binding.schedule)), runOnStartup: binding.runOnStartup === true, log }),
        );
      }
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  queueListeners.forEach((l) => l.start());
  timerListeners.forEach((t) => t.start());

  const url = httpServer?.url ?? '';
  // Always shown, whatever the levels: it says what runs (and local/stack.ts waits for it).
  sink(`Functions (local host, routePrefix "${host.routePrefix}"):\n${functions.map((fn) => `  ${describe(fn, url, host.routePrefix)}`).join('\n')}`);

  let closing: Promise<void> | undefined;
  return {
    url,
    functions: functions.map((fn) => fn.metadata.name),
    routePrefix: host.routePrefix,
    close() {
      closing ??= (async () => {
        await stopAll();
        for (const callback of hookCallbacks('appTerminate')) await callback({ hookData: {}, appHookData });
      })();
      return closing;
    },
  };
}
