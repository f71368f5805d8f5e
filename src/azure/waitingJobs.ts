/**
 * Notices when a job starts or stops waiting for quota, from the rows JobStore reads and writes, so the waiting
 * count can be kept as a counter (core/backlog.ts WAITING_COUNT) instead of a scan of the jobs table. Every job
 * update is ETag-guarded and follows a read by the same process, so the state at the ETag an update replaced is the
 * state this process last saw with that ETag: a change is counted exactly once, by the process that made it.
 */
import { LRUCache } from 'lru-cache';
import type { JobRecord } from '../core/jobs';

/** Jobs whose last seen state each process remembers; far above the jobs one process holds at once. */
const REMEMBERED_JOBS = 50_000;

/** A job is waiting when parked (`waiting`) or held by its worker for quota (`running` with notBefore). */
export function isWaiting(job: { status?: unknown; notBefore?: unknown }): boolean {
  return job.status === 'waiting' || (job.status === 'running' && typeof job.notBefore === 'number');
}

export type WaitingChange = (job: Pick<JobRecord, 'team' | 'createdAt'>, delta: 1 | -1) => void;

export class WaitingTransitions {
  private readonly seen = new LRUCache<string, { etag: string; waiting: boolean }>({ max: REMEMBERED_JOBS });

  constructor(private readonly onChange: WaitingChange) {}

  /** A row as read, or as just inserted. */
  saw(id: string, etag: string, waiting: boolean): void {
    this.seen.set(id, { etag, waiting });
  }

  /**
   * A row replaced at `etag`. A state this process never saw (forgotten under load) is not counted: the bucket it
   * would have gone to ages out of the count, so a miss cannot last.
   */
  replaced(job: JobRecord, etag: string, newEtag: string): void {
    const before = this.seen.get(job.id);
    const waiting = isWaiting(job);
    if (before?.etag === etag && before.waiting !== waiting) this.onChange(job, waiting ? 1 : -1);
    this.seen.set(job.id, { etag: newEtag, waiting });
  }

  /** A job ended by a direct write (stop, poison) that read its state first. */
  ended(id: string, job: Pick<JobRecord, 'team' | 'createdAt'>, wasWaiting: boolean): void {
    this.seen.delete(id);
    if (wasWaiting) this.onChange(job, -1);
  }
}
