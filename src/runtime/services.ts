/**
 * The composition root: one set of clients and stores per process, built from the config on first use.
 * Functions ask for what they need here; tests and the local host get the same wiring.
 */
import { getConfig, type SluiceConfig } from '../config';
import { UnlimitedBudget, type BudgetGate } from '../core/budget/gate';
import { SharedBudgetGate } from '../core/budget/sharedBudget';
import { createTableBudgetStore } from '../azure/budgetTable';
import { alwaysClosed, SharedEndpointHealth, type EndpointHealth } from '../core/breaker/health';
import { deploymentRef } from '../core/routing';
import { createTableBreakerStore } from '../azure/breakerTable';
import type { ModelClient } from '../core/modelClient';
import { systemClock, type JobLogger, type WorkerDeps } from '../core/worker';
import type { JobRecord } from '../core/jobs';
import { knownSpendUsd, teamRefusal, type Refusal } from '../core/admission';
import { TeamSpendCache } from '../core/teamSpend';
import { monthToDateOf, ROLLUP_PARTITIONS, scopeKey, watermarkCuts } from '../core/telemetry/rollup';
import { monthOf } from '../core/telemetry/windows';
import { recordJobUsage } from '../core/telemetry/usage';
import { RollupTable } from '../azure/rollupTable';
import { trackModelCall } from '../azure/telemetry';
import { UsageTable } from '../azure/usageTable';
import { encodeJobMessage, JobQueue } from '../azure/jobQueue';
import { buildDispatch, type DispatchServices, type JobIntake } from './dispatch';
import { JobStore } from '../azure/jobStore';
import { AzureOpenAIModelClient } from '../azure/openaiClient';
import { isStorageUnavailable, storageClients, storageCounters, type StorageClients } from '../azure/storage';
import { TeamStore } from '../azure/teamTable';
import { Authenticator } from '../core/teams/auth';
import { FairShareGate } from '../core/fairshare/gate';
import { modelEntry } from '../core/models';
import type { Team } from '../core/teams/model';
import { allLanes, laneOf, laneSuffix, type Lane } from '../core/teams/lanes';
import { buildBatchServices, type BatchServices } from './batchServices';
import { BacklogCounter, countsAsBacklog, WAITING_COUNT } from '../core/backlog';
import { BacklogTable } from '../azure/backlogTable';
import type { RetentionPolicy } from '../core/retention/policy';
import type { RetentionDeps } from '../core/retention/sweep';
import { BatchRetention } from '../azure/batchStore';
import { RetentionCursorTable, retentionPorts } from '../azure/retentionTable';
import { ExactCache, type SyncCache } from '../core/sync/cache';
import { CacheTable } from '../azure/cacheStore';
import type { SyncUpstream } from '../core/sync/types';
import { AzureSyncClient } from '../azure/syncModelClient';

/** How long each process gathers backlog additions before writing them (see azure/backlogTable.ts for the cost). */
const BACKLOG_FLUSH_MS = 1_000;

export interface Services {
  config: SluiceConfig;
  storage: StorageClients;
  jobs: JobStore;
  /** Jobs waiting for quota, per team: counted as this process's jobs start and stop waiting (the rollup's gauge). */
  waiting: BacklogCounter;
  queue: JobQueue;
  poisonQueue: JobQueue;
  model: ModelClient;
  budget: BudgetGate;
  health: EndpointHealth;
  /** The job table and queues for submit, with bounded SDK retries so a storage outage is a prompt 503. */
  submit: {
    jobs: JobStore;
    /** Where a recorded job goes: its team queue, or its lane queue with dispatch off. */
    intake: JobIntake;
    /** Jobs waiting per team, counted at submit and at the end of each job (core/backlog.ts). */
    backlog: BacklogCounter;
    /** A team's fair-share weight as last read (1 until the teams table is read). */
    weightOf(team: string): number;
  };
  /** The jobs queue of a lane (lane 0 interactive is `queue`). */
  queueFor(lane: Lane): JobQueue;
  /** Every lane's queue, interactive lanes first. */
  laneQueues(): Array<{ lane: Lane; queue: JobQueue }>;
  /** How the batch driver and the submission queue hand jobs over, and the dispatcher (docs/design/dispatch.md). */
  dispatch: DispatchServices;
  teams: TeamStore;
  auth: Authenticator;
  /** Each team's month-to-date spend as last read, refreshed in the background (core/teamSpend.ts). */
  teamSpend: TeamSpendCache;
  /**
   * Why a team may not start work now (disabled, or stopped at its budget), from the teams and spend caches: no
   * storage read on the caller's path. Undefined for a team not read yet or not in the table.
   */
  teamLimit(team: string): Refusal | undefined;
  /** Files, batches and the submission queue. */
  batch: BatchServices;
  /** What is kept for how long, and the retention sweep's wiring (docs/retention.md). */
  retention: { policy: RetentionPolicy; sweepDeps(): RetentionDeps };
  /** Worker wiring; `lane` is the queue the message came from (requeues and recovery go back to it). */
  workerDeps(log: JobLogger, lane?: Lane): WorkerDeps;
  /** The exact cache of synchronous answers (core/sync/cache.ts). */
  syncCache: SyncCache;
  /** The synchronous API's upstream client (runtime/syncServices.ts wires the rest). */
  sync: { upstream: SyncUpstream };
}

