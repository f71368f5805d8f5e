/**
 * How a recorded job reaches the workers. With dispatch on (the default), it waits in its team's queue and the
 * dispatcher releases it into the jobs queue (docs/design/dispatch.md); with it off, it goes straight to its team's
 * lane queue. Submit, the submission queue and the batch driver all hand jobs over through `JobIntake`.
 */
import { GROUP_MESSAGE_IDS, type JobQueue } from '../azure/jobQueue';
import { TeamQueueTable } from '../azure/teamQueueTable';
import type { StorageClients } from '../azure/storage';
import type { SluiceConfig } from '../config';
import { Dispatcher } from '../core/dispatch/dispatcher';
import { groupEntries, jobEntry, type RunQueue } from '../core/dispatch/teamQueue';
import { chargeOf, type JobPriority, type JobRecord } from '../core/jobs';
import { laneOf, modelLanes, type Lane } from '../core/teams/lanes';

export interface JobIntake {
  /** Hands one job over; `replay`: see core/intake.ts. `lane`: the team's lane (lane queues only). */
  send(job: JobRecord, opts?: { replay?: boolean; lane?: number }): Promise<void>;
  /** Hands over many jobs of one team (a batch's lines). */
  sendMany(jobs: readonly JobRecord[], lane?: number): Promise<void>;
}

const queued = (job: JobRecord) => ({ id: job.id, charge: chargeOf(job), model: job.model });

/** Jobs into their team's queue for their model, then that queue's marker so the dispatcher looks. */
export function teamQueueIntake(store: TeamQueueTable): JobIntake {
  return {
    async send(job, opts) {
      await store.add([jobEntry({ ...queued(job), team: job.team, priority: job.priority, createdAt: job.createdAt }, opts?.replay === true)]);
      await store.bump({ team: job.team, model: job.model });
    },
    async sendMany(jobs) {
      if (jobs.length === 0) return;
      const byTeam = new Map<string, JobRecord[]>();
      for (const j of jobs) {
        const list = byTeam.get(j.team);
        if (list) list.push(j);
        else byTeam.set(j.team, [j]);
      }
      for (const [team, list] of byTeam) {
        const entries = groupEntries(team, list[0]!.createdAt, list.map(queued));
        await store.add(entries);
        for (const model of new Set(entries.map((e) => e.model))) await store.bump({ team, model });
      }
    },
  };
}

/** Jobs straight into their lane's queue; many in group messages of GROUP_MESSAGE_IDS ids. */
export function laneIntake(queueFor: (lane: Lane) => JobQueue, lanes: number): JobIntake {
  return {
    async send(job, opts) {
      await queueFor(laneOf(opts?.lane ?? 0, job.priority, lanes)).send(opts?.replay ? { id: job.id, replay: true } : { id: job.id });
    },
    async sendMany(jobs, lane = 0) {
      const queue = queueFor(laneOf(lane, 'batch', lanes));
      const sends: Promise<void>[] = [];
      for (let i = 0; i < jobs.length; i += GROUP_MESSAGE_IDS) {
        const group = jobs.slice(i, i + GROUP_MESSAGE_IDS).map((j) => j.id);
        sends.push(group.length === 1 ? queue.send({ id: group[0]! }) : queue.send({ ids: group }));
      }
      await Promise.all(sends);
    },
  };
}

export interface DispatchServices {
  /** The intake submit uses (its storage clients retry briefly). */
  submitIntake: JobIntake;
  /** The intake the batch driver and the submission queue use. */
  intake: JobIntake;
  /** Undefined with dispatch off. */
  dispatcher?: Dispatcher;
  lease?: TeamQueueTable;
}

export function buildDispatch(
  config: SluiceConfig,
  storage: StorageClients,
  promptStorage: StorageClients,
  queueFor: (lane: Lane) => JobQueue,
  submitQueueFor: (lane: Lane) => JobQueue,
  weightOf: (team: string) => number,
): DispatchServices {
  if (!config.dispatch.enabled) return { submitIntake: laneIntake(submitQueueFor, config.teams.lanes), intake: laneIntake(queueFor, config.teams.lanes) };
  const store = new TeamQueueTable(storage.table(config.dispatch.table));
  // Released jobs go to their model's lane (lanes.ts modelLanes): the team queues already keep teams apart, and
  // requeues return to the queue a job came from.
  const laneOfModel = modelLanes(config.endpoints.map((e) => e.model), config.teams.lanes);
  const home = (lane: number, priority: JobPriority) => queueFor({ lane, priority });
  const run: RunQueue = {
    send: (message, priority, lane) => home(lane, priority).send(message),
    depth: async (lane) => {
      const names = new Set<string>();
      const queues = (['interactive', 'batch'] as const).map((p) => home(lane, p)).filter((q) => !names.has(q.name) && names.add(q.name));
      return (await Promise.all(queues.map((q) => q.depth()))).reduce((a, b) => a + b, 0);
    },
  };
  const quotas = new Map<string, { tpm: number; rpm: number }>();
  for (const e of config.endpoints) {
    const q = quotas.get(e.model) ?? { tpm: 0, rpm: 0 };
    q.tpm += e.tpm;
    q.rpm += e.rpm;
    quotas.set(e.model, q);
  }
  const dispatcher = new Dispatcher({
    store,
    run,
    now: Date.now,
    quotaOf: (model) => quotas.get(model),
    weightOf,
    laneOf: laneOfModel,
    depthSeconds: config.dispatch.depthSeconds,
    onError: (err) => console.warn(`dispatch: ${(err as Error).message}`),
  });
  return {
    submitIntake: teamQueueIntake(new TeamQueueTable(promptStorage.table(config.dispatch.table))),
    intake: teamQueueIntake(store),
    dispatcher,
    lease: store,
  };
}
