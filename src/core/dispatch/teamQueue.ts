/**
 * Team queues: where a submitted job waits until the dispatcher releases it into the jobs queue. Each team has its
 * own ordered queue per model (a Table partition), so no team's backlog sits in front of another team's next job,
 * and no model's jobs behind another model's, whatever the number of teams, and the jobs queue the workers drain
 * stays shallow (docs/design/dispatch.md).
 *
 * An entry is one job, or up to GROUP_ITEMS lines of one batch (a 50,000-line batch is 500 entries). Entries sort
 * by priority, then creation time: a team's interactive jobs come before its batch work.
 */
import type { JobPriority } from '../jobs';

/** Jobs one batch entry carries (each item ~60 characters of JSON: far under Table Storage's 64 KiB property). */
export const GROUP_ITEMS = 100;

/** A job waiting in its team's queue: what the dispatcher needs to order and pace it, without reading the job. */
export interface QueuedJob {
  id: string;
  /** Tokens the budget will charge it (prompt + max_tokens). */
  charge: number;
  /** Logical model. */
  model: string;
}

/** One team's queue for one model. */
export interface QueueRef {
  team: string;
  model: string;
}

export interface TeamQueueEntry {
  team: string;
  /** The model of every item. */
  model: string;
  /** Sort key within the team's queue (`entryKey`). */
  key: string;
  priority: JobPriority;
  items: QueuedJob[];
  /** Items before this index were released already. */
  next: number;
  /** Released as a replay message (the job's first message may never have gone out; see core/intake.ts). */
  replay?: boolean;
}

/** Sort key: priority, then creation time, then the first job's id: `0~<13-digit ms>~<id>` (interactive) or `1~…`. */
export function entryKey(priority: JobPriority, createdAt: number, firstId: string): string {
  return `${priority === 'interactive' ? 0 : 1}~${String(Math.max(0, Math.floor(createdAt))).padStart(13, '0')}~${firstId}`;
}

/** One job's entry. */
export function jobEntry(job: { id: string; team: string; priority: JobPriority; createdAt: number; charge: number; model: string }, replay = false): TeamQueueEntry {
  return {
    team: job.team,
    model: job.model,
    key: entryKey(job.priority, job.createdAt, job.id),
    priority: job.priority,
    items: [{ id: job.id, charge: job.charge, model: job.model }],
    next: 0,
    ...(replay ? { replay: true } : {}),
  };
}

/** A batch's jobs as entries of at most GROUP_ITEMS each, per model, in order (all batch priority). */
export function groupEntries(team: string, createdAt: number, jobs: readonly QueuedJob[]): TeamQueueEntry[] {
  const byModel = new Map<string, QueuedJob[]>();
  for (const j of jobs) {
    const list = byModel.get(j.model);
    if (list) list.push(j);
    else byModel.set(j.model, [j]);
  }
  const entries: TeamQueueEntry[] = [];
  for (const [model, list] of byModel) {
    for (let i = 0; i < list.length; i += GROUP_ITEMS) {
      const items = list.slice(i, i + GROUP_ITEMS);
      entries.push({ team, model, key: entryKey('batch', createdAt, items[0]!.id), priority: 'batch', items, next: 0 });
    }
  }
  return entries;
}

/** A queue that changed: its marker's version differs from the one the dispatcher last saw. */
export interface TeamMarker extends QueueRef {
  version: string;
}

/** Where team queues live (src/azure/teamQueueTable.ts; in memory in tests). */
export interface TeamQueueStore {
  /** Writes entries (a re-sent entry replaces itself: submit and the batch driver may repeat). Throws on failure. */
  add(entries: readonly TeamQueueEntry[]): Promise<void>;
  /** Tells the dispatcher that the queue changed. Call after `add` resolved. */
  bump(queue: QueueRef): Promise<void>;
  /** Every queue that ever had an entry (one small row per team and model). */
  markers(): Promise<TeamMarker[]>;
  /** Up to `limit` entries of the queue in key order, after `afterKey` when given. */
  read(queue: QueueRef, limit: number, afterKey?: string): Promise<TeamQueueEntry[]>;
  /** Removes a released entry (gone already is fine). */
  remove(queue: QueueRef, key: string): Promise<void>;
  /** Records that the entry's items before `next` were released. */
  advance(queue: QueueRef, key: string, next: number): Promise<void>;
}

/** The jobs queues the workers drain, as the dispatcher sees them: per lane, one queue per priority. */
export interface RunQueue {
  /** Sends one job's message to its lane's queue of its priority. */
  send(message: { id: string; replay?: true }, priority: JobPriority, lane: number): Promise<void>;
  /** Messages in the lane's queues (visible or not), approximately. */
  depth(lane: number): Promise<number>;
}
