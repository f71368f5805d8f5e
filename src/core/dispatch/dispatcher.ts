/**
 * The dispatcher: releases jobs from the team queues into the jobs queue, in weighted fair order and at the pace the
 * models' quotas can run them, so that the jobs queue holds only work the fleet can start soon (docs/design/dispatch.md).
 *
 * One tick:
 *   1. read every team's marker (one query, one small row per team) and re-read the head of each team whose queue
 *      changed; a team's next page is read when its buffered entries run out;
 *   2. refill each model's token and request buckets at its deployments' quota × `rateFactor`, up to `burstMs` of it;
 *   3. release, one job at a time: an interactive job whose team is less than `interactiveLeadMs` of its fair share
 *      ahead of the team furthest behind goes first; otherwise the head of the team furthest behind (start-time fair
 *      queuing: each team has a finish tag per model, advanced by charge ÷ weight; a team that comes back from idle
 *      starts level with the others). Batch work waits while the jobs queue holds `maxDepth` messages or more, or
 *      its model's bucket is empty; interactive work may borrow one burst ahead;
 *   4. send the released jobs' messages, then remove (or advance) their entries.
 * Costs per tick: one marker query, a queue depth read per `depthEveryMs`, a page read per team whose queue
 * changed, and per released job one message plus its share of an entry write: nothing depends on how much history
 * is stored, and the team count only through the marker query.
 *
 * Plain TypeScript driven by `now()`; storage behind TeamQueueStore and RunQueue.
 */
import { forEachLimit } from '../batch/pool';
import type { JobPriority } from '../jobs';
import type { QueuedJob, RunQueue, TeamQueueEntry, TeamQueueStore } from './teamQueue';

export interface ModelQuota {
  tpm: number;
  rpm: number;
}

export interface DispatcherOptions {
  store: TeamQueueStore;
  run: RunQueue;
  now(): number;
  /** What the model's deployments grant together; undefined: a model nothing serves (released at once, the worker ends it). */
  quotaOf(model: string): ModelQuota | undefined;
  /** Team weight (> 0). */
  weightOf(team: string): number;
  /** Seconds of the quotas' pace the jobs queue may hold before batch work waits. @default 20 */
  depthSeconds?: number;
  /** Release pace ÷ quota: a little above 1 keeps the budget's line fed. @default 1.05 */
  rateFactor?: number;
  /** A bucket holds this much of its pace, ms. @default 10000 */
  burstMs?: number;
  /** How far ahead of its fair share a team's interactive jobs may go before they wait their turn, ms of the pace. @default 30000 */
  interactiveLeadMs?: number;
  /** Entries read per page. @default 32 */
  pageSize?: number;
  /** Every team's head is re-read this often even without a marker change (a lost marker write), ms. @default 30000 */
  rescanMs?: number;
  /** How often the jobs queue's depth is read, ms. @default 1000 */
  depthEveryMs?: number;
  /** Most jobs released per tick. @default 256 */
  maxPerTick?: number;
  onError?(err: unknown): void;
}

export interface TickResult {
  /** Jobs released this tick. */
  released: number;
  /** Teams with jobs still waiting in their queue. */
  backlogged: number;
}

interface TeamState {
  version?: string;
  /** Re-read from the head at the next tick. */
  dirty: boolean;
  /** Buffered entries, in key order; the first one's `next` item is the team's head. */
  entries: TeamQueueEntry[];
  /** The last page read was full: more entries follow `lastKey`. */
  more: boolean;
  lastKey?: string;
  /** Finish tag per model, weighted tokens. */
  finish: Map<string, number>;
  /** Models the team had a head for at the last release round (a team absent from one comes back level). */
  activeFor: Set<string>;
}

interface Bucket {
  tokens: number;
  requests: number;
  at: number;
}

/** Unknown charges count as this many tokens for the depth estimate. */
const TYPICAL_CHARGE = 1_500;
const MIN_DEPTH = 32;
const SEND_CONCURRENCY = 16;
const READ_CONCURRENCY = 8;

