/**
 * The synchronous OpenAI-compatible API: POST /api/v1/chat/completions and /api/v1/embeddings (the OpenAI client's
 * paths under baseURL <sluice>/api/v1), and the Azure-style /api/openai/deployments/{model}/chat/completions and
 * …/embeddings (the AzureOpenAI client's, under endpoint <sluice>/api; {model} names Sluice's logical model).
 * authenticate → parse → core/sync/serve (cache, quota wait, call, relay, usage) → the answer, streamed or JSON.
 */
import { randomUUID } from 'node:crypto';
import { ReadableStream } from 'node:stream/web';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { ValidationError } from '../core/errors';
import { parseChatRequest, parseEmbeddingsRequest, type SyncKind } from '../core/sync/request';
import { serveSync, type SyncAnswer } from '../core/sync/serve';
import { authorize } from '../runtime/auth';
import { errorBody, errorResponse, json, readJsonBody } from '../runtime/http';
import { getServices } from '../runtime/services';
import { syncDeps } from '../runtime/syncServices';
import { clientGone, watchProxiedRequests } from '../runtime/syncDisconnect';
import { teamRefusalNow } from '../runtime/teamLimits';

// Streamed answers need the library's HTTP streaming, which is one switch for the whole app: every HTTP function's
// request and response then pass through the library's in-process proxy (the local host speaks it too).
app.setup({ enableHttpStream: true });
watchProxiedRequests();

const MAX_WAIT_HEADER = 'x-sluice-max-wait-ms';

async function serve(kind: SyncKind, request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const receivedAt = Date.now();
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const team = auth.principal.team;
    const refused = teamRefusalNow(team);
    if (refused) return json(refused.status, errorBody(refused.code, refused.message, refused.param, refused.type));
    const { config } = getServices();
    const body = await readJsonBody(request, config.maxRequestBytes);
    const served = [...new Set(config.endpoints.map((e) => e.model))];
    const pathModel = request.params.model;
    const parsed =
      kind === 'chat'
        ? parseChatRequest(body, { models: config.models, served, ...(pathModel ? { pathModel } : {}) })
        : parseEmbeddingsRequest(body, { served, ...(pathModel ? { pathModel } : {}) });
    const maxWaitMs = maxWaitOf(request.headers.get(MAX_WAIT_HEADER), config.sync);
    const id = `sync_${randomUUID().replace(/-/g, '')}`;
    // One signal for both ways a client leaves: the connection drops, or the response body is cancelled.
    const stop = new AbortController();
    const gone = clientGone(context.invocationId);
    if (gone.aborted) stop.abort();
    else gone.addEventListener('abort', () => stop.abort(), { once: true });
    context.debug(`[sync=${id}] ${kind} team=${team.id} model=${parsed.model} stream=${parsed.stream} charge=${parsed.promptTokens + parsed.maxOutputTokens} max_wait=${maxWaitMs}ms`);
    const answer = await serveSync(syncDeps(context), { id, team: team.id, request: parsed, receivedAt, maxWaitMs, signal: stop.signal, headers: request.headers });
    return toResponse(answer, stop);
  } catch (err) {
    return errorResponse(err, context);
  }
}

/** The request's quota wait: its header (an integer of ms, capped), else the configured default. */
function maxWaitOf(header: string | null, settings: { defaultMaxWaitMs: number; maxWaitCapMs: number }): number {
  if (header === null || header.trim() === '') return settings.defaultMaxWaitMs;
  const ms = Number(header.trim());
  if (!Number.isInteger(ms) || ms < 0) throw new ValidationError(`${MAX_WAIT_HEADER}: expected a whole number of milliseconds ≥ 0, got "${header}"`, MAX_WAIT_HEADER);
  return Math.min(ms, settings.maxWaitCapMs);
}

function toResponse(answer: SyncAnswer, stop: AbortController): HttpResponseInit {
  switch (answer.kind) {
    case 'error':
      return json(answer.status, errorBody(answer.code, answer.message, answer.param, answer.type), answer.headers);
    case 'json':
      return { status: answer.status, headers: answer.headers, body: answer.body };
    case 'stream': {
      const events = answer.body[Symbol.asyncIterator]();
      // Pulled one event batch at a time, so nothing is buffered ahead of the client; a cancelled body is a client
      // that left: the upstream call is aborted at once.
      const body = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            const next = await events.next();
            if (next.done) controller.close();
            else controller.enqueue(next.value);
          },
          async cancel() {
            stop.abort();
            await events.return?.();
          },
        },
        { highWaterMark: 0 },
      );
      return { status: answer.status, headers: answer.headers, body };
    }
  }
}

const chat = (request: HttpRequest, context: InvocationContext) => serve('chat', request, context);
const embeddings = (request: HttpRequest, context: InvocationContext) => serve('embeddings', request, context);

app.http('chatCompletions', { methods: ['POST'], route: 'v1/chat/completions', authLevel: 'anonymous', handler: chat });
app.http('embeddings', { methods: ['POST'], route: 'v1/embeddings', authLevel: 'anonymous', handler: embeddings });
app.http('azureChatCompletions', { methods: ['POST'], route: 'openai/deployments/{model}/chat/completions', authLevel: 'anonymous', handler: chat });
app.http('azureEmbeddings', { methods: ['POST'], route: 'openai/deployments/{model}/embeddings', authLevel: 'anonymous', handler: embeddings });
