/**
 * Backlog per team, kept as a counter rather than read from the queues (a lane queue is shared by several teams,
 * so its depth says nothing about one team). Submit adds one for each job it accepts; the worker takes one off when
 * the job ends. Counts live in rows per (team, bucket), the bucket being the job's creation time rounded down to
 * BACKLOG_BUCKET_MS: a job is always taken off the bucket it was added to, and a team's backlog is the sum of its
 * buckets younger than BACKLOG_HORIZON_MS. A count that drifts (a worker that died between ending a job and taking
 * it off, a job ended by another path) therefore stops counting once its bucket ages out: no drift is permanent.
 *
 * Each process adds in memory and flushes its sums every `flushMs` (one read and one ETag-guarded write per team and
 * bucket touched), and re-reads all teams' rows in one query at most every `maxAgeMs`: a submit costs no storage
 * call of its own. Its own unflushed additions are counted at once, so one process never overshoots a limit.
 *
 * The same counter, with longer buckets and horizon, counts jobs waiting for quota (WAITING_COUNT): the rollup's
 * gauge reads those rows instead of scanning the jobs table, so its cost follows the teams, not the history.
 */
import { forEachLimit } from './batch/pool';
import type { JobRecord } from './jobs';

/** Width of a count bucket, ms. */
export const BACKLOG_BUCKET_MS = 15 * 60_000;
/** How long a job counts as backlog after it was created, ms; also how long a drifted count can last. */
export const BACKLOG_HORIZON_MS = 3 * 3600_000;

/**
 * Buckets of the waiting-jobs count: a batch line may wait for quota until its batch expires (24 h at most), so
 * a waiting job counts for 25 h after it was created, in hour-wide buckets (25 rows per team at most).
 */
export const WAITING_COUNT = { bucketMs: 3600_000, horizonMs: 25 * 3600_000 } as const;

/** One team's count of jobs created in one bucket (its start, epoch ms). */
export interface BacklogRow {
  team: string;
  bucket: number;
  count: number;
}

/** Where the counts are kept (src/azure/backlogTable.ts; in memory in tests). */
export interface BacklogStore {
  /** Adds `delta` to the row of (team, bucket), creating it; safe against concurrent writers. Throws on failure. */
  add(team: string, bucket: number, delta: number): Promise<void>;
  /** Every team's rows of buckets starting at or after `sinceBucket`. */
  rows(sinceBucket: number): Promise<BacklogRow[]>;
  /** Deletes a team's rows of buckets before `beforeBucket` (they no longer count). */
  prune(team: string, beforeBucket: number): Promise<void>;
}

export interface BacklogCounterOptions {
  now(): number;
  /** How long additions are gathered before they are written, ms. */
  flushMs: number;
  /** Runs `fn` after `ms` (the deployed app uses an unref'd timer). */
  schedule(fn: () => void, ms: number): void;
  onError?(err: unknown): void;
  /** Bucket width, ms. @default BACKLOG_BUCKET_MS */
  bucketMs?: number;
  /** How long after its creation a job counts, ms. @default BACKLOG_HORIZON_MS */
  horizonMs?: number;
}

/** Is this job counted in its team's backlog? Jobs from submit and the submission queue are; batch lines not yet. */
export function countsAsBacklog(job: Pick<JobRecord, 'batchId'>): boolean {
  return job.batchId === undefined;
}

/** Writes in flight per flush. */
const FLUSH_CONCURRENCY = 8;

type Deltas = Map<string, { team: string; bucket: number; delta: number }>;

export class BacklogCounter {
  private pending: Deltas = new Map();
  /** Taken from `pending` by a refresh and not yet seen by a read. */
  private inFlight: Deltas = new Map();
  private read: { rows: BacklogRow[]; at: number } | undefined;
  private refreshing: Promise<void> | undefined;
  private flushScheduled = false;
  /** Team and bucket pairs this process has pruned for (once per new bucket). */
  private prunedFor = new Set<string>();

  private readonly bucketMs: number;
  private readonly horizonMs: number;

