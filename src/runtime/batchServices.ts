/**
 * Composition of the Files/Batches API, the batch driver and the submission queue (issue 8), on top of the shared
 * services. Kept apart from services.ts so the batch feature is one import away and services.ts stays small; the
 * only link back is the worker's job-finished hook (batchJobFinished).
 */
import type { QueueClient } from '@azure/storage-queue';
import type { JobRecord } from '../core/jobs';
import type { DriverDeps } from '../core/batch/driver';
import { loadBatchSettings, type BatchSettings } from '../core/batch/settings';
import { BatchStore, batchJobPort } from '../azure/batchStore';
import { FileStore } from '../azure/fileStore';
import { getServices } from './services';

export interface BatchServices {
  settings: BatchSettings;
  files: FileStore;
  batches: BatchStore;
  /** Messages {batchId} that make the driver take the next step of a batch. */
  batchQueue: QueueClient;
  submitDeadLetter: QueueClient;
  submitPoison: QueueClient;
  queue(name: string): QueueClient;
  driverDeps(log?: (message: string) => void): DriverDeps;
  /** Sends a driver message for a batch (base64 JSON, as host.json expects). */
  poke(batchId: string): Promise<void>;
}

let cached: { for: object; batch: BatchServices } | undefined;
const ensured = new Map<string, Promise<unknown>>();

/** Base64 JSON, matching host.json messageEncoding. */
export function encodeMessage(body: unknown): string {
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
}

/** Sends to a queue, creating it once per process. */
export async function sendTo(queue: QueueClient, body: unknown): Promise<void> {
  let ready = ensured.get(queue.name);
  if (!ready) {
    ready = queue.createIfNotExists().catch((err: unknown) => {
      ensured.delete(queue.name);
      throw err;
    });
    ensured.set(queue.name, ready);
  }
  await ready;
  await queue.sendMessage(encodeMessage(body), { messageTimeToLive: -1 });
}

/** Built once per shared Services instance (a reset of those, e.g. by the local stack, rebuilds these too). */
export function getBatchServices(): BatchServices {
  const services = getServices();
  if (cached?.for === services) return cached.batch;
  const settings = loadBatchSettings();
  const { storage, config } = services;
  const files = new FileStore(storage.container(settings.filesContainer));
  const batches = new BatchStore(storage.table(settings.batchesTable));
  const batchQueue = storage.queue(settings.batchQueue);
  const jobPort = batchJobPort(services.jobs, services.queueFor);
  const batch: BatchServices = {
    settings,
    files,
    batches,
    batchQueue,
    submitDeadLetter: storage.queue(settings.submitDeadLetterQueue),
    submitPoison: storage.queue(`${settings.submitQueue}-poison`),
    queue: (name) => storage.queue(name),
    driverDeps: (log) => ({
      batches,
      files,
      jobs: jobPort,
      models: config.models,
      settings: {
        maxFileLines: settings.maxFileLines,
        fanoutChunk: settings.fanoutChunk,
        concurrency: settings.concurrency,
        leaseMs: settings.leaseS * 1000,
      },
      log,
    }),
    poke: (batchId) => sendTo(batchQueue, { batchId }),
  };
  cached = { for: services, batch };
  return batch;
}

/** Drops the cached services (tests that start a fresh stack in the same process). */
export function resetBatchServices(): void {
  cached = undefined;
  ensured.clear();
}

/**
 * The worker's job-finished hook: a batch line writes its completion marker (live request_counts, finalisation);
 * a queue-submitted job with reply_to posts {id, status, client_id, error} to that queue.
 */
export async function batchJobFinished(job: JobRecord): Promise<void> {
  if (job.batchId === undefined && job.replyTo === undefined) return;
  const batch = getBatchServices();
  const work: Promise<void>[] = [];
  if (job.batchId !== undefined && job.customId !== undefined) {
    work.push(batch.batches.markLines(job.batchId, [{ customId: job.customId, outcome: job.status === 'succeeded' ? 'succeeded' : 'failed' }]));
  }
  if (job.replyTo) {
    work.push(sendTo(batch.queue(job.replyTo), { id: job.id, object: 'sluice.job', status: job.status, client_id: job.clientId ?? null, error: job.error ?? null }));
  }
  await Promise.all(work);
}
