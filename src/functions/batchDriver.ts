/**
 * Queue trigger on the batch queue: one step of one batch (validate, fan out a chunk, stop, or finalise) under the
 * batch's lease. More fan-out to do → a continuation message; storage failures throw, so the host retries and the
 * next attempt resumes from the checkpoint.
 */
import { app, type InvocationContext } from '@azure/functions';
import { driveBatch } from '../core/batch/driver';
import { BATCH_ID_PATTERN, countsDone, type BatchRecord } from '../core/batch/model';
import { bindingSettings } from '../config';
import { getBatchServices } from '../runtime/services';

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
  const outcome = await driveBatch(batch.driverDeps((m) => context.debug(m), (b) => context.info(finishedLine(b))), batchId);
  if (outcome === 'continue') await batch.poke(batchId);
  context.debug(`[batch=${batchId}] step → ${outcome}`);
}

/** The console line of a finished batch: status, team, lines done of total, outcomes, time since creation. */
function finishedLine(b: BatchRecord): string {
  const endedAt = b.completedAt ?? b.failedAt ?? b.expiredAt ?? b.cancelledAt ?? Date.now();
  const done = countsDone(b.counts);
  return `[batch=${b.id}] ${b.status} team=${b.team} lines=${done}/${b.total} succeeded=${b.counts.succeeded} failed=${done - b.counts.succeeded} latency_ms=${endedAt - b.createdAt}`;
}

app.storageQueue('batchDriver', { queueName: bindingSettings().batchQueue, connection: 'AzureWebJobsStorage', handler: batchDriver });
