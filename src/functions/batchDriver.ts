/**
 * Queue trigger on the batch queue: one step of one batch (validate, fan out a chunk, stop, or finalise) under the
 * batch's lease. More fan-out to do → a continuation message; storage failures throw, so the host retries and the
 * next attempt resumes from the checkpoint.
 */
import { app, type InvocationContext } from '@azure/functions';
import { driveBatch } from '../core/batch/driver';
import { BATCH_ID_PATTERN } from '../core/batch/model';
import '../core/batch/settings'; // binding defaults (%SLUICE_BATCH_QUEUE%) into process.env before registration
import { getBatchServices } from '../runtime/batchServices';

function batchIdOf(message: unknown): string | undefined {
  const body = typeof message === 'string' ? (() => { try { return JSON.parse(message) as unknown; } catch { return message; } })() : message;
  const id = typeof body === 'string' ? body : (body as { batchId?: unknown } | null)?.batchId;
  return typeof id === 'string' && BATCH_ID_PATTERN.test(id) ? id : undefined;
}

export async function batchDriver(message: unknown, context: InvocationContext): Promise<void> {
  const batchId = batchIdOf(message);
  if (!batchId) {
    context.warn(`unreadable batch-queue message dropped: ${JSON.stringify(message).slice(0, 200)}`);
    return;
  }
  const batch = getBatchServices();
  const outcome = await driveBatch(batch.driverDeps((m) => context.info(m)), batchId);
  if (outcome === 'continue') await batch.poke(batchId);
  context.info(`[batch=${batchId}] step → ${outcome}`);
}

app.storageQueue('batchDriver', { queueName: '%SLUICE_BATCH_QUEUE%', connection: 'AzureWebJobsStorage', handler: batchDriver });