  constructor(private readonly store: BacklogStore, private readonly opts: BacklogCounterOptions) {
    this.bucketMs = opts.bucketMs ?? BACKLOG_BUCKET_MS;
    this.horizonMs = opts.horizonMs ?? BACKLOG_HORIZON_MS;
  }

  private bucketOf(createdAt: number): number {
    return Math.floor(createdAt / this.bucketMs) * this.bucketMs;
  }

  private oldestLive(now: number): number {
    return this.bucketOf(now - this.horizonMs);
  }

  /** Counts a job in (+1) or out (-1) of its team's backlog. Never throws; written in the background. */
  add(team: string, createdAt: number, delta: number): void {
    const bucket = this.bucketOf(createdAt);
    if (bucket < this.oldestLive(this.opts.now())) return;
    mergeDelta(this.pending, team, bucket, delta);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.opts.schedule(() => {
        this.flushScheduled = false;
        void this.refresh().catch((err) => this.opts.onError?.(err));
      }, this.opts.flushMs);
    }
  }

  /**
   * Jobs waiting per team with any (teams at 0 are absent), at most `maxAgeMs` old plus this process's own
   * additions. Only the first call waits for storage; later ones answer from memory and refresh in the background.
   */
  async counts(maxAgeMs: number): Promise<ReadonlyMap<string, number>> {
    const now = this.opts.now();
    if (!this.read || now - this.read.at > maxAgeMs) {
      const refreshing = this.refresh();
      if (this.read) refreshing.catch((err) => this.opts.onError?.(err));
      else await refreshing;
    }
    return this.view(this.opts.now());
  }

  /** Every team's count summed, read from storage now (this process's additions written first). */
  async total(): Promise<number> {
    await this.refresh();
    let sum = 0;
    for (const n of this.view(this.opts.now()).values()) sum += n;
    return sum;
  }

  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const batch = this.pending;
      this.pending = new Map();
      for (const d of batch.values()) mergeDelta(this.inFlight, d.team, d.bucket, d.delta);
      await this.flush(batch);
      const now = this.opts.now();
      const rows = await this.store.rows(this.oldestLive(now));
      this.read = { rows, at: now };
      this.inFlight = new Map();
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** Writes each sum; one that fails goes back to `pending` for the next flush. */
  private async flush(batch: Deltas): Promise<void> {
    const live = this.oldestLive(this.opts.now());
    await forEachLimit([...batch.values()], FLUSH_CONCURRENCY, async ({ team, bucket, delta }) => {
      if (delta === 0 || bucket < live) return;
      try {
        await this.store.add(team, bucket, delta);
      } catch (err) {
        mergeDelta(this.inFlight, team, bucket, -delta);
        mergeDelta(this.pending, team, bucket, delta);
        this.opts.onError?.(err);
        return;
      }
      const key = `${team}\n${bucket}`;
      if (!this.prunedFor.has(key)) {
        if (this.prunedFor.size >= 10_000) this.prunedFor.clear();
        this.prunedFor.add(key);
        await this.store.prune(team, live).catch((err) => this.opts.onError?.(err));
      }
    });
  }

  /** Per team, the sum of its live buckets; a bucket below zero (more jobs ended than counted) counts as zero. */
  private view(now: number): Map<string, number> {
    const live = this.oldestLive(now);
    const buckets: Deltas = new Map();
    for (const r of this.read?.rows ?? []) mergeDelta(buckets, r.team, r.bucket, r.count);
    for (const d of this.inFlight.values()) mergeDelta(buckets, d.team, d.bucket, d.delta);
    for (const d of this.pending.values()) mergeDelta(buckets, d.team, d.bucket, d.delta);
    const sums = new Map<string, number>();
    for (const { team, bucket, delta } of buckets.values()) {
      if (bucket >= live && delta > 0) sums.set(team, (sums.get(team) ?? 0) + delta);
    }
    return sums;
  }
}

function mergeDelta(into: Deltas, team: string, bucket: number, delta: number): void {
  const key = `${team}\n${bucket}`;
  const d = into.get(key);
  if (d) d.delta += delta;
  else into.set(key, { team, bucket, delta });
}
