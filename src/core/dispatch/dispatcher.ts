/**
 * The dispatcher: releases jobs from the team queues into the jobs queue, in weighted fair order and at the pace the
 * models' quotas can run them, so that the jobs queue holds only work the fleet can start soon (docs/design/dispatch.md).
 * A queue is one team's jobs for one model.
 *
 * One tick:
 *   1. read every queue's marker (one query, one small row per team and model) and re-read the head of each queue
 *      that changed; a queue's next page is read when its buffered entries run out;
 *   2. refill each model's token and request buckets at its deployments' quota × `rateFactor`, up to `burstMs` of it,
 *      and read the depth of the lanes with jobs waiting (pace.ts);
 *   3. release, one job at a time: an interactive job whose team is less than `interactiveLeadMs` of its fair share
 *      ahead of the team furthest behind on that model goes first; otherwise the head of the queue furthest behind
 *      (start-time fair queuing per model: each queue has a finish tag, advanced by charge ÷ its team's weight; a
 *      queue that comes back from idle starts level with the others). Between models, the one that has released
 *      the least for its quota goes first (a model tag, advanced by charge ÷ the model's TPM), so that when a lane's
 *      queues are full each of its models gets a part of them in proportion to its quota. Batch work waits while its
 *      model's lane holds `maxDepth` messages or more, or its model's bucket is empty (unless what is left of the
 *      model's backlog fits in one bucket: the end of a drain goes at once); interactive work may borrow one burst
 *      ahead;
 *   4. send the released jobs' messages to their models' lanes, then remove (or advance) their entries.
 * Costs per tick: one marker query, a depth read per `depthEveryMs` for each lane with work waiting, a page read per
 * queue that changed, and per released job one message plus its share of an entry write: nothing depends on how
 * much history is stored, and the number of teams and models only through the marker query.
 *
 * Plain TypeScript driven by `now()`; storage behind TeamQueueStore and RunQueue.
 */
import { forEachLimit } from '../batch/pool';
import { Pace, type ModelQuota } from './pace';
import type { QueuedJob, QueueRef, RunQueue, TeamQueueEntry, TeamQueueStore } from './teamQueue';

export type { ModelQuota } from './pace';

export interface DispatcherOptions {
  store: TeamQueueStore;
  run: RunQueue;
  now(): number;
  /** What the model's deployments grant together; undefined: a model nothing serves (released at once, the worker ends it). */
  quotaOf(model: string): ModelQuota | undefined;
  /** Team weight (> 0). */
  weightOf(team: string): number;
  /** The lane a model's jobs go to (RunQueue): each lane's depth is kept on its own. @default every model in lane 0 */
  laneOf?(model: string): number;
  /** Seconds of its models' pace a lane may hold before batch work waits. @default 20 */
  depthSeconds?: number;
  /** Release pace ÷ quota: a little above 1 keeps the budget's line fed. @default 1.05 */
  rateFactor?: number;
  /** A bucket holds this much of its pace, ms. @default 10000 */
  burstMs?: number;
  /** How far ahead of its fair share a team's interactive jobs may go before they wait their turn, ms of the pace. @default 30000 */
  interactiveLeadMs?: number;
  /** Entries read per page. @default 32 */
  pageSize?: number;
  /** Every queue's head is re-read this often even without a marker change (a lost marker write), ms. @default 30000 */
  rescanMs?: number;
  /** How often a lane's depth is read, ms. @default 1000 */
  depthEveryMs?: number;
  /** Most jobs released per tick. @default 256 */
  maxPerTick?: number;
  onError?(err: unknown): void;
}

export interface TickResult {
  /** Jobs released this tick. */
  released: number;
  /** Queues with jobs still waiting. */
  backlogged: number;
}

