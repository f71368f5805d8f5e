/** In-memory team queues, run queue and dispatch lease, for the dispatcher's tests (same contracts as src/azure). */
import type { DispatchLease } from '../../src/core/dispatch/loop';
import type { JobPriority } from '../../src/core/jobs';
import type { QueueRef, RunQueue, TeamMarker, TeamQueueEntry, TeamQueueStore } from '../../src/core/dispatch/teamQueue';

const idOf = (q: QueueRef) => `${q.team}\n${q.model}`;

export class MemoryTeamQueues implements TeamQueueStore, DispatchLease {
  /** Entries per queue (team and model). */
  readonly queues = new Map<string, Map<string, TeamQueueEntry>>();
  private readonly versions = new Map<string, { ref: QueueRef; version: number }>();
  private lease: { owner: string; until: number } | undefined;
  /** Makes the next `n` calls of a method throw. */
  failures: Partial<Record<'remove' | 'advance' | 'read' | 'markers', number>> = {};

  private fail(op: keyof MemoryTeamQueues['failures']): void {
    if ((this.failures[op] ?? 0) > 0) {
      this.failures[op]! -= 1;
      throw new Error(`injected ${op} failure`);
    }
  }

  async add(entries: readonly TeamQueueEntry[]): Promise<void> {
    for (const e of entries) {
      const q = this.queues.get(idOf(e)) ?? new Map<string, TeamQueueEntry>();
      q.set(e.key, structuredClone(e));
      this.queues.set(idOf(e), q);
    }
  }

  async bump(queue: QueueRef): Promise<void> {
    this.versions.set(idOf(queue), { ref: { team: queue.team, model: queue.model }, version: (this.versions.get(idOf(queue))?.version ?? 0) + 1 });
  }

  async markers(): Promise<TeamMarker[]> {
    this.fail('markers');
    return [...this.versions.values()].map(({ ref, version }) => ({ ...ref, version: String(version) }));
  }

  async read(queue: QueueRef, limit: number, afterKey?: string): Promise<TeamQueueEntry[]> {
    this.fail('read');
    const q = this.queues.get(idOf(queue));
    if (!q) return [];
    return [...q.keys()]
      .sort()
      .filter((k) => afterKey === undefined || k > afterKey)
      .slice(0, limit)
      .map((k) => structuredClone(q.get(k)!));
  }

  async remove(queue: QueueRef, key: string): Promise<void> {
    this.fail('remove');
    this.queues.get(idOf(queue))?.delete(key);
  }

  async advance(queue: QueueRef, key: string, next: number): Promise<void> {
    this.fail('advance');
    const e = this.queues.get(idOf(queue))?.get(key);
    if (e) e.next = next;
  }

  /** Jobs still waiting in a team's queues (every model). */
  waiting(team: string): number {
    let n = 0;
    for (const q of this.queues.values()) for (const e of q.values()) if (e.team === team) n += e.items.length - e.next;
    return n;
  }

  async acquire(owner: string, until: number, now: number): Promise<boolean> {
    if (this.lease && this.lease.owner !== owner && this.lease.until > now) return false;
    this.lease = { owner, until };
    return true;
  }

  async release(owner: string): Promise<void> {
    if (this.lease?.owner === owner) this.lease = undefined;
  }
}

/** The jobs queue: what was sent, in order; `depthValue` is what depth() answers. */
export class MemoryRunQueue implements RunQueue {
  readonly sent: Array<{ id: string; priority: JobPriority; lane: number; replay?: true }> = [];
  /** Every lane's depth, unless `depthByLane` names the lane. */
  depthValue = 0;
  readonly depthByLane = new Map<number, number>();
  /** Ids whose send throws (once each). */
  failOnce = new Set<string>();

  async send(message: { id: string; replay?: true }, priority: JobPriority, lane = 0): Promise<void> {
    if (this.failOnce.delete(message.id)) throw new Error(`injected send failure for ${message.id}`);
    this.sent.push({ ...message, priority, lane });
  }

  async depth(lane = 0): Promise<number> {
    return this.depthByLane.get(lane) ?? this.depthValue;
  }
}
