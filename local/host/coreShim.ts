// Provides `@azure/functions-core` — the module the Azure Functions Node.js worker injects into the process —
// so the unmodified `@azure/functions` library registers functions with this local host instead of a worker.
// The library requires it lazily (on the first app.* call), so installCoreShim() must run before any function
// file is loaded; everything in this file is process-wide because the library caches the module it got.
import Module from 'node:module';
import type {
  Disposable,
  FunctionCallback,
  FunctionMetadata,
  HookCallback,
  HookName,
  ProgrammingModel,
  RpcLogCategory,
  RpcLogLevel,
} from './coreTypes';

export const CORE_MODULE_NAME = '@azure/functions-core';
/** Key under which the shim sits in require.cache; not a real file, so it can never collide with one. */
const SHIM_CACHE_KEY = '\0sluice-local-host:@azure/functions-core';

export interface RegisteredFunction {
  metadata: FunctionMetadata;
  callback: FunctionCallback;
  /** Function file being loaded when the registration happened (undefined: registered outside a load). */
  sourceFile: string | undefined;
}

/** Receives system log lines the library emits through `coreApi.log` (warnings about misuse, etc.). */
export type SystemLogSink = (level: RpcLogLevel, category: RpcLogCategory, message: string) => void;

const registry = new Map<string, RegisteredFunction>();
const hooks: Record<HookName, Set<HookCallback>> = {
  appStart: new Set(),
  appTerminate: new Set(),
  preInvocation: new Set(),
  postInvocation: new Set(),
  log: new Set(),
};
let programmingModel: ProgrammingModel | undefined;
let loadingFile: string | undefined;
let systemLogSink: SystemLogSink = (level, _category, message) => {
  if (level === 'warning' || level === 'error' || level === 'critical') console.warn(`[functions] ${message}`);
};

function disposable(onDispose: () => void): Disposable {
  let disposed = false;
  return {
    dispose() {
      if (!disposed) onDispose();
      disposed = true;
    },
  };
}

/** The object `require('@azure/functions-core')` returns. */
export const coreApi = {
  version: '4.0.0-sluice-local',
  registerFunction(metadata: FunctionMetadata, callback: FunctionCallback): Disposable {
    if (registry.has(metadata.name)) {
      // Same message shape as the worker, which refuses duplicates too.
      throw new Error(`A function with name "${metadata.name}" has already been registered.`);
    }
    registry.set(metadata.name, { metadata, callback, sourceFile: loadingFile ?? callerFile() });
    return disposable(() => registry.delete(metadata.name));
  },
  setProgrammingModel(model: ProgrammingModel): void {
    programmingModel = model;
  },
  getProgrammingModel(): ProgrammingModel | undefined {
    return programmingModel;
  },
  registerHook(hookName: string, callback: HookCallback): Disposable {
    if (!(hookName in hooks)) {
      // The library turns a RangeError into "needs a newer host" for log hooks; mirror the worker's behaviour.
      throw Object.assign(new RangeError(`Unrecognized hook "${hookName}"`), { isAzureFunctionsSystemError: true });
    }
    const set = hooks[hookName as HookName];
    set.add(callback);
    return disposable(() => set.delete(callback));
  },
  log(level: RpcLogLevel, category: RpcLogCategory, message: string): void {
    systemLogSink(level, category, message);
  },
};

/**
 * The file that called app.* when a function file was required directly (e.g. imported by a test) rather than
 * through loadFunctionFile. Raw call sites give the generated .js path even when source maps are enabled.
 */
function callerFile(): string | undefined {
  const original = Error.prepareStackTrace;
  try {
    Error.prepareStackTrace = (_err, callSites) => callSites;
    const callSites = (new Error().stack as unknown as NodeJS.CallSite[] | undefined) ?? [];
    for (const site of callSites) {
      const file = site.getFileName();
      if (file && file !== __filename && !file.startsWith('node:') && !/[\\/]node_modules[\\/]/.test(file)) return file;
    }
    return undefined;
  } finally {
    Error.prepareStackTrace = original;
  }
}

let installed = false;

/** Makes `require('@azure/functions-core')` resolve to coreApi. Idempotent; also runs when this module loads. */
export function installCoreShim(): void {
  if (installed) return;
  installed = true;
  const shimModule = new Module(SHIM_CACHE_KEY);
  shimModule.filename = SHIM_CACHE_KEY;
  shimModule.loaded = true;
  shimModule.exports = coreApi;
  require.cache[SHIM_CACHE_KEY] = shimModule;
  // Module._resolveFilename is internal but stable since Node 0.x; it is what proxyquire & co. patch too.
  const moduleInternals = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const originalResolve = moduleInternals._resolveFilename;
  moduleInternals._resolveFilename = function resolveWithCoreShim(request: string, ...rest: unknown[]): string {
    if (request === CORE_MODULE_NAME) return SHIM_CACHE_KEY;
    return originalResolve.call(this, request, ...rest);
  };
}

/** Requires a function file, attributing the registrations it makes to it. Cached modules register nothing new. */
export function loadFunctionFile(file: string): void {
  const previous = loadingFile;
  loadingFile = file;
  try {
    require(file);
  } finally {
    loadingFile = previous;
  }
}

export function registeredFunctions(): RegisteredFunction[] {
  return [...registry.values()];
}

export function currentProgrammingModel(): ProgrammingModel {
  if (!programmingModel) {
    throw new Error('No programming model registered: no function file called app.* from @azure/functions.');
  }
  return programmingModel;
}

export function hookCallbacks(name: HookName): HookCallback[] {
  return [...hooks[name]];
}

export function setSystemLogSink(sink: SystemLogSink): void {
  systemLogSink = sink;
}

// Installed on import so that merely importing the local host (before any function file) is enough.
installCoreShim();