interface QueueState extends QueueRef {
  version?: string;
  /** Re-read from the head at the next tick. */
  dirty: boolean;
  /** Buffered entries, in key order; the first one's `next` item is the queue's head. */
  entries: TeamQueueEntry[];
  /** The last page read was full: more entries follow `lastKey`. */
  more: boolean;
  lastKey?: string;
  /** Finish tag, weighted tokens. */
  finish: number;
  /** It had a head at the last release round (a queue absent from one comes back level with the others). */
  active: boolean;
}

interface Head {
  q: QueueState;
  entry: TeamQueueEntry;
  item: QueuedJob;
}

const SEND_CONCURRENCY = 16;
const READ_CONCURRENCY = 8;

const idOf = (ref: QueueRef) => `${ref.team}\n${ref.model}`;

export class Dispatcher {
  private readonly queues = new Map<string, QueueState>();
  /** Per model: tokens released ÷ its TPM, and whether it had a head at the last round (modelRejoin). */
  private readonly modelTags = new Map<string, { tag: number; active: boolean }>();
  private readonly pace: Pace;
  private rescanAt = Number.NEGATIVE_INFINITY;
  /** Models at the end of their backlog this round (endOfBacklog). */
  private endingModels = new Set<string>();
  private readonly o: Required<Omit<DispatcherOptions, 'onError'>> & Pick<DispatcherOptions, 'onError'>;

  constructor(opts: DispatcherOptions) {
    this.o = {
      depthSeconds: 20,
      rateFactor: 1.05,
      burstMs: 10_000,
      interactiveLeadMs: 30_000,
      pageSize: 32,
      rescanMs: 30_000,
      depthEveryMs: 1_000,
      maxPerTick: 256,
      laneOf: () => 0,
      ...opts,
    };
    this.pace = new Pace(this.o);
  }

  async tick(): Promise<TickResult> {
    const now = this.o.now();
    await this.readMarkers(now);
    await this.readQueues();
    const waiting = this.waitingModels();
    await this.pace.readDepths(waiting, now);
    const picked = this.choose(now, waiting);
    await this.release(picked);
    let backlogged = 0;
    for (const q of this.queues.values()) if (q.entries.length > 0 || q.more) backlogged += 1;
    return { released: picked.length, backlogged };
  }

  /**
   * Forgets what was read: every queue is re-read from its head at the next tick. A run calls it when it takes the
   * lease, since another dispatcher may have released jobs meanwhile.
   */
  resync(): void {
    for (const q of this.queues.values()) {
      q.dirty = true;
      q.entries = [];
      q.more = false;
    }
    this.pace.forgetDepths();
  }

  /** Jobs buffered per team (tests, diagnostics). */
  buffered(): Map<string, number> {
    const out = new Map<string, number>();
    for (const q of this.queues.values()) out.set(q.team, (out.get(q.team) ?? 0) + q.entries.reduce((n, e) => n + e.items.length - e.next, 0));
    return out;
  }

  private async readMarkers(now: number): Promise<void> {
    const rescan = now - this.rescanAt >= this.o.rescanMs;
    if (rescan) this.rescanAt = now;
    for (const m of await this.o.store.markers()) {
      const id = idOf(m);
      let q = this.queues.get(id);
      if (!q) this.queues.set(id, (q = { team: m.team, model: m.model, dirty: true, entries: [], more: false, finish: 0, active: false }));
      if (q.version !== m.version || rescan) q.dirty = true;
      q.version = m.version;
    }
  }

  /** Re-reads changed queues from their head, and the next page of queues whose buffer ran out. */
  private async readQueues(): Promise<void> {
    const due = [...this.queues.values()].filter((q) => q.dirty || (q.entries.length === 0 && q.more));
    await forEachLimit(due, READ_CONCURRENCY, async (q) => {
      const fromHead = q.dirty;
      q.dirty = false;
      try {
        const page = await this.o.store.read(q, this.o.pageSize, fromHead ? undefined : q.lastKey);
        q.entries = page.filter((e) => e.next < e.items.length);
        q.more = page.length >= this.o.pageSize;
        q.lastKey = page.at(-1)?.key ?? (fromHead ? undefined : q.lastKey);
      } catch (err) {
        q.dirty = true;
        this.o.onError?.(err);
      }
    });
  }

