/**
 * The only place storage clients are built: from a connection string (Azurite, local runs) or from service URIs
 * and a managed identity (Azure). Every HTTP call they make is counted, so benchmarks can report storage
 * transactions per job as the storage layer saw them.
 */
import { TableClient } from '@azure/data-tables';
import { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { createDefaultHttpClient, type HttpClient } from '@azure/core-rest-pipeline';
import type { StorageSettings } from '../config';

/** Storage HTTP calls made by this process, by service. */
export const storageCounters = { table: 0, queue: 0, blob: 0, budgetTable: 0 };

const inner = createDefaultHttpClient();

/** Table clients count every HTTP call; queue and blob calls are counted by their wrappers (their SDKs take
 * an older HTTP client interface). */
function countingClientFor(service: keyof typeof storageCounters): HttpClient {
  return { sendRequest: (req) => ((storageCounters[service] += 1), inner.sendRequest(req)) };
}

let credential: TokenCredential | undefined;
function identity(settings: StorageSettings): TokenCredential {
  credential ??= new DefaultAzureCredential(settings.clientId ? { managedIdentityClientId: settings.clientId } : {});
  return credential;
}

export interface StorageClients {
  table(name: string, counter?: keyof typeof storageCounters): TableClient;
  queue(name: string): QueueClient;
  queueService(): QueueServiceClient;
  container(name: string): ContainerClient;
}

/**
 * How hard the SDKs retry a failing call. `sdk` keeps their defaults, which ride out long outages but take
 * their time (tables: 3 retries from 1 s, about 7 s; queues and blobs: 4 tries from 4 s, about 28 s). `prompt` is for
 * request paths that must answer quickly when storage is down (submit answers 503 instead of hanging): one retry
 * after 200 ms and a 5 s cap per try, so a dead storage account costs well under 2 s before the 503.
 */
export type StorageRetryProfile = 'sdk' | 'prompt';
const PROMPT_TABLE_RETRY = { maxRetries: 1, retryDelayInMs: 200, maxRetryDelayInMs: 500 };
const PROMPT_STORAGE_RETRY = { maxTries: 2, retryDelayInMs: 200, maxRetryDelayInMs: 500, tryTimeoutInMs: 5_000 };

/** Builds clients for the configured account. Clients are cheap; callers may cache them. @param retry @default 'sdk' */
export function storageClients(settings: StorageSettings, retry: StorageRetryProfile = 'sdk'): StorageClients {
  const conn = settings.connectionString;
  const insecure = !!conn && /DefaultEndpointsProtocol=http;|Endpoint=http:/.test(conn);
  const tableRetry = retry === 'prompt' ? { retryOptions: PROMPT_TABLE_RETRY } : {};
  const storageRetry = retry === 'prompt' ? { retryOptions: PROMPT_STORAGE_RETRY } : {};
  return {
    table(name, counter = 'table') {
      const httpClient = countingClientFor(counter);
      return conn
        ? TableClient.fromConnectionString(conn, name, { allowInsecureConnection: insecure, httpClient, ...tableRetry })
        : new TableClient(settings.tableServiceUri!, name, identity(settings), { httpClient, ...tableRetry });
    },
    queue(name) {
      return conn
        ? new QueueClient(conn, name, storageRetry)
        : new QueueClient(`${settings.queueServiceUri!.replace(/\/$/, '')}/${name}`, identity(settings), storageRetry);
    },
    queueService() {
      return conn
        ? QueueServiceClient.fromConnectionString(conn)
        : new QueueServiceClient(settings.queueServiceUri!, identity(settings), {});
    },
    container(name) {
      return conn
        ? BlobServiceClient.fromConnectionString(conn, storageRetry).getContainerClient(name)
        : new BlobServiceClient(settings.blobServiceUri!, identity(settings), storageRetry).getContainerClient(name);
    },
  };
}

/** True for errors that mean "storage is not reachable right now" rather than a bad request. */
export function isStorageUnavailable(err: unknown): boolean {
  const e = err as { code?: string; statusCode?: number; name?: string };
  if (e?.statusCode !== undefined) return e.statusCode >= 500 || e.statusCode === 408;
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'REQUEST_SEND_ERROR'].includes(e?.code ?? '');
}