let services: Services | undefined;

/**
 * Graceful shutdown. A recycled instance and the local host's CLI get SIGTERM before they drain (and an in-process
 * local host announces its close); from then on the worker parks jobs it would otherwise hold in-process. If nobody
 * else handles SIGTERM, Node's default (exit at once) is kept by re-raising it.
 */
let stopping = false;
let watching = false;
/** Emitted on `process` by the local Functions host (local/host) when it starts to drain, as SIGTERM is in Azure. */
const LOCAL_HOST_STOPPING = 'sluice:host-stopping';
function watchForShutdown(): void {
  if (watching) return;
  watching = true;
  process.once('SIGTERM', () => {
    stopping = true;
    if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM');
  });
  (process as NodeJS.EventEmitter).on(LOCAL_HOST_STOPPING, () => {
    stopping = true;
  });
}

/** The app is shutting down (SIGTERM, or the local host draining): long-running loops end now. */
export function isStopping(): boolean {
  return stopping;
}

/** A fault hook every worker built from now on calls; unset in the deployed app (see setWorkerFaultPoint). */
let faultPoint: WorkerDeps['faultPoint'];

/**
 * Installs a fault hook into the workers of this process. Only local/faults.ts calls it, and only when the local
 * stack starts a worker for the crash tests; the deployed app never does.
 */
export function setWorkerFaultPoint(hook: WorkerDeps['faultPoint']): void {
  faultPoint = hook;
}

