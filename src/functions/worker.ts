/**
 * Queue trigger on the jobs queue: runs one job. Quota waits and transient upstream errors re-enqueue the job with
 * a delay and return normally (the message is deleted, no dequeue attempt spent); storage failures throw, so the
 * host retries the message and, after maxDequeueCount, moves it to the poison queue.
 */
import { app, type InvocationContext } from '@azure/functions';
import { processJob } from '../core/worker';
import { parseJobMessage } from '../azure/jobQueue';
import { contextLogger } from '../runtime/http';
import { getServices } from '../runtime/services';

export async function worker(message: unknown, context: InvocationContext): Promise<void> {
  const parsed = parseJobMessage(message);
  if (!parsed) {
    context.warn(`unreadable jobs-queue message dropped: ${JSON.stringify(message).slice(0, 200)}`);
    return;
  }
  const services = getServices();
  const dequeueCount = Number(context.triggerMetadata?.dequeueCount ?? 1);
  const outcome = await processJob(services.workerDeps(contextLogger(context)), parsed.id, { dequeueCount });
  context.info(`[job=${parsed.id}] delivery ${dequeueCount} → ${outcome}`);
}

app.storageQueue('worker', { queueName: '%SLUICE_JOBS_QUEUE%', connection: 'AzureWebJobsStorage', handler: worker });
