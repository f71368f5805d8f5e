/**
 * OpenAI-compatible Batches API under /api/v1/batches: create, retrieve, cancel, list. Creating records a
 * `validating` batch and sends one driver message; the queue-triggered batchDriver does the work, so this
 * answers at once whatever the file size.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { prepareBatch, requestCancel } from '../core/batch/api';
import { BATCH_ID_PATTERN, toBatchView, type BatchRecord } from '../core/batch/model';
import { errorBody, errorResponse, json, readJsonBody } from '../runtime/http';
import { getBatchServices, getServices } from '../runtime/services';
import { authorize, canSee } from '../runtime/auth';
import { teamRefusalNow } from '../runtime/teamLimits';

const notFound = (id: string) => json(404, errorBody('batch_not_found', `No batch found with id '${id}'.`, 'id'));

/** Live request_counts while lines run, from the counters kept as lines end. */
async function withLiveCounts(batch: BatchRecord): Promise<BatchRecord> {
  if (batch.status !== 'in_progress' && batch.status !== 'cancelling') return batch;
  return { ...batch, counts: await getBatchServices().batches.countLines(batch) };
}

export async function createBatch(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const { team } = auth.principal;
    // The rule POST /v1/jobs applies: a team stopped at its budget (or disabled) starts no batch.
    const refusal = teamRefusalNow(team);
    if (refusal) return json(refusal.status, errorBody(refusal.code, refusal.message, refusal.param, refusal.type));
    const { files, batches, settings, poke } = getBatchServices();
    const body = await readJsonBody(request, getServices().config.maxRequestBytes);
    const batch = await prepareBatch(body, { now: Date.now(), completionWindowS: settings.completionWindowS, getFile: (id) => files.get(id), team: team.id, lane: team.lane });
    await batches.create(batch);
    await batches.setActive(batch.id, true);
    await poke(batch.id);
    context.debug(`[batch=${batch.id}] created from ${batch.inputFileId} (team ${batch.team})`);
    return json(200, toBatchView(batch));
  } catch (err) {
    return errorResponse(err, context);
  }
}

export async function getBatch(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const id = request.params.id ?? '';
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const stored = BATCH_ID_PATTERN.test(id) ? await getBatchServices().batches.get(id) : undefined;
    return stored && canSee(auth.principal, stored.batch.team) ? json(200, toBatchView(await withLiveCounts(stored.batch))) : notFound(id);
  } catch (err) {
    return errorResponse(err, context);
  }
}

export async function cancelBatch(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const id = request.params.id ?? '';
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const { batches, poke } = getBatchServices();
    const owned = BATCH_ID_PATTERN.test(id) ? await batches.get(id) : undefined;
    if (!owned || !canSee(auth.principal, owned.batch.team)) return notFound(id);
    const batch = await requestCancel(batches, id, Date.now());
    if (!batch) return notFound(id);
    await poke(id);
    context.debug(`[batch=${id}] cancel requested (status ${batch.status})`);
    return json(200, toBatchView(await withLiveCounts(batch)));
  } catch (err) {
    return errorResponse(err, context);
  }
}

export async function listBatches(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    // As OpenAI: 1 to 100, default 20; `after` is the last id of the previous page.
    const limit = Math.min(100, Math.max(1, Number(request.query.get('limit') ?? 20) || 20));
    const after = request.query.get('after') || undefined;
    // Admins see every team's batches; anyone else reads only their team's index partition.
    const team = auth.principal.role === 'admin' ? undefined : auth.principal.team.id;
    const page = await getBatchServices().batches.list({ after, limit, ...(team !== undefined ? { team } : {}) });
    const data = page.data.map(toBatchView);
    return json(200, { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.hasMore });
  } catch (err) {
    return errorResponse(err, context);
  }
}

app.http('createBatch', { methods: ['POST'], route: 'v1/batches', authLevel: 'anonymous', handler: createBatch });
app.http('listBatches', { methods: ['GET'], route: 'v1/batches', authLevel: 'anonymous', handler: listBatches });
app.http('getBatch', { methods: ['GET'], route: 'v1/batches/{id}', authLevel: 'anonymous', handler: getBatch });
app.http('cancelBatch', { methods: ['POST'], route: 'v1/batches/{id}/cancel', authLevel: 'anonymous', handler: cancelBatch });