export class Dispatcher {
  private readonly teams = new Map<string, TeamState>();
  private readonly buckets = new Map<string, Bucket>();
  private depth = 0;
  private depthAt = Number.NEGATIVE_INFINITY;
  private rescanAt = Number.NEGATIVE_INFINITY;
  private avgCharge = TYPICAL_CHARGE;
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
      ...opts,
    };
  }

  async tick(): Promise<TickResult> {
    const now = this.o.now();
    await this.readMarkers(now);
    await this.readQueues();
    if (now - this.depthAt >= this.o.depthEveryMs) {
      this.depth = await this.o.run.depth();
      this.depthAt = now;
    }
    const picked = this.choose(now);
    await this.release(picked);
    let backlogged = 0;
    for (const t of this.teams.values()) if (t.entries.length > 0 || t.more) backlogged += 1;
    return { released: picked.length, backlogged };
  }

  /**
   * Forgets what was read: every team is re-read from its head at the next tick. A run calls it when it takes the
   * lease, since another dispatcher may have released jobs meanwhile.
   */
  resync(): void {
    for (const t of this.teams.values()) {
      t.dirty = true;
      t.entries = [];
      t.more = false;
    }
    this.depthAt = Number.NEGATIVE_INFINITY;
  }

  /** Jobs buffered per team (tests, diagnostics). */
  buffered(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, t] of this.teams) out.set(name, t.entries.reduce((n, e) => n + e.items.length - e.next, 0));
    return out;
  }

  private async readMarkers(now: number): Promise<void> {
    const rescan = now - this.rescanAt >= this.o.rescanMs;
    if (rescan) this.rescanAt = now;
    for (const m of await this.o.store.markers()) {
      let t = this.teams.get(m.team);
      if (!t) this.teams.set(m.team, (t = { dirty: true, entries: [], more: false, finish: new Map(), activeFor: new Set() }));
      if (t.version !== m.version || rescan) t.dirty = true;
      t.version = m.version;
    }
  }

  /** Re-reads changed teams from their head, and the next page of teams whose buffer ran out. */
  private async readQueues(): Promise<void> {
    const due = [...this.teams].filter(([, t]) => t.dirty || (t.entries.length === 0 && t.more));
    await forEachLimit(due, READ_CONCURRENCY, async ([team, t]) => {
      const fromHead = t.dirty;
      t.dirty = false;
      try {
        const page = await this.o.store.read(team, this.o.pageSize, fromHead ? undefined : t.lastKey);
        t.entries = page.filter((e) => e.next < e.items.length);
        t.more = page.length >= this.o.pageSize;
        t.lastKey = page.at(-1)?.key ?? (fromHead ? undefined : t.lastKey);
      } catch (err) {
        t.dirty = true;
        this.o.onError?.(err);
      }
    });
  }

  /** The jobs to release now, in order; entries' `next` is advanced in memory. */
  private choose(now: number): Array<{ team: string; entry: TeamQueueEntry; item: QueuedJob }> {
    this.refill(now);
    const heads = new Map<string, { t: TeamState; entry: TeamQueueEntry; item: QueuedJob }>();
    const headOf = (team: string, t: TeamState) => {
      const entry = t.entries[0];
      if (entry) heads.set(team, { t, entry, item: entry.items[entry.next]! });
      else heads.delete(team);
    };
    for (const [team, t] of this.teams) headOf(team, t);
    this.rejoin(heads);
    const picked: Array<{ team: string; entry: TeamQueueEntry; item: QueuedJob }> = [];
    const maxDepth = this.maxDepth();
    while (picked.length < this.o.maxPerTick) {
      const next = this.pick(heads, maxDepth);
      if (!next) break;
      const { team, t, entry, item } = next;
      const quota = this.o.quotaOf(item.model);
      if (quota) {
        const b = this.buckets.get(item.model)!;
        b.tokens -= item.charge;
        b.requests -= 1;
      }
      t.finish.set(item.model, this.finishOf(t, item.model) + item.charge / this.weight(team));
      this.avgCharge += (item.charge - this.avgCharge) / 64;
      this.depth += 1;
      picked.push({ team, entry, item });
      entry.next += 1;
      if (entry.next >= entry.items.length) t.entries.shift();
      headOf(team, t);
    }
    for (const [team, t] of this.teams) {
      // A team whose buffer ran out with more to read stays active: its next page is read before the next round.
      if (t.more || t.dirty) continue;
      t.activeFor.clear();
      const h = heads.get(team);
      if (h) t.activeFor.add(h.item.model);
    }
    return picked;
  }

  /** The next job to release, or undefined when nothing may go now. */
  private pick(heads: Map<string, { t: TeamState; entry: TeamQueueEntry; item: QueuedJob }>, maxDepth: number) {
    let best: { team: string; t: TeamState; entry: TeamQueueEntry; item: QueuedJob; finish: number; interactive: boolean } | undefined;
    const floors = new Map<string, { min: number; weights: number }>();
    for (const [team, h] of heads) {
      const f = floors.get(h.item.model) ?? { min: Number.POSITIVE_INFINITY, weights: 0 };
      f.min = Math.min(f.min, this.finishOf(h.t, h.item.model));
      f.weights += this.weight(team);
      floors.set(h.item.model, f);
    }
    for (const [team, h] of heads) {
      const { model } = h.item;
      const finish = this.finishOf(h.t, model);
      const interactive = h.entry.priority === 'interactive' && finish <= floors.get(model)!.min + this.lead(model, floors.get(model)!.weights);
      if (!this.mayRelease(model, interactive ? 'interactive' : 'batch', maxDepth)) continue;
      if (!best || (interactive && !best.interactive) || (interactive === best.interactive && finish < best.finish)) {
        best = { team, ...h, finish, interactive };
      }
    }
    return best;
  }

  private mayRelease(model: string, priority: JobPriority, maxDepth: number): boolean {
    const quota = this.o.quotaOf(model);
    if (!quota) return true;
    const b = this.buckets.get(model)!;
    if (priority === 'interactive') return b.tokens > -this.capacity(quota.tpm) && b.requests > -this.capacity(quota.rpm);
    return this.depth < maxDepth && b.tokens > 0 && b.requests > 0;
  }

  /** A team's interactive jobs may run this far ahead of the team furthest behind, in finish-tag units. */
  private lead(model: string, weights: number): number {
    const quota = this.o.quotaOf(model);
    if (!quota) return Number.POSITIVE_INFINITY;
    return (quota.tpm * this.o.interactiveLeadMs) / 60_000 / Math.max(1, weights);
  }

  /** A team that had no head for a model last round starts level with the teams that did: idleness banks no credit. */
  private rejoin(heads: Map<string, { t: TeamState; item: QueuedJob }>): void {
    for (const [team, h] of heads) {
      const { model } = h.item;
      if (h.t.activeFor.has(model)) continue;
      let floor: number | undefined;
      for (const [other, o] of heads) {
        if (other === team || !o.t.activeFor.has(o.item.model) || o.item.model !== model) continue;
        const f = this.finishOf(o.t, model);
        floor = floor === undefined ? f : Math.min(floor, f);
      }
      if (floor !== undefined) h.t.finish.set(model, Math.max(this.finishOf(h.t, model), floor));
      h.t.activeFor.add(model);
    }
  }

  private refill(now: number): void {
    const models = new Set<string>();
    for (const t of this.teams.values()) for (const e of t.entries) for (const i of e.items) models.add(i.model);
    for (const model of models) {
      const quota = this.o.quotaOf(model);
      if (!quota) continue;
      const b = this.buckets.get(model);
      if (!b) {
        this.buckets.set(model, { tokens: this.capacity(quota.tpm), requests: this.capacity(quota.rpm), at: now });
        continue;
      }
      const dt = Math.max(0, now - b.at);
      b.at = now;
      b.tokens = Math.min(this.capacity(quota.tpm), b.tokens + (quota.tpm * this.o.rateFactor * dt) / 60_000);
      b.requests = Math.min(this.capacity(quota.rpm), b.requests + (quota.rpm * this.o.rateFactor * dt) / 60_000);
    }
  }

  private capacity(perMinute: number): number {
    return (perMinute * this.o.burstMs) / 60_000;
  }

  /** Messages worth holding in the jobs queue: `depthSeconds` of every model's pace, in jobs of the recent charge. */
  private maxDepth(): number {
    let perSecond = 0;
    for (const model of this.buckets.keys()) {
      const q = this.o.quotaOf(model);
      if (q) perSecond += Math.min(q.tpm / 60 / Math.max(1, this.avgCharge), q.rpm / 60);
    }
    return Math.max(MIN_DEPTH, Math.ceil(perSecond * this.o.depthSeconds));
  }

  private finishOf(t: TeamState, model: string): number {
    return t.finish.get(model) ?? 0;
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
  private async release(picked: Array<{ team: string; entry: TeamQueueEntry; item: QueuedJob }>): Promise<void> {
    if (picked.length === 0) return;
    const failed = new Set<QueuedJob>();
    await forEachLimit(picked, SEND_CONCURRENCY, async ({ entry, item }) => {
      try {
        await this.o.run.send(entry.replay ? { id: item.id, replay: true } : { id: item.id }, entry.priority);
      } catch (err) {
        failed.add(item);
        this.o.onError?.(err);
      }
    });
    const touched = new Map<TeamQueueEntry, string>();
    for (const p of picked) touched.set(p.entry, p.team);
    await forEachLimit([...touched], SEND_CONCURRENCY, async ([entry, team]) => {
      const firstFailed = entry.items.findIndex((i) => failed.has(i));
      const t = this.teams.get(team)!;
      if (firstFailed >= 0) {
        entry.next = firstFailed;
        t.dirty = true;
        if (firstFailed === 0) return;
      }
      try {
        if (entry.next >= entry.items.length) await this.o.store.remove(team, entry.key);
        else await this.o.store.advance(team, entry.key, entry.next);
      } catch (err) {
        // Re-read later: the stored entry releases its items again (duplicates are dropped by the worker's claim).
        t.dirty = true;
        this.o.onError?.(err);
      }
    });
  }
}
