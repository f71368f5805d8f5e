/** GET /api/v1/jobs/{id} — the job's status, timings, region, response, usage and error. */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { toJobView } from '../core/jobs';
import { JOB_ID_PATTERN } from '../core/submit';
import { errorBody, errorResponse, json } from '../runtime/http';
import { getServices } from '../runtime/services';
import { authorize, canSee } from '../runtime/auth';

export async function getJob(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const id = request.params.id ?? '';
  const notFound = () => json(404, errorBody('job_not_found', `No job with id "${id}"`, 'id'));
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    if (!JOB_ID_PATTERN.test(id)) return notFound();
    const stored = await getServices().jobs.get(id, { withRequest: false });
    // Another team's job is answered exactly like a missing one.
    return stored && canSee(auth.principal, stored.job.team) ? json(200, toJobView(stored.job)) : notFound();
  } catch (err) {
    return errorResponse(err, context);
  }
}

app.http('getJob', { methods: ['GET'], route: 'v1/jobs/{id}', authLevel: 'anonymous', handler: getJob });