  /** Models with jobs buffered. */
  private waitingModels(): Set<string> {
    const models = new Set<string>();
    for (const q of this.queues.values()) if (q.entries.length > 0) models.add(q.model);
    return models;
  }

  /** The jobs to release now, in order; entries' `next` is advanced in memory. */
  private choose(now: number, waiting: Set<string>): Array<Head & { team: string }> {
    this.pace.refill(waiting, now);
    const heads = new Map<QueueState, Head>();
    const headOf = (q: QueueState) => {
      const entry = q.entries[0];
      if (entry) heads.set(q, { q, entry, item: entry.items[entry.next]! });
      else heads.delete(q);
    };
    for (const q of this.queues.values()) headOf(q);
    this.rejoin(heads);
    this.modelRejoin(heads);
    const picked: Array<Head & { team: string }> = [];
    this.pace.startRound();
    this.endingModels = this.endOfBacklog();
    while (picked.length < this.o.maxPerTick) {
      const next = this.pick(heads);
      if (!next) break;
      const { q, entry, item } = next;
      const quota = this.o.quotaOf(q.model);
      if (quota) this.modelTags.get(q.model)!.tag += item.charge / Math.max(1, quota.tpm);
      this.pace.take(q.model, item.charge);
      q.finish += item.charge / this.weight(q.team);
      picked.push({ team: q.team, q, entry, item });
      entry.next += 1;
      if (entry.next >= entry.items.length) q.entries.shift();
      headOf(q);
    }
    // A queue whose buffer ran out with more to read stays active: its next page is read before the next round.
    for (const q of this.queues.values()) if (!q.more && !q.dirty) q.active = heads.has(q);
    return picked;
  }

  /** The next job to release, or undefined when nothing may go now. */
  private pick(heads: Map<QueueState, Head>): (Head & { finish: number; interactive: boolean }) | undefined {
    let best: (Head & { finish: number; interactive: boolean }) | undefined;
    const floors = new Map<string, { min: number; weights: number }>();
    for (const h of heads.values()) {
      const f = floors.get(h.q.model) ?? { min: Number.POSITIVE_INFINITY, weights: 0 };
      f.min = Math.min(f.min, h.q.finish);
      f.weights += this.weight(h.q.team);
      floors.set(h.q.model, f);
    }
    for (const h of heads.values()) {
      const floor = floors.get(h.q.model)!;
      const interactive = h.entry.priority === 'interactive' && h.q.finish <= floor.min + this.lead(h.q.model, floor.weights);
      if (!this.pace.mayRelease(h.q.model, interactive ? 'interactive' : 'batch', this.endingModels.has(h.q.model))) continue;
      if (!best || (interactive && !best.interactive) || (interactive === best.interactive && this.before(h, best))) {
        best = { ...h, finish: h.q.finish, interactive };
      }
    }
    return best;
  }

  /** Same priority: between models the lower model tag, within one the lower finish tag. */
  private before(h: Head, best: Head & { finish: number }): boolean {
    if (h.q.model === best.q.model) return h.q.finish < best.finish;
    return this.modelTags.get(h.q.model)!.tag < this.modelTags.get(best.q.model)!.tag;
  }

  /** A model that had no head last round starts level with the models that did, as queues do within a model. */
  private modelRejoin(heads: Map<QueueState, Head>): void {
    const now = new Set<string>();
    for (const h of heads.values()) now.add(h.q.model);
    for (const m of now) if (!this.modelTags.has(m)) this.modelTags.set(m, { tag: 0, active: false });
    let floor: number | undefined;
    for (const m of now) {
      const t = this.modelTags.get(m)!;
      if (t.active) floor = floor === undefined ? t.tag : Math.min(floor, t.tag);
    }
    for (const [m, t] of this.modelTags) {
      if (now.has(m) && !t.active && floor !== undefined) t.tag = Math.max(t.tag, floor);
      t.active = now.has(m);
    }
  }

