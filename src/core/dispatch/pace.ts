/**
 * How fast, and how far ahead of the workers, the dispatcher may release (dispatcher.ts): per model a token and a
 * request bucket refilled at its deployments' quota × `rateFactor` and holding `burstMs` of it; per lane the depth of
 * its jobs queues, kept within `depthSeconds` of its models' pace. Plain TypeScript; time is a parameter.
 */
import { forEachLimit } from '../batch/pool';
import type { JobPriority } from '../jobs';
import type { RunQueue } from './teamQueue';

export interface ModelQuota {
  tpm: number;
  rpm: number;
}

export interface PaceOptions {
  run: RunQueue;
  quotaOf(model: string): ModelQuota | undefined;
  laneOf(model: string): number;
  depthSeconds: number;
  rateFactor: number;
  burstMs: number;
  depthEveryMs: number;
}

interface Bucket {
  tokens: number;
  requests: number;
  at: number;
}

/** Unknown charges count as this many tokens for the depth estimate. */
const TYPICAL_CHARGE = 1_500;
/** A lane's depth never goes below one host batch (host.json batchSize), however slow its models: one instance's worth. */
const MIN_DEPTH = 16;
const READ_CONCURRENCY = 8;

export class Pace {
  private readonly buckets = new Map<string, Bucket>();
  /** Per lane: messages in its queues (as read, plus what was sent since) and when they were read. */
  private readonly lanes = new Map<number, { depth: number; at: number }>();
  /** Per lane, this round: messages worth holding. */
  private maxDepth = new Map<number, number>();
  private avgCharge = TYPICAL_CHARGE;

  constructor(private readonly o: PaceOptions) {}

  /** Refills the buckets of `models` (those with jobs waiting); a model seen for the first time starts full. */
  refill(models: Iterable<string>, now: number): void {
    for (const model of models) {
      const quota = this.o.quotaOf(model);
      if (!quota) continue;
      const b = this.buckets.get(model);
      if (!b) {
        this.buckets.set(model, { tokens: this.capacity(quota.tpm), requests: this.capacity(quota.rpm), at: now });
        continue;
      }
      if (b.at === now) continue;
      const dt = Math.max(0, now - b.at);
      b.at = now;
      b.tokens = Math.min(this.capacity(quota.tpm), b.tokens + (quota.tpm * this.o.rateFactor * dt) / 60_000);
      b.requests = Math.min(this.capacity(quota.rpm), b.requests + (quota.rpm * this.o.rateFactor * dt) / 60_000);
    }
  }

  /** Reads the depth of the lanes of `models` (those with jobs buffered), each at most once per depthEveryMs. */
  async readDepths(models: Iterable<string>, now: number): Promise<void> {
    const due = new Set<number>();
    for (const model of models) {
      const lane = this.o.laneOf(model);
      if (now - (this.lanes.get(lane)?.at ?? Number.NEGATIVE_INFINITY) >= this.o.depthEveryMs) due.add(lane);
    }
    await forEachLimit([...due], READ_CONCURRENCY, async (lane) => {
      this.lanes.set(lane, { depth: await this.o.run.depth(lane), at: now });
    });
  }

  /** Every lane's depth is read again at the next tick. */
  forgetDepths(): void {
    for (const l of this.lanes.values()) l.at = Number.NEGATIVE_INFINITY;
  }

  /** Before a release round: the messages worth holding per lane, `depthSeconds` of its models' pace in jobs of the recent charge. */
  startRound(): void {
    const perSecond = new Map<number, number>();
    for (const model of this.buckets.keys()) {
      const q = this.o.quotaOf(model);
      const lane = this.o.laneOf(model);
      if (q) perSecond.set(lane, (perSecond.get(lane) ?? 0) + Math.min(q.tpm / 60 / Math.max(1, this.avgCharge), q.rpm / 60));
    }
    this.maxDepth = new Map([...perSecond].map(([lane, rate]) => [lane, Math.max(MIN_DEPTH, Math.ceil(rate * this.o.depthSeconds))]));
  }

  /**
   * Whether a job of `model` may go now. Interactive work may borrow one burst ahead of the buckets; batch work waits
   * while its lane is full or its model's bucket is empty, unless `ending` (the end of the model's backlog).
   */
  mayRelease(model: string, priority: JobPriority, ending: boolean): boolean {
    const quota = this.o.quotaOf(model);
    if (!quota) return true;
    const b = this.buckets.get(model)!;
    if (priority === 'interactive') return b.tokens > -this.capacity(quota.tpm) && b.requests > -this.capacity(quota.rpm);
    const lane = this.o.laneOf(model);
    return (this.lanes.get(lane)?.depth ?? Number.POSITIVE_INFINITY) < (this.maxDepth.get(lane) ?? MIN_DEPTH) && ((b.tokens > 0 && b.requests > 0) || ending);
  }

  /** A job of `model` charging `charge` tokens was released. */
  take(model: string, charge: number): void {
    const b = this.buckets.get(model);
    if (b) {
      b.tokens -= charge;
      b.requests -= 1;
    }
    this.avgCharge += (charge - this.avgCharge) / 64;
    const lane = this.lanes.get(this.o.laneOf(model));
    if (lane) lane.depth += 1;
  }

  /** What a bucket holds of a per-minute rate. */
  capacity(perMinute: number): number {
    return (perMinute * this.o.burstMs) / 60_000;
  }
}