function buildServices(config: SluiceConfig): Services {
  const storage = storageClients(config.storage);
  const promptStorage = storageClients(config.storage, 'prompt');
  const waiting = new BacklogCounter(new BacklogTable(storage.table(`${config.jobsTable}backlog`), 'waiting'), {
    ...WAITING_COUNT,
    now: Date.now,
    flushMs: BACKLOG_FLUSH_MS,
    schedule: (fn, ms) => void setTimeout(fn, ms).unref(),
    onError: (err) => console.warn(`waiting-jobs count unavailable: ${(err as Error).message}`),
  });
  const jobs = new JobStore(storage.table(config.jobsTable), storage.container(config.payloadContainer), (job, delta) => waiting.add(job.team, job.createdAt, delta));
  const lanes = allLanes(config.teams.lanes);
  const laneName = (lane: Lane) => `${config.jobsQueue}${laneSuffix(lane)}`;
  const laneKey = (lane: Lane) => `${lane.lane}/${lane.priority}`;
  const workerQueues = new Map(lanes.map((l) => [laneKey(l), new JobQueue(storage.queue(laneName(l)))]));
  const submitQueues = new Map(lanes.map((l) => [laneKey(l), new JobQueue(promptStorage.queue(laneName(l)))]));
  const pick = (queues: Map<string, JobQueue>, lane: Lane) => queues.get(laneKey(laneOf(lane.lane, lane.priority, config.teams.lanes)))!;
  const queue = pick(workerQueues, { lane: 0, priority: 'interactive' });
  const poisonQueue = new JobQueue(storage.queue(`${config.jobsQueue}-poison`));
  const teams = new TeamStore(storage.table(config.teams.table));
  const teamDirectory = teamCache(teams, config.teams.authCacheMs);
  // Brief SDK retries (promptStorage), as for submit's other stores: the first read is on a submit's path.
  const backlog = new BacklogCounter(new BacklogTable(promptStorage.table(`${config.jobsTable}backlog`)), {
    now: Date.now,
    flushMs: BACKLOG_FLUSH_MS,
    schedule: (fn, ms) => void setTimeout(fn, ms).unref(),
    onError: (err) => console.warn(`backlog counts unavailable: ${(err as Error).message}`),
  });
  const dispatch = buildDispatch(config, storage, promptStorage, (lane) => pick(workerQueues, lane), (lane) => pick(submitQueues, lane), (team) => teamDirectory.get(team)?.weight ?? 1);
  const submit = {
    jobs: new JobStore(promptStorage.table(config.jobsTable), promptStorage.container(config.payloadContainer)),
    intake: dispatch.submitIntake,
    backlog,
    weightOf: (team: string) => teamDirectory.get(team)?.weight ?? 1,
  };
  const auth = new Authenticator({ repo: teams, cacheMs: config.teams.authCacheMs, ...(config.teams.entra ? { entra: config.teams.entra } : {}) });
  const recordUsage = usageRecorder(config, storage);
  const teamSpend = spendCache(config, storage);
  watchForShutdown();
  const model = new AzureOpenAIModelClient(config.openaiApiVersion, config.storage.clientId);
  const shared: BudgetGate = config.budget.enabled
    ? new SharedBudgetGate({
        store: createTableBudgetStore(storage, config.budget.table),
        leaseMs: config.budget.leaseMs,
        jobsPerLease: config.budget.jobsPerLease,
        holdMs: config.holdInProcessMs,
        policy: { safety: config.budget.safety, tpmPerSeat: config.budget.tpmPerSeat, maxSeats: config.budget.maxSeats },
        onError: (err) => console.warn(`budget table unavailable: ${(err as Error).message}`),
        schedule: (fn, ms) => void setTimeout(fn, ms).unref(),
        ...(config.budget.debug ? { debug: (line: string) => console.log(line) } : {}),
      })
    : new UnlimitedBudget();
  // Why a team may start no work now, for the worker and the batch driver: the rule submit applies (admission.ts).
  const teamLimit = (id: string): Refusal | undefined => {
    const team = teamDirectory.get(id);
    return team && teamRefusal(team, knownSpendUsd(team, teamSpend));
  };
  // Weighted fair admission between teams in front of the shared budget (docs/teams.md).
  const budget: BudgetGate = config.teams.fairShare
    ? new FairShareGate(shared, {
        weightOf: (team) => teamDirectory.get(team)?.weight ?? 1,
        guaranteedTpmOf: (team, model) => (model === undefined ? undefined : teamDirectory.get(team)?.guaranteedTpm[model]),
        holdMs: config.holdInProcessMs,
        ...(config.budget.debug ? { debug: (line: string) => console.log(line) } : {}),
      })
    : shared;
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
  const syncCache = buildSyncCache(config, promptStorage, auth);
  const batch = buildBatchServices({ settings: config.batch, storage, jobs, intake: dispatch.intake, models: config.models, teamLimit });
  return {
    config,
    storage,
    jobs,
    retention: retentionServices(config, storage, jobs, batch),
    waiting,
    queue,
    poisonQueue,
    model,
    budget,
    health,
    submit,
    queueFor: (lane) => pick(workerQueues, lane),
    laneQueues: () => lanes.map((lane) => ({ lane, queue: pick(workerQueues, lane) })),
    dispatch,
    teams,
    auth,
    teamSpend,
    teamLimit,
    batch,
    syncCache,
    sync: { upstream: new AzureSyncClient(config.openaiApiVersion, config.storage.clientId) },
    workerDeps: (log, lane = { lane: 0, priority: 'interactive' }) => {
      const home = pick(workerQueues, lane);
      // Recovery messages are sent with the plain client: deleting one needs the id and pop receipt that
      // JobQueue.send does not return.
      const homeClient = storage.queue(home.name);
      return {
      jobs,
      requeue: (id, delayMs) => home.send({ id }, delayMs),
      model,
      budget,
      health,
      spillover: (model) => modelEntry(config.models, model)?.spillover ?? true,
      teamLimit,
      endpoints: config.endpoints,
      settings: {
        callTimeoutMs: config.callTimeoutMs,
        maxRetryDelayMs: config.maxRetryDelayMs,
        holdInProcessMs: config.holdInProcessMs,
        maxTransientFailures: 8,
      },
      log,
      // A finished job feeds its batch or reply queue, if any, and leaves its usage row for the rollup and its team's backlog count.
      onFinished: [batchJobFinished, (job) => recordUsage(job, (m) => log('warn', m, { jobId: job.id })), async (job) => countsAsBacklog(job) && backlog.add(job.team, job.createdAt, -1)],
      onModelCall: (call) => trackModelCall(call),
      // Crash recovery, storage retries, shutdown, test-only faults (docs/reliability.md).
      watchdog: async (id, delayMs) => {
        await home.ensure();
        const visibilityTimeout = Math.max(1, Math.ceil(delayMs / 1000));
        storageCounters.queue += 1;
        const sent = await homeClient.sendMessage(encodeJobMessage({ id }), { visibilityTimeout, messageTimeToLive: -1 });
        return async () => {
          storageCounters.queue += 1;
          await homeClient.deleteMessage(sent.messageId, sent.popReceipt);
        };
      },
      isStorageOutage: isStorageUnavailable,
      stopping: () => stopping,
      ...(faultPoint ? { faultPoint } : {}),
      };
    },
  };
}

