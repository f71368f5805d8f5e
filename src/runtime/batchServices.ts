/**
 * Wiring of the Files/Batches API, the batch driver and the submission queue. services.ts builds one of these with
 * the shared clients and hands it out as `Services.batch`; nothing here imports services.ts.
 */
import type { QueueClient } from '@azure/storage-queue';
import type { JobRecord } from '../core/jobs';
import type { DriverDeps } from '../core/batch/ownedBatch';
import type { ModelSettings } from '../core/models';
import type { BatchSettings } from '../config';
import { BatchStore, batchJobPort } from '../azure/batchStore';
import { FileStore } from '../azure/fileStore';
import type { JobStore } from '../azure/jobStore';
import type { StorageClients } from '../azure/storage';
import type { JobIntake } from './dispatch';

export interface BatchServices {
  settings: BatchSettings;
  files: FileStore;
  batches: BatchStore;
  /** Messages {batchId} that make the driver take the next step of a batch. */
  batchQueue: QueueClient;
  submitDeadLetter: QueueClient;
  submitPoison: QueueClient;
  /** `log` takes routine progress lines, `finished` the batch this invocation ended. */
  driverDeps(log?: DriverDeps['log'], finished?: DriverDeps['finished']): DriverDeps;
  /** Sends a driver message for a batch (base64 JSON, as host.json expects). */
  poke(batchId: string): Promise<void>;
  /** Sends `body` as base64 JSON to a queue, creating the queue on first use. */
  send(queue: QueueClient, body: unknown): Promise<void>;
  /**
   * The worker's job-finished hook: a batch line writes its completion marker (live request_counts, finalisation);
   * a queue-submitted job with reply_to posts {id, status, client_id, error} to that queue.
   */
  jobFinished(job: JobRecord): Promise<void>;
}

export interface BatchServicesDeps {
  settings: BatchSettings;
  storage: StorageClients;
  jobs: JobStore;
  /** Where the driver's jobs go (runtime/dispatch.ts). */
  intake: JobIntake;
  models: Record<string, ModelSettings>;
  /** Why a team may start no work now (services.ts `teamLimit`): the driver fans out no lines meanwhile. */
  teamLimit?: DriverDeps['teamLimit'];
}

/** Base64 JSON, matching host.json messageEncoding. */
function encodeMessage(body: unknown): string {
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
}

export function buildBatchServices({ settings, storage, jobs, intake, models, teamLimit }: BatchServicesDeps): BatchServices {
  const files = new FileStore(storage.container(settings.filesContainer), storage.table(settings.batchesTable));
  const batches = new BatchStore(storage.table(settings.batchesTable));
  const batchQueue = storage.queue(settings.batchQueue);
  const jobPort = batchJobPort(jobs, intake);
  const ensured = new Map<string, Promise<unknown>>();
  const send = async (queue: QueueClient, body: unknown): Promise<void> => {
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
  };
  return {
    settings,
    files,
    batches,
    batchQueue,
    submitDeadLetter: storage.queue(settings.submitDeadLetterQueue),
    submitPoison: storage.queue(`${settings.submitQueue}-poison`),
    driverDeps: (log, finished) => ({
      batches,
      files,
      jobs: jobPort,
      models,
      settings: {
        maxFileLines: settings.maxFileLines,
        fanoutChunk: settings.fanoutChunk,
        concurrency: settings.concurrency,
        leaseMs: settings.leaseS * 1000,
      },
      log,
      finished,
      ...(teamLimit ? { teamLimit } : {}),
    }),
    poke: (batchId) => send(batchQueue, { batchId }),
    send,
    async jobFinished(job) {
      if (job.batchId === undefined && job.replyTo === undefined) return;
      const work: Promise<void>[] = [];
      if (job.batchId !== undefined && job.customId !== undefined) {
        work.push(batches.markLines(job.batchId, [{ customId: job.customId, outcome: job.status === 'succeeded' ? 'succeeded' : 'failed' }]));
      }
      if (job.replyTo) {
        work.push(send(storage.queue(job.replyTo), { id: job.id, object: 'sluice.job', status: job.status, client_id: job.clientId ?? null, error: job.error ?? null }));
      }
      await Promise.all(work);
    },
  };
}
