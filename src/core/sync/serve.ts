/**
 * One synchronous API request, from a validated body to the answer: the exact cache (when the request may use it),
 * the wait for quota and the call (route.ts), the stream relay (stream.ts), and the usage row. The HTTP function
 * maps the returned SyncAnswer to a response; nothing here knows about HTTP beyond status codes and header names.
 */
import { overQuotaCeiling } from '../backpressure';
import { ValidationError, type SluiceError } from '../errors';
import type { CallRef, SyncUsage, UsageRow } from '../telemetry/usage';
import type { CachedAnswer } from './cacheContract';
import type { EndpointSettings } from '../endpoints';
import { chargeOfRequest, type SyncKind, type SyncRequest } from './request';
import { routeSync, type CallAttempt, type Routed } from './route';
import { relayStream, type StreamTally } from './stream';
import type { SyncDeps, UpstreamAnswer, UpstreamStream } from './types';

export interface SyncCall {
  id: string;
  team: string;
  request: SyncRequest;
  receivedAt: number;
  /** Longest quota wait for this request, ms (already capped). */
  maxWaitMs: number;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
  headers: { get(name: string): string | null };
}

export interface SyncServeDeps extends SyncDeps {
  /** The share of each deployment's quota the budget plans to use (1 when the budget is off). */
  safety: number;
  /** Builds the request's usage row (cost included). */
  usageRow(usage: SyncUsage, now: number): UsageRow;
  /** Stores a usage row. May throw; a failure is logged. */
  storeUsage(row: UsageRow): Promise<unknown>;
}

export type SyncAnswer =
  | { kind: 'json'; status: number; headers: Record<string, string>; body: string }
  | { kind: 'stream'; status: number; headers: Record<string, string>; body: AsyncIterable<Uint8Array> }
  | { kind: 'error'; status: number; headers: Record<string, string>; code: string; message: string; type: string; param?: string };

/**
 * Serves one request. Never throws for upstream or storage trouble (those become error answers or warnings); throws
 * ValidationError for a malformed x-sluice-cache header.
 */
export async function serveSync(deps: SyncServeDeps, call: SyncCall): Promise<SyncAnswer> {
  const { request } = call;
  const tokens = chargeOfRequest(request);
  const tpms = deps.endpoints.filter((e) => e.model === request.model).map((e) => e.tpm);
  const ceiling = overQuotaCeiling(tokens, tpms, deps.safety);
  if (ceiling !== undefined) {
    return refuse(400, 'exceeds_deployment_quota', `this request is charged ${tokens} tokens (${request.promptTokens} prompt + ${request.maxOutputTokens} max output), more than any deployment of "${request.model}" admits per minute (${ceiling}); lower max_tokens or split the input`, 'invalid_request_error', request.kind === 'chat' ? 'max_tokens' : 'input');
  }
  const version = configuredVersion(deps, request.model);
  const ttlMs = deps.cache && !request.stream ? await cachePolicy(deps, call) : undefined;
  if (ttlMs !== undefined) {
    const hit = await deps.cache!.lookup(call.team, request.model, version, request.kind, request.clientBody, deps.clock.now());
    if (hit) return cacheHit(deps, call, hit);
  }
  const deadline = call.receivedAt + call.maxWaitMs;
  const route = { id: call.id, team: call.team, model: request.model, tokens, deadline, signal: call.signal };
  const opts = (timeoutMs: number) => ({ requestId: call.id, timeoutMs, signal: call.signal });
  if (request.stream) {
    const routed = await routeSync(deps, route, (e) => deps.upstream.stream(e, request.upstreamBody, opts(deps.settings.callTimeoutMs)));
    if (routed.kind !== 'answered') return notAnswered(deps, call, routed);
    return streamAnswer(deps, call, routed);
  }
  const send = request.kind === 'chat' ? deps.upstream.complete.bind(deps.upstream) : deps.upstream.embed.bind(deps.upstream);
  const routed = await routeSync(deps, route, (e) => send(e, request.upstreamBody, opts(deps.settings.callTimeoutMs)));
  if (routed.kind !== 'answered') return notAnswered(deps, call, routed);
  return jsonAnswer(deps, call, routed, ttlMs, version);
}

