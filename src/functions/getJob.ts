/** GET /api/v1/jobs/{id} — the job's status, timings, region, response, usage and error. */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { toJobView } from '../core/jobs';
import { jobExpired, jobsFinishedBy } from '../core/retention/policy';
import { JOB_ID_PATTERN } from '../core/submit';
import { errorBody, errorResponse, json } from '../runtime/http';
import { getServices } from '../runtime/services';
import { authorize, canSee } from '../runtime/auth';

export async function getJob(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const id = request.params.id ?? '';
  try {
    const { jobs, retention } = getServices();
    const days = retention.policy.jobsDays;
    // Job ids carry no creation time, so a job the retention sweep deleted is told apart from one that never existed
    // only by this message.
    const notFound = () => json(404, errorBody('job_not_found', `No job with id "${id}" (finished jobs are deleted ${days} days after they finish)`, 'id'));
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    if (!JOB_ID_PATTERN.test(id)) return notFound();
    const now = Date.now();
    // Past retention, the payload blobs may already be gone: not read.
    const stored = await jobs.get(id, { withRequest: false, finishedBy: jobsFinishedBy(retention.policy, now) });
    // Another team's job is answered exactly like a missing one.
    if (!stored || !canSee(auth.principal, stored.job.team)) return notFound();
    if (jobExpired(stored.job, retention.policy, now)) {
      return json(404, errorBody('job_expired', `Job "${id}" finished more than ${days} days ago; its record and payloads are past retention`, 'id'));
    }
    return json(200, toJobView(stored.job));
  } catch (err) {
    return errorResponse(err, context);
  }
}

app.http('getJob', { methods: ['GET'], route: 'v1/jobs/{id}', authLevel: 'anonymous', handler: getJob });
