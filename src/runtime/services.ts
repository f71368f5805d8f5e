/**
 * The composition root: one set of clients and stores per process, built from the config on first use.
 * Functions ask for what they need here; tests and the local host get the same wiring.
 */
import { getConfig, type SluiceConfig } from '../config';
import { UnlimitedBudget, type BudgetGate } from '../core/budget/gate';
import { alwaysClosed, SharedEndpointHealth, type EndpointHealth } from '../core/breaker/health';
import { deploymentRef } from '../core/routing';
import { createTableBreakerStore } from '../azure/breakerTable';
import type { ModelClient } from '../core/modelClient';
import type { JobLogger, WorkerDeps } from '../core/worker';
import { JobQueue } from '../azure/jobQueue';
import { JobStore } from '../azure/jobStore';
import { AzureOpenAIModelClient } from '../azure/openaiClient';
import { storageClients, type StorageClients } from '../azure/storage';
// Issue 8: batch lines and queue submissions react when their job finishes (completion marker, reply_to).
import { batchJobFinished } from './batchServices';

export interface Services {
  config: SluiceConfig;
  storage: StorageClients;
  jobs: JobStore;
  queue: JobQueue;
  poisonQueue: JobQueue;
  model: ModelClient;
  budget: BudgetGate;
  health: EndpointHealth;
  workerDeps(log: JobLogger): WorkerDeps;
}

let services: Services | undefined;

export function buildServices(config: SluiceConfig): Services {
  const storage = storageClients(config.storage);
  const jobs = new JobStore(storage.table(config.jobsTable), storage.container(config.payloadContainer));
  const queue = new JobQueue(storage.queue(config.jobsQueue));
  const poisonQueue = new JobQueue(storage.queue(`${config.jobsQueue}-poison`));
  const model = new AzureOpenAIModelClient(config.openaiApiVersion, config.storage.clientId);
  const budget: BudgetGate = new UnlimitedBudget();
  const health: EndpointHealth = config.breaker.enabled
    ? new SharedEndpointHealth({
        store: createTableBreakerStore(storage, config.breaker.table),
        policy: {
          failureThreshold: config.breaker.failureThreshold,
          windowMs: config.breaker.windowMs,
          cooldownMs: config.breaker.cooldownMs,
          probeLeaseMs: config.breaker.probeLeaseMs,
          retryAfterCapMs: config.maxRetryDelayMs,
        },
        cacheMs: config.breaker.cacheMs,
        refs: config.endpoints.map(deploymentRef),
        onError: (err, key) => console.warn(`breaker table unavailable for ${key}: ${(err as Error).message}`),
      })
    : alwaysClosed;
  return {
    config,
    storage,
    jobs,
    queue,
    poisonQueue,
    model,
    budget,
    health,
    workerDeps: (log) => ({
      jobs,
      requeue: (id, delayMs) => queue.send({ id }, delayMs),
      model,
      budget,
      health,
      spillover: (model) => config.models[model]?.spillover ?? true,
      endpoints: config.endpoints,
      settings: {
        callTimeoutMs: config.callTimeoutMs,
        maxRetryDelayMs: config.maxRetryDelayMs,
        holdInProcessMs: 2_000,
        maxTransientFailures: 8,
      },
      log,
      onFinished: batchJobFinished, // issue 8
    }),
  };
}

/** The process-wide services (config is read and validated on first call). */
export function getServices(): Services {
  services ??= buildServices(getConfig());
  return services;
}

/** Forgets the cached services (tests and the local stack start fresh apps in one process). */
export function resetServices(): void {
  services = undefined;
}