function refuse(status: number, code: string, message: string, type: string, param?: string, headers: Record<string, string> = {}): SyncAnswer {
  return { kind: 'error', status, code, message, type, ...(param !== undefined ? { param } : {}), headers };
}

/** The model version an endpoint's settings name ('' when none). */
const versionOf = (e: EndpointSettings): string => (e as { modelVersion?: string }).modelVersion ?? '';

/** The model version the configuration names for the model's deployments ('' when none does): the cache key's. */
function configuredVersion(deps: SyncDeps, model: string): string {
  return deps.endpoints.filter((e) => e.model === model).map(versionOf).find(Boolean) ?? '';
}

/**
 * The answer's model version: a chat answer's `model` names it (e.g. gpt-4o-mini-2024-07-18); an embeddings answer
 * names only the model, so the answering endpoint's configured version wins there.
 */
function answerVersion(kind: SyncKind, endpoint: EndpointSettings, reported: unknown): string {
  const fromAnswer = typeof reported === 'string' ? reported : '';
  return kind === 'embeddings' ? versionOf(endpoint) || fromAnswer : fromAnswer || versionOf(endpoint);
}

async function cachePolicy(deps: SyncServeDeps, call: SyncCall): Promise<number | undefined> {
  try {
    return await deps.cache!.policy(call.team, call.headers, deps.clock.now());
  } catch (err) {
    // A malformed x-sluice-cache header is the client's to fix (400); anything else only skips the cache.
    if (err instanceof ValidationError) throw err;
    deps.log('warn', `[sync=${call.id}] cache policy unavailable; not using the cache: ${(err as Error)?.message ?? err}`);
    return undefined;
  }
}

function baseHeaders(call: SyncCall, extra: Record<string, string>): Record<string, string> {
  return { 'x-sluice-request-id': call.id, 'x-sluice-charge-tokens': String(chargeOfRequest(call.request)), ...extra };
}

const callRefs = (calls: CallAttempt[]): CallRef[] => calls.map((c) => [c.region, c.deployment, c.status]);
const throttlesOf = (calls: CallAttempt[]) => calls.filter((c) => c.status === 429).length;

async function record(deps: SyncServeDeps, call: SyncCall, usage: SyncUsage): Promise<UsageRow> {
  const row = deps.usageRow(usage, deps.clock.now());
  try {
    await deps.storeUsage(row);
  } catch (err) {
    deps.log('warn', `[sync=${call.id}] usage row not written: ${(err as Error)?.message ?? err}`);
  }
  deps.log('info', `[sync=${call.id}] ${call.request.kind} team=${call.team} model=${call.request.model} ${usage.status}${usage.abandoned ? ' (abandoned)' : ''}${usage.cacheHit ? ' (cache hit)' : ''} region=${row.region} wait=${row.queueWaitMs ?? '-'}ms total=${row.totalLatencyMs}ms tokens=${usage.promptTokens}+${usage.completionTokens}`);
  return row;
}

function usageBase(call: SyncCall, now: number): Omit<SyncUsage, 'status' | 'errorCode' | 'calls' | 'throttles'> {
  return {
    requestId: call.id,
    team: call.team,
    model: call.request.model,
    modelVersion: '',
    finishReason: '',
    promptTokens: 0,
    cachedTokens: 0,
    completionTokens: 0,
    reservedOutputTokens: call.request.maxOutputTokens,
    estimatedPromptTokens: call.request.promptTokens,
    receivedAt: call.receivedAt,
    completedAt: now,
    abandoned: false,
    cacheHit: false,
  };
}