  /**
   * Models whose whole backlog is buffered here and is at most one bucket (10 s of the pace): it is released at once.
   * Paced to the end, the last jobs would reach the workers one by one, and the budget could not tell that the drain
   * ends (its holders would keep their shares of the pace while only one of them still has work).
   */
  private endOfBacklog(): Set<string> {
    const remaining = new Map<string, number>();
    const open = new Set<string>();
    for (const q of this.queues.values()) {
      if (q.more || q.dirty) open.add(q.model);
      let n = 0;
      for (const e of q.entries) for (let i = e.next; i < e.items.length; i += 1) n += e.items[i]!.charge;
      if (n > 0) remaining.set(q.model, (remaining.get(q.model) ?? 0) + n);
    }
    const out = new Set<string>();
    for (const [model, tokens] of remaining) {
      const quota = this.o.quotaOf(model);
      if (quota && !open.has(model) && tokens <= this.pace.capacity(quota.tpm)) out.add(model);
    }
    return out;
  }

  /** A team's interactive jobs may run this far ahead of the queue furthest behind, in finish-tag units. */
  private lead(model: string, weights: number): number {
    const quota = this.o.quotaOf(model);
    if (!quota) return Number.POSITIVE_INFINITY;
    return (quota.tpm * this.o.interactiveLeadMs) / 60_000 / Math.max(1, weights);
  }

  /** A queue that had no head last round starts level with the queues of its model that did: idleness banks no credit. */
  private rejoin(heads: Map<QueueState, Head>): void {
    for (const h of heads.values()) {
      if (h.q.active) continue;
      let floor: number | undefined;
      for (const o of heads.values()) {
        if (o === h || !o.q.active || o.q.model !== h.q.model) continue;
        floor = floor === undefined ? o.q.finish : Math.min(floor, o.q.finish);
      }
      if (floor !== undefined) h.q.finish = Math.max(h.q.finish, floor);
      h.q.active = true;
    }
  }

  private weight(team: string): number {
    const w = this.o.weightOf(team);
    return Number.isFinite(w) && w > 0 ? w : 1;
  }

  /**
   * Sends the picked jobs' messages, then records each entry's progress. A message that fails is not recorded: the
   * entry keeps it from that item on and is re-read, so at worst a job is released twice (the worker's claim runs it
   * once), never lost.
   */
  private async release(picked: Array<Head & { team: string }>): Promise<void> {
    if (picked.length === 0) return;
    const failed = new Set<QueuedJob>();
    await forEachLimit(picked, SEND_CONCURRENCY, async ({ q, entry, item }) => {
      try {
        await this.o.run.send(entry.replay ? { id: item.id, replay: true } : { id: item.id }, entry.priority, this.o.laneOf(q.model));
      } catch (err) {
        failed.add(item);
        this.o.onError?.(err);
      }
    });
    const touched = new Map<TeamQueueEntry, QueueState>();
    for (const p of picked) touched.set(p.entry, p.q);
    await forEachLimit([...touched], SEND_CONCURRENCY, async ([entry, q]) => {
      const firstFailed = entry.items.findIndex((i) => failed.has(i));
      if (firstFailed >= 0) {
        entry.next = firstFailed;
        q.dirty = true;
        if (firstFailed === 0) return;
      }
      try {
        if (entry.next >= entry.items.length) await this.o.store.remove(q, entry.key);
        else await this.o.store.advance(q, entry.key, entry.next);
      } catch (err) {
        // Re-read later: the stored entry releases its items again (duplicates are dropped by the worker's claim).
        q.dirty = true;
        this.o.onError?.(err);
      }
    });
  }
}
