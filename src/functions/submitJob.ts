/** POST /api/v1/jobs — validate, record the job (status queued), enqueue its id, answer 202. */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { ValidationError } from '../core/errors';
import { StaleJobError } from '../core/jobs';
import { retryDelayMs } from '../core/retry';
import { backlogVerdict, overQuotaCeiling } from '../core/backpressure';
import { chargeOf, toJobView } from '../core/jobs';
import { hashBody, parseSubmitBody, prepareJob } from '../core/submit';
import { errorBody, errorResponse, json, readJsonBody } from '../runtime/http';
import { getServices } from '../runtime/services';
import { authorize } from '../runtime/auth';
import { laneOf } from '../core/teams/lanes';
import { teamAdmission } from '../runtime/teamLimits';

const IDEMPOTENCY_KEY_MAX = 255;
/** How long a submit whose send and cleanup both failed keeps trying to remove its row in the background, ms. */
const CLEANUP_FOR_MS = 120_000;
/** How stale the queue depth used for backpressure may be, ms. */
const BACKLOG_CHECK_MS = 2_000;

export async function submitJob(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    // Issue 11: submit's own stores retry storage only briefly, so an outage answers 503 within ~2 s, not ~30 s.
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const team = auth.principal.team;
    const { config, submit: { jobs, queueFor, backlog } } = getServices();
    const idempotencyKey = request.headers.get('idempotency-key') ?? undefined;
    if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > IDEMPOTENCY_KEY_MAX)) {
      throw new ValidationError(`Idempotency-Key: must be 1 to ${IDEMPOTENCY_KEY_MAX} characters`, 'Idempotency-Key');
    }
    const body = parseSubmitBody(await readJsonBody(request, config.maxRequestBytes));
    const job = prepareJob(body, { models: config.models, now: Date.now(), idempotencyKey, team: team.id });
    const queue = queueFor(laneOf(team.lane, job.priority, config.teams.lanes));

    const ceiling = overQuotaCeiling(chargeOf(job), config.endpoints.filter((e) => e.model === job.model).map((e) => e.tpm), config.budget.enabled ? config.budget.safety : 1);
    if (ceiling !== undefined) {
      throw new ValidationError(
        `request: this job is charged ${chargeOf(job)} tokens (${job.promptTokens} prompt + ${job.maxOutputTokens} max output), more than any deployment of "${job.model}" admits per minute (${ceiling}); lower max_tokens or split the prompt`,
        'request.max_tokens',
        'exceeds_deployment_quota',
      );
    }

    // Issue 10: the team's monthly budget (stop-at-100 % teams) and its own backlog limit.
    const refused = await teamAdmission(team, job, queue);
    if (refused) return refused;

    if (config.maxBacklog > 0) {
      const tpm = config.endpoints.filter((e) => e.model === job.model).reduce((sum, e) => sum + e.tpm, 0);
      const verdict = backlogVerdict(await backlog(BACKLOG_CHECK_MS), config.maxBacklog, chargeOf(job), tpm);
      if (!verdict.accept) {
        return json(429, errorBody('backlog_full', `Sluice's backlog is over ${config.maxBacklog} jobs; nothing was written. Retry after ${verdict.retryAfterS} s.`, undefined, 'rate_limit_error'), {
          'retry-after': String(verdict.retryAfterS),
        });
      }
    }

    for (let tries = 0; ; tries += 1) {
      const etag = await jobs.insert(job);
      if (etag !== undefined) {
        try {
          await queue.send({ id: job.id });
        } catch (err) {
          // Nothing half-written: a job that could not be enqueued is removed again, so a retry starts clean. If storage
          // is down for the delete too, keep trying in the background (ETag-guarded: a replay that adopted the row wins).
          await jobs.delete(job.id, etag).catch(() => withdrawLater(() => jobs.delete(job.id, etag), context));
          throw err;
        }
        break;
      }
      // Same Idempotency-Key: answer with the job already recorded; never enqueue twice.
      const existing = await jobs.get(job.id);
      if (!existing) {
        if (tries < 2) continue; // withdrawn by a failed first attempt's cleanup in the meantime: record it afresh
        throw new Error(`job ${job.id} exists but could not be read`);
      }
      if (existing.job.bodyHash !== hashBody(body)) {
        return json(422, errorBody('idempotency_key_reused', 'Idempotency-Key was already used with a different request body', 'Idempotency-Key'));
      }
      // Issue 11: a replay of a job still `queued` adopts the row and sends a replay message. The first attempt may
      // have stored the row and then failed both the send and its cleanup (a storage outage, answered 503 with
      // Retry-After), leaving a row no message points to. Rewriting the row changes its ETag, so that attempt's
      // background cleanup (ETag-guarded) no longer deletes it; the replay message runs the job only if it is still
      // queued when it arrives and is dropped otherwise, and the worker's claim keeps it to one model call either way.
      if (existing.job.status === 'queued') {
        try {
          await jobs.replace(existing.job, existing.etag);
        } catch (err) {
          if (!(err instanceof StaleJobError)) throw err;
          // Changed under us: a worker claimed it (then it has its message) or a cleanup removed it (record it afresh).
          if (tries < 2) continue;
          throw err;
        }
        await queue.send({ id: job.id, replay: true });
      }
      return accepted(request, existing.job, true);
    }
    context.info(`[job=${job.id}] queued (model=${job.model}, priority=${job.priority}, prompt_tokens=${job.promptTokens})`);
    return accepted(request, job, false);
  } catch (err) {
    return errorResponse(err, context);
  }
}

/** Retries a failed submit's cleanup with backoff for up to CLEANUP_FOR_MS, off the request path. */
function withdrawLater(remove: () => Promise<boolean>, context: InvocationContext): void {
  const deadline = Date.now() + CLEANUP_FOR_MS;
  const attempt = (n: number) => {
    const timer = setTimeout(() => {
      remove().then(
        () => undefined,
        (err: Error) => {
          if (Date.now() < deadline) attempt(n + 1);
          else context.warn(`a failed submit's row could not be removed: ${err.message} (an idempotent retry still runs it)`);
        },
      );
    }, retryDelayMs(n, undefined, { baseMs: 1_000, maxMs: 15_000 }));
    timer.unref?.();
  };
  attempt(1);
}

function accepted(request: HttpRequest, job: Parameters<typeof toJobView>[0], replayed: boolean): HttpResponseInit {
  const view = toJobView(job);
  const location = new URL(`${job.id}`, request.url.endsWith('/') ? request.url : `${request.url}/`).pathname;
  return json(
    202,
    { id: view.id, object: view.object, status: view.status, created_at: view.created_at },
    { location, ...(replayed ? { 'idempotent-replayed': 'true' } : {}) },
  );
}

app.http('submitJob', { methods: ['POST'], route: 'v1/jobs', authLevel: 'anonymous', handler: submitJob });