/** Deadline, final error or a client gone before the answer: nothing was charged; the row says why. */
async function notAnswered(deps: SyncServeDeps, call: SyncCall, routed: Exclude<Routed<unknown>, { kind: 'answered' }>): Promise<SyncAnswer> {
  const now = deps.clock.now();
  const calls = routed.calls;
  const errorCode = routed.kind === 'deadline' ? 'quota_wait_exceeded' : routed.kind === 'gone' ? 'client_closed' : routed.error.code;
  await record(deps, call, { ...usageBase(call, now), status: 'failed', errorCode, calls: callRefs(calls), throttles: throttlesOf(calls) });
  if (routed.kind === 'deadline') {
    const retryAfterS = Math.max(1, Math.ceil((routed.retryAt - now) / 1000));
    return refuse(
      429,
      'quota_wait_exceeded',
      `No quota for "${call.request.model}" within this request's wait of ${call.maxWaitMs} ms (x-sluice-max-wait-ms); nothing was charged. Retry after ${retryAfterS} s.`,
      'rate_limit_error',
      undefined,
      baseHeaders(call, { 'retry-after': String(retryAfterS), 'x-sluice-quota-wait-ms': String(now - call.receivedAt) }),
    );
  }
  if (routed.kind === 'gone') return refuse(499, 'client_closed', 'The client closed the request.', 'invalid_request_error');
  return errorAnswer(call, routed.error);
}

function errorAnswer(call: SyncCall, error: SluiceError): SyncAnswer {
  const status = error.status >= 400 && error.status < 600 ? error.status : 502;
  const type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error';
  const retry: Record<string, string> = error.retryable ? { 'retry-after': String(Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000))) } : {};
  return refuse(status, error.code, error.message, type, undefined, baseHeaders(call, retry));
}

