/**
 * POST /api/v1/jobs: authenticate → parse → admit → store → enqueue, then answer 202 with the job's id. Each step is
 * one call down (runtime/auth, core/submit, core/admission, core/intake); the team's spend comes from a cache
 * refreshed in the background (runtime/teamLimits), so no submit waits on telemetry.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { admitJob, type Refusal } from '../core/admission';
import { countsAsBacklog } from '../core/backlog';
import { ValidationError } from '../core/errors';
import { enqueueJob, enqueueReplay, storeJob } from '../core/intake';
import { toJobView, type JobRecord } from '../core/jobs';
import { parseSubmitBody, prepareJob, type SubmitBody } from '../core/submit';
import { authorize } from '../runtime/auth';
import { errorBody, errorResponse, json, readJsonBody } from '../runtime/http';
import { getServices } from '../runtime/services';
import { teamSpendUsd } from '../runtime/teamLimits';

const IDEMPOTENCY_KEY_MAX = 255;
/** How stale the backlog counts used for backpressure may be, ms (this process's own submits count at once). */
const BACKLOG_CHECK_MS = 2_000;

export async function submitJob(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const team = auth.principal.team;
    // Submit's own stores retry storage only briefly, so an outage answers 503 within ~2 s, not ~30 s.
    const { config, submit } = getServices();
    const { body, idempotencyKey } = await parse(request, config.maxRequestBytes);
    const job = prepareJob(body, { models: config.models, now: Date.now(), idempotencyKey, team: team.id });
    const queue = { send: (m: { replay?: true }) => submit.intake.send(job, { lane: team.lane, replay: m.replay === true }) };

    const backlogs = team.maxBacklog > 0 || config.maxBacklog > 0 ? await submit.backlog.counts(BACKLOG_CHECK_MS) : new Map<string, number>();
    const refusal = admitJob({
      job,
      team,
      monthToDateUsd: teamSpendUsd(team),
      backlogs,
      weightOf: submit.weightOf,
      deploymentTpms: config.endpoints.filter((e) => e.model === job.model).map((e) => e.tpm),
      maxBacklog: config.maxBacklog,
      safety: config.budget.enabled ? config.budget.safety : 1,
    });
    if (refusal) return refused(refusal);

    const stored = await storeJob(submit.jobs, job);
    if (stored.kind === 'conflict') {
      return json(422, errorBody('idempotency_key_reused', 'Idempotency-Key was already used with a different request body', 'Idempotency-Key'));
    }
    if (stored.kind === 'existing') {
      if (stored.resend) await enqueueReplay(queue, job.id);
      return accepted(request, stored.job, true);
    }
    await enqueueJob(queue, submit.jobs, job, stored.etag, { warn: (m) => context.warn(m) });
    // Counted once the job is queued: a submit that fails before leaves no count behind.
    if (countsAsBacklog(job)) submit.backlog.add(team.id, job.createdAt, 1);
    context.debug(`[job=${job.id}] queued (model=${job.model}, priority=${job.priority}, prompt_tokens=${job.promptTokens})`);
    return accepted(request, job, false);
  } catch (err) {
    return errorResponse(err, context);
  }
}

/** The Idempotency-Key header and the validated body; throws ValidationError (4xx) naming what is wrong. */
async function parse(request: HttpRequest, maxBytes: number): Promise<{ body: SubmitBody; idempotencyKey?: string }> {
  const idempotencyKey = request.headers.get('idempotency-key') ?? undefined;
  if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > IDEMPOTENCY_KEY_MAX)) {
    throw new ValidationError(`Idempotency-Key: must be 1 to ${IDEMPOTENCY_KEY_MAX} characters`, 'Idempotency-Key');
  }
  return { body: parseSubmitBody(await readJsonBody(request, maxBytes)), ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) };
}

function refused(r: Refusal): HttpResponseInit {
  return json(r.status, errorBody(r.code, r.message, r.param, r.type), r.retryAfterS !== undefined ? { 'retry-after': String(r.retryAfterS) } : {});
}

function accepted(request: HttpRequest, job: JobRecord, replayed: boolean): HttpResponseInit {
  const view = toJobView(job);
  const location = new URL(`${job.id}`, request.url.endsWith('/') ? request.url : `${request.url}/`).pathname;
  return json(
    202,
    { id: view.id, object: view.object, status: view.status, created_at: view.created_at },
    { location, ...(replayed ? { 'idempotent-replayed': 'true' } : {}) },
  );
}

app.http('submitJob', { methods: ['POST'], route: 'v1/jobs', authLevel: 'anonymous', handler: submitJob });