/**
 * Writes a finished job's usage row (idempotent), for the worker's finished hooks. Built here from the telemetry
 * settings rather than taken from runtime/telemetry.ts, which builds on these services.
 */
function usageRecorder(config: SluiceConfig, storage: StorageClients): (job: JobRecord, warn: (message: string) => void) => Promise<unknown> {
  const settings = config.telemetry;
  const store = new UsageTable(storage.table(settings.usageTable));
  const cuts = watermarkCuts(new RollupTable(storage.table(settings.rollupTable)));
  return (job, warn) => recordJobUsage({ store, cuts, clock: systemClock, latenessMs: settings.latenessMs, options: { overrides: settings.priceOverrides }, warn }, job, Date.now());
}

/** The retention policy from the settings, and the sweep's stores (built on the first sweep). */
function retentionServices(config: SluiceConfig, storage: StorageClients, jobs: JobStore, batch: BatchServices): Services['retention'] {
  const { jobsDays, usageDays, filesDays, sweepMaxRows, table } = config.retention;
  const policy: RetentionPolicy = { jobsDays, usageDays, filesDays };
  let ports: ReturnType<typeof retentionPorts> | undefined;
  return {
    policy,
    sweepDeps: () => {
      ports ??= retentionPorts({
        cursor: new RetentionCursorTable(storage.table(table)),
        jobs,
        batches: new BatchRetention(batch.batches, storage.table(config.batch.batchesTable)),
        files: batch.files,
        usage: new UsageTable(storage.table(config.telemetry.usageTable)),
        rollup: new RollupTable(storage.table(config.telemetry.rollupTable)),
      });
      return { policy, maxRows: sweepMaxRows, clock: systemClock, ...ports };
    },
  };
}

/**
 * The exact cache, in the app's own storage with brief SDK retries (a slow or dead table must cost a request little:
 * the cache bounds each call too). Team settings come from the authenticator's cache, which an admin change clears.
 */
function buildSyncCache(config: SluiceConfig, storage: StorageClients, auth: Authenticator): SyncCache {
  return new ExactCache({
    store: new CacheTable(storage.table(config.syncCache.table)),
    settingOf: async (team, now) => (await auth.cachedTeam(team, now))?.cache,
    settings: config.syncCache,
    warn: (message) => console.warn(message),
  });
}

/** Month-to-date spend per team from the rollup's month-to-date row, kept for SLUICE_TEAM_SPEND_CACHE_MS. */
function spendCache(config: SluiceConfig, storage: StorageClients): TeamSpendCache {
  const rollup = new RollupTable(storage.table(config.telemetry.rollupTable));
  const read = async (team: string) => {
    const row = await rollup.get(ROLLUP_PARTITIONS.monthToDate(monthOf(Date.now())), scopeKey({ kind: 'team', team }));
    return monthToDateOf(row?.value)?.costUsd ?? 0;
  };
  return new TeamSpendCache(read, { maxAgeMs: config.teams.spendCacheMs });
}

/**
 * Team settings the worker needs on every admission (weight, guarantees), read from the teams table at most every
 * `refreshMs` in the background; until the first read, every team weighs 1.
 */
function teamCache(repo: TeamStore, refreshMs: number): { get(team: string): Team | undefined } {
  let byId = new Map<string, Team>();
  let readAt = Number.NEGATIVE_INFINITY;
  let reading = false;
  return {
    get(team) {
      const now = Date.now();
      if (!reading && now - readAt > Math.max(1_000, refreshMs)) {
        reading = true;
        repo
          .listTeams()
          .then((list) => {
            byId = new Map(list.map((t) => [t.id, t]));
            readAt = Date.now();
          })
          .catch(() => {
            readAt = Date.now(); // try again after the interval; weights stay as they were
          })
          .finally(() => {
            reading = false;
          });
      }
      return byId.get(team);
    },
  };
}

/** The process-wide services (config is read and validated on first call). */
export function getServices(): Services {
  services ??= buildServices(getConfig());
  return services;
}

/** The batch feature's services (built with the shared ones). */
export function getBatchServices(): BatchServices {
  return getServices().batch;
}

/** The worker's job-finished hook for batch lines and queue submissions (completion markers, reply_to). */
const batchJobFinished: BatchServices['jobFinished'] = (job) => getServices().batch.jobFinished(job);

/** The services if this process built them (shutdown hooks must not build them just to close them). */
export function builtServices(): Services | undefined {
  return services;
}

/** Forgets the cached services (tests and the local stack start fresh apps in one process). */
export function resetServices(): void {
  services = undefined;
  stopping = false;
}
