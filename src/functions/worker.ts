/**
 * Queue trigger on the jobs queue: runs one job. Quota waits and transient upstream errors re-enqueue the job with
 * a delay and return normally (the message is deleted, no dequeue attempt spent); storage failures throw, so the
 * host retries the message and, after maxDequeueCount, moves it to the poison queue.
 */
import { app, type InvocationContext } from '@azure/functions';
import { processJob } from '../core/worker';
import { expandGroup, parseJobMessage } from '../azure/jobQueue';
import { contextLogger } from '../runtime/http';
import { getServices } from '../runtime/services';
import { getTelemetryServices } from '../runtime/telemetry';
import { trackModelCall } from '../azure/telemetry';
import { allLanes, laneSuffix, type Lane } from '../core/teams/lanes';
import { bindingSettings } from '../config';

/** Runs one job from the lane's queue; requeues and recovery messages go back to the same queue. */
export async function worker(message: unknown, context: InvocationContext, lane?: Lane): Promise<void> {
  const parsed = parseJobMessage(message);
  if (!parsed) {
    context.warn(`unreadable jobs-queue message dropped: ${JSON.stringify(message).slice(0, 200)}`);
    return;
  }
  const services = getServices();
  const log = contextLogger(context);
  const deps = services.workerDeps(log, lane);
  if ('ids' in parsed) {
    await expandGroup(parsed.ids, (id) => deps.requeue(id, 0));
    context.info(`group of ${parsed.ids.length} jobs → one message each`);
    return;
  }
  const telemetry = getTelemetryServices();
  const batchHook = deps.onFinished;
  // A finished job feeds its batch (if any) and its usage row; one failing must not stop the other.
  deps.onFinished = async (job) => {
    const results = await Promise.allSettled([batchHook?.(job), telemetry.recordUsage(job, (m) => log('warn', m, { jobId: job.id }))]);
    for (const r of results) if (r.status === 'rejected') log('warn', `after-finish hook failed: ${(r.reason as Error)?.message ?? r.reason}`, { jobId: job.id });
  };
  deps.onModelCall = (call) => trackModelCall(call, telemetry.sink);
  const dequeueCount = Number(context.triggerMetadata?.dequeueCount ?? 1);
  const outcome = await processJob(deps, parsed.id, { dequeueCount, replay: parsed.replay === true });
  context.info(`[job=${parsed.id}] delivery ${dequeueCount} → ${outcome}`);
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
