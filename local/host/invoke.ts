// Runs one invocation exactly the way the Azure Functions Node.js worker does: programming model →
// invocation model → getArguments → preInvocation hooks → invokeFunction → postInvocation hooks → getResponse.
import { randomUUID } from 'node:crypto';
import { currentProgrammingModel, hookCallbacks, type RegisteredFunction } from './coreShim';
import type { CoreInvocationContext, HookCallback, RpcInvocationResponse, RpcLogLevel, RpcTypedData } from './coreTypes';
import { fromRpcLevel, type HostLog } from './logging';

/** Shared by all app-level hooks (appStart/appTerminate) and visible to invocation hooks, like in the worker. */
export const appHookData: Record<string, unknown> = {};

export interface InvocationInput {
  /** Name of the trigger binding (the key of the trigger in metadata.bindings). */
  triggerBindingName: string;
  triggerData: RpcTypedData;
  triggerMetadata?: Record<string, RpcTypedData>;
  /** Why the function ran, for the "Executing" log line (e.g. "New queue message detected on 'jobs'."). */
  reason: string;
  invocationId?: string;
}

export interface InvocationOutcome {
  invocationId: string;
  response: RpcInvocationResponse;
}

const LEVEL_LABEL: Record<RpcLogLevel, string> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  information: 'INFO',
  warning: 'WARN',
  error: 'ERROR',
  critical: 'CRIT',
  none: '',
};

/** `[time] name`: the start of every line about a function. */
export function logPrefix(functionName: string): string {
  return `[${new Date().toISOString()}] ${functionName}`;
}

export function triggerBindingName(fn: RegisteredFunction): string {
  const entry = Object.entries(fn.metadata.bindings).find(([, b]) => /trigger$/i.test(String(b.type ?? '')));
  if (!entry) throw new Error(`function "${fn.metadata.name}" has no trigger binding`);
  return entry[0];
}

async function runHooks(name: 'preInvocation' | 'postInvocation', context: Record<string, unknown>): Promise<void> {
  for (const callback of hookCallbacks(name) as HookCallback[]) await callback(context);
}

/**
 * Invokes the function; rejects with the handler's error when it throws (the caller decides retry/500).
 * Its own logs go to `Function.<name>.User`; the Executing/Executed lines, which carry the invocation id, to
 * `Function.<name>` (Information, Error when the run failed).
 */
export async function invokeFunction(fn: RegisteredFunction, input: InvocationInput, log: HostLog): Promise<InvocationOutcome> {
  const invocationId = input.invocationId ?? randomUUID();
  const name = fn.metadata.name;
  const hostCategory = `Function.${name}`;
  const userCategory = `Function.${name}.User`;
  const coreCtx: CoreInvocationContext = {
    invocationId,
    request: {
      invocationId,
      functionId: fn.metadata.functionId ?? name,
      inputData: [{ name: input.triggerBindingName, data: input.triggerData }],
      triggerMetadata: input.triggerMetadata ?? {},
    },
    metadata: fn.metadata,
    log(level, category, message) {
      if (level === 'none') return;
      if (category === 'system') log(hostCategory, fromRpcLevel(level), `${logPrefix(name)} [system] ${LEVEL_LABEL[level]}: ${message}`);
      else log(userCategory, fromRpcLevel(level), `${logPrefix(name)} ${LEVEL_LABEL[level]}: ${message}`);
    },
  };

  const started = Date.now();
  log(hostCategory, 'Information', `${logPrefix(name)} Executing 'Functions.${name}' (Reason='${input.reason}', Id=${invocationId})`);
  try {
    const model = currentProgrammingModel().getInvocationModel(coreCtx);
    const { context, inputs: initialInputs } = await model.getArguments();
    const hookData: Record<string, unknown> = {};
    const preContext: Record<string, unknown> = {
      hookData,
      appHookData,
      invocationContext: context,
      functionCallback: fn.callback,
      inputs: initialInputs,
    };
    coreCtx.state = 'preInvocationHooks';
    await runHooks('preInvocation', preContext);
    coreCtx.state = 'invocation';

    const inputs = preContext.inputs as unknown[];
    const callback = preContext.functionCallback as RegisteredFunction['callback'];
    const postContext: Record<string, unknown> = { hookData, appHookData, invocationContext: context, inputs, result: null, error: null };
    try {
      postContext.result = await model.invokeFunction(context, inputs, callback);
    } catch (err) {
      postContext.error = err;
    }
    try {
      coreCtx.state = 'postInvocationHooks';
      await runHooks('postInvocation', postContext);
    } finally {
      coreCtx.state = undefined;
    }
    if (postContext.error) throw postContext.error;

    const response = await model.getResponse(context, postContext.result);
    log(hostCategory, 'Information', `${logPrefix(name)} Executed 'Functions.${name}' (Succeeded, Id=${invocationId}, Duration=${Date.now() - started}ms)`);
    return { invocationId, response };
  } catch (err) {
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(hostCategory, 'Error', `${logPrefix(name)} Executed 'Functions.${name}' (Failed, Id=${invocationId}, Duration=${Date.now() - started}ms) ${detail}`);
    throw err;
  }
}