function answeredHeaders(call: SyncCall, routed: Extract<Routed<unknown>, { kind: 'answered' }>, modelVersion: string): Record<string, string> {
  return baseHeaders(call, {
    'x-sluice-region': routed.endpoint.region,
    'x-sluice-deployment': routed.endpoint.deployment,
    'x-sluice-quota-wait-ms': String(Math.max(0, routed.admittedAt - call.receivedAt)),
    ...(modelVersion ? { 'x-sluice-model-version': modelVersion } : {}),
  });
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

async function jsonAnswer(deps: SyncServeDeps, call: SyncCall, routed: Extract<Routed<UpstreamAnswer>, { kind: 'answered' }>, ttlMs: number | undefined, keyVersion: string): Promise<SyncAnswer> {
  const now = deps.clock.now();
  const { body } = routed.answer;
  const usage = (body.usage ?? {}) as Record<string, unknown>;
  const choices = Array.isArray(body.choices) ? (body.choices as Array<Record<string, unknown>>) : [];
  const modelVersion = answerVersion(call.request.kind, routed.endpoint, body.model);
  const promptTokens = num(usage.prompt_tokens);
  const completionTokens = num(usage.completion_tokens);
  const row = await record(deps, call, {
    ...usageBase(call, now),
    region: routed.endpoint.region,
    deployment: routed.endpoint.deployment,
    modelVersion,
    status: 'succeeded',
    errorCode: '',
    finishReason: [...new Set(choices.map((c) => String(c.finish_reason ?? '')).filter(Boolean))].join(','),
    promptTokens,
    cachedTokens: num((usage.prompt_tokens_details as Record<string, unknown> | undefined)?.cached_tokens),
    completionTokens,
    admittedAt: routed.admittedAt,
    modelLatencyMs: now - routed.started,
    calls: callRefs(routed.calls),
    throttles: throttlesOf(routed.calls),
  });
  const text = JSON.stringify(body);
  if (ttlMs !== undefined) {
    const answer: CachedAnswer = { body: text, promptTokens, completionTokens, costUsd: row.costUsd, modelVersion, storedAt: now };
    await deps.cache!.save(call.team, call.request.model, keyVersion, call.request.kind, call.request.clientBody, answer, ttlMs, now);
  }
  const headers = answeredHeaders(call, routed, modelVersion);
  if (row.costUsd !== null) headers['x-sluice-cost-usd'] = row.costUsd.toFixed(8);
  if (ttlMs !== undefined) headers['x-sluice-cache'] = 'miss';
  return { kind: 'json', status: 200, headers: { 'content-type': 'application/json', ...headers }, body: text };
}

async function cacheHit(deps: SyncServeDeps, call: SyncCall, hit: CachedAnswer): Promise<SyncAnswer> {
  const now = deps.clock.now();
  let finishReason = '';
  try {
    const choices = (JSON.parse(hit.body) as { choices?: Array<{ finish_reason?: unknown }> }).choices ?? [];
    finishReason = [...new Set(choices.map((c) => String(c.finish_reason ?? '')).filter(Boolean))].join(',');
  } catch {
    // an unreadable stored body still answers as stored
  }
  await record(deps, call, {
    ...usageBase(call, now),
    modelVersion: hit.modelVersion,
    status: 'succeeded',
    errorCode: '',
    finishReason,
    promptTokens: hit.promptTokens,
    completionTokens: hit.completionTokens,
    admittedAt: now,
    calls: [],
    throttles: 0,
    cacheHit: true,
    savedUsd: hit.costUsd,
  });
  return {
    kind: 'json',
    status: 200,
    headers: {
      'content-type': 'application/json',
      ...baseHeaders(call, { 'x-sluice-cache': 'hit', 'x-sluice-quota-wait-ms': '0', 'x-sluice-charge-tokens': '0', 'x-sluice-cost-usd': (0).toFixed(8) }),
      ...(hit.modelVersion ? { 'x-sluice-model-version': hit.modelVersion } : {}),
    },
    body: hit.body,
  };
}

/**
 * The stream's headers are out; its bytes follow as they arrive. Its usage row is written once it ends, without
 * holding the client's stream open for the write (a failed write is logged, as for any answer).
 */
function streamAnswer(deps: SyncServeDeps, call: SyncCall, routed: Extract<Routed<UpstreamStream>, { kind: 'answered' }>): SyncAnswer {
  const onEnd = (tally: StreamTally) => {
    written(tally).catch((err) => deps.log('warn', `[sync=${call.id}] usage row not written: ${(err as Error)?.message ?? err}`));
  };
  const written = async (tally: StreamTally) => {
    const now = deps.clock.now();
    // A deployment that keeps breaking its streams is unhealthy: the breaker counts each break as a server error (a
    // run of them opens it; one does not).
    if (tally.outcome === 'upstream_error') await deps.health.report(routed.ref, { ok: false, kind: '5xx', message: tally.error ?? 'stream broke' }, now);
    const reported = tally.usage;
    const status = tally.outcome === 'completed' ? 'succeeded' : 'failed';
    await record(deps, call, {
      ...usageBase(call, now),
      region: routed.endpoint.region,
      deployment: routed.endpoint.deployment,
      modelVersion: answerVersion('chat', routed.endpoint, tally.modelVersion),
      status,
      errorCode: tally.outcome === 'completed' ? '' : tally.outcome === 'abandoned' ? 'client_closed' : 'upstream_stream_error',
      finishReason: tally.finishReason,
      // A stream cut short has no usage chunk: the prompt was processed all the same, as Azure counted it at admission.
      promptTokens: num(reported?.prompt_tokens) || call.request.promptTokens,
      cachedTokens: num(reported?.prompt_tokens_details?.cached_tokens),
      completionTokens: tally.completionTokens,
      admittedAt: routed.admittedAt,
      ...(tally.firstTokenAt !== undefined ? { firstTokenAt: tally.firstTokenAt } : {}),
      modelLatencyMs: now - routed.started,
      calls: callRefs(routed.calls),
      throttles: throttlesOf(routed.calls),
      abandoned: tally.outcome === 'abandoned',
    });
  };
  const body = relayStream(routed.answer.body, { includeUsage: call.request.includeUsage, now: () => deps.clock.now(), aborted: () => call.signal.aborted, onEnd });
  return {
    kind: 'stream',
    status: 200,
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...answeredHeaders(call, routed, '') },
    body,
  };
}
