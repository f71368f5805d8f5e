/**
 * Storage clients that count their own HTTP requests, for tests and benchmarks that compare what an operation costs
 * (a call count is a property of the code, not of the machine, so it can be asserted).
 *
 *   const storage = countingStorage(connectionString);
 *   const store = new BatchStore(storage.table('batches'));
 *   const { calls, result } = await storage.countCalls(() => store.list({ limit: 20 }));
 *
 * Every attempt is counted (a retried request counts twice). Only the clients built by `storage` are counted, so the
 * app running in the same process (timers, queue polling) does not disturb the figures.
 */
import { TableClient } from '@azure/data-tables';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { BlobServiceClient, ContainerClient, newPipeline as newBlobPipeline, type RequestPolicyFactory } from '@azure/storage-blob';
import { QueueClient, QueueServiceClient, StorageSharedKeyCredential, newPipeline as newQueuePipeline } from '@azure/storage-queue';
import type { StorageClients } from '../../src/azure/storage';

/** Requests sent so far, by service. */
export interface CallCounter {
  table: number;
  blob: number;
  queue: number;
}

export interface CountingStorage extends StorageClients {
  counter: CallCounter;
  /** `countCalls` on this counter. */
  countCalls<T>(fn: () => Promise<T>): Promise<{ calls: number; result: T }>;
}

const total = (c: CallCounter) => c.table + c.blob + c.queue;

/** Runs `fn` and returns how many storage requests the counted clients sent meanwhile (run nothing else on them). */
export async function countCalls<T>(counter: CallCounter, fn: () => Promise<T>): Promise<{ calls: number; result: T }> {
  const before = total(counter);
  const result = await fn();
  return { calls: total(counter) - before, result };
}

/** The policy form (tables: @azure/core-rest-pipeline, one count per attempt). */
function countingPolicy(counter: CallCounter, service: keyof CallCounter): PipelinePolicy {
  return { name: `count-${service}-calls`, sendRequest: (req, next) => ((counter[service] += 1), next(req)) };
}

/** The request-policy form the blob and queue pipelines take, placed last so that it sees every attempt. */
function countingFactory(counter: CallCounter, service: keyof CallCounter): RequestPolicyFactory {
  return { create: (next) => ({ sendRequest: (req) => ((counter[service] += 1), next.sendRequest(req)) }) };
}

/** StorageClients for the account a connection string names (Azurite's), counting into one counter. */
export function countingStorage(connectionString: string, counter: CallCounter = { table: 0, blob: 0, queue: 0 }): CountingStorage {
  const insecure = /DefaultEndpointsProtocol=http;|Endpoint=http:/.test(connectionString);
  const blobService = BlobServiceClient.fromConnectionString(connectionString);
  const blobPipeline = newBlobPipeline(blobService.credential);
  blobPipeline.factories.push(countingFactory(counter, 'blob'));
  const queueService = QueueServiceClient.fromConnectionString(connectionString);
  const fields = Object.fromEntries(connectionString.split(';').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const queuePipeline = newQueuePipeline(new StorageSharedKeyCredential(String(fields.AccountName), String(fields.AccountKey)));
  queuePipeline.factories.push(countingFactory(counter, 'queue'));
  return {
    counter,
    countCalls: (fn) => countCalls(counter, fn),
    table: (name) =>
      TableClient.fromConnectionString(connectionString, name, {
        allowInsecureConnection: insecure,
        additionalPolicies: [{ policy: countingPolicy(counter, 'table'), position: 'perRetry' }],
      }),
    container: (name) => new ContainerClient(blobService.getContainerClient(name).url, blobPipeline),
    queue: (name) => new QueueClient(queueService.getQueueClient(name).url, queuePipeline),
    /** Not counted: account-level queue listing is no per-operation cost. */
    queueService: () => queueService,
  };
}
