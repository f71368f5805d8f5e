/**
 * Queue trigger on the jobs queue: runs one job. Quota waits and transient upstream errors re-enqueue the job with
 * a delay and return normally (the message is deleted, no dequeue attempt spent); storage failures throw, so the
 * host retries the message and, after maxDequeueCount, moves it to the poison queue.
 */
import { app, type InvocationContext } from '@azure/functions';
import { processJob } from '../core/worker';
import type { JobRecord } from '../core/jobs';
import { expandGroup, parseJobMessage } from '../azure/jobQueue';
import { contextLogger } from '../runtime/http';
import { getServices } from '../runtime/services';
import { allLanes, laneSuffix, type Lane } from '../core/teams/lanes';
import { bindingSettings } from '../config';

/** Runs one job from the lane's queue; requeues and recovery messages go back to the same queue. */
export async function worker(message: unknown, context: InvocationContext, lane?: Lane): Promise<void> {
  const parsed = parseJobMessage(message);
  if (!parsed) {
    context.warn(`unreadable jobs-queue message dropped: ${JSON.stringify(message).slice(0, 200)}`);
    return;
  }
  const deps = getServices().workerDeps(contextLogger(context), lane);
  if ('ids' in parsed) {
    await expandGroup(parsed.ids, (id) => deps.requeue(id, 0));
    context.debug(`group of ${parsed.ids.length} jobs → one message each`);
    return;
  }
  const dequeueCount = Number(context.triggerMetadata?.dequeueCount ?? 1);
  const { outcome, finished } = await processJob(deps, parsed.id, { dequeueCount, replay: parsed.replay === true });
  if (finished) context.info(finishedLine(finished));
  else context.debug(`[job=${parsed.id}] delivery ${dequeueCount} → ${outcome}`);
}

/**
 * The console's one line per finished job. Region and latency are the answering call's; for a job no call answered,
 * the last region tried and the time from its first claim to its end.
 */
function finishedLine(job: JobRecord): string {
  const tokens = Number(job.usage?.total_tokens ?? 0);
  const region = job.region ?? job.regionsTried.at(-1)?.region ?? '-';
  const latency = job.latencyMs ?? (job.completedAt ?? 0) - (job.startedAt ?? job.completedAt ?? 0);
  const error = job.error ? ` error=${job.error.code}` : '';
  return `[job=${job.id}] ${job.status} team=${job.team} region=${region} tokens=${tokens} latency_ms=${latency}${error}`;
}

// One registration per queue lane (see src/core/teams/lanes.ts). Lane 0 interactive keeps the name "worker".
const bindings = bindingSettings();
for (const lane of allLanes(bindings.lanes)) {
  const suffix = laneSuffix(lane);
  app.storageQueue(`worker${suffix.replace(/-/g, '_')}`, {
    queueName: `${bindings.jobsQueue}${suffix}`,
    connection: 'AzureWebJobsStorage',
    handler: (message, context) => worker(message, context, lane),
  });
}
