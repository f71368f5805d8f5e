/**
 * Recording a submitted job: store its row once per id (an Idempotency-Key makes the id stable), then enqueue it.
 * Nothing is left half-written: a job whose message cannot be sent is withdrawn again, so a retry starts clean.
 */
import { StaleJobError, type JobRecord } from './jobs';
import { retryDelayMs } from './retry';

/** The job table as submit sees it. */
export interface IntakeJobs {
  /** Inserts a new job; returns its ETag, or undefined when a job with that id already exists. */
  insert(job: JobRecord): Promise<string | undefined>;
  get(id: string): Promise<{ job: JobRecord; etag: string } | undefined>;
  /** Replaces the record if unchanged since `etag`; throws StaleJobError otherwise. */
  replace(job: JobRecord, etag: string): Promise<string>;
  /** Deletes the record if unchanged since `etag`; false when it was not there or had changed. */
  delete(id: string, etag: string): Promise<boolean>;
}

/** The job's queue lane as submit sees it. */
export interface IntakeQueue {
  send(message: { id: string; replay?: true }): Promise<void>;
}

export type Stored =
  /** A new row; enqueue it with `enqueueJob`. */
  | { kind: 'created'; etag: string }
  /** The id was already recorded with the same body: answer with that job. `resend`: it is still queued and was
   *  adopted, so send a replay message (`enqueueReplay`). */
  | { kind: 'existing'; job: JobRecord; resend: boolean }
  /** The id was already recorded with a different body (an Idempotency-Key reused). */
  | { kind: 'conflict' };

/** Times the store tries again when the row it met vanished or changed under it. */
const STORE_RACES = 2;

/** Stores the job's row, or finds the row an earlier submit with the same id left. */
export async function storeJob(jobs: IntakeJobs, job: JobRecord): Promise<Stored> {
  for (let tries = 0; ; tries += 1) {
    const etag = await jobs.insert(job);
    if (etag !== undefined) return { kind: 'created', etag };
    const existing = await jobs.get(job.id);
    if (!existing) {
      if (tries < STORE_RACES) continue; // withdrawn by a failed first attempt's cleanup in the meantime: record it afresh
      throw new Error(`job ${job.id} exists but could not be read`);
    }
    if (existing.job.bodyHash !== job.bodyHash) return { kind: 'conflict' };
    if (existing.job.status !== 'queued') return { kind: 'existing', job: existing.job, resend: false };
    // A replay of a job still `queued` adopts the row. The first attempt may have stored the row and then failed both
    // the send and its cleanup (a storage outage, answered 503 with Retry-After), leaving a row no message points
    // to. Rewriting the row changes its ETag, so that attempt's background cleanup (ETag-guarded) no longer deletes
    // it; the replay message runs the job only if it is still queued when it arrives and is dropped otherwise, and
    // the worker's claim keeps it to one model call either way.
    try {
      await jobs.replace(existing.job, existing.etag);
    } catch (err) {
      if (!(err instanceof StaleJobError)) throw err;
      // Changed under us: a worker claimed it (then it has its message) or a cleanup removed it (record it afresh).
      if (tries < STORE_RACES) continue;
      throw err;
    }
    return { kind: 'existing', job: existing.job, resend: true };
  }
}

export interface WithdrawOptions {
  /** How long a withdrawal that failed keeps being retried in the background, ms. @default 120000 */
  forMs?: number;
  /** Told when the background withdrawal gives up. */
  warn(message: string): void;
  /** @default Date.now */
  now?: () => number;
  /** Runs `fn` after `ms` without keeping the process alive. @default an unref'd setTimeout */
  schedule?(fn: () => void, ms: number): void;
}

/**
 * Sends the new job's message. If the send fails, the row is deleted again (ETag-guarded: a replay that adopted the
 * row wins) and the error is thrown; if storage is down for the delete too, it is retried in the background.
 */
export async function enqueueJob(queue: IntakeQueue, jobs: IntakeJobs, job: JobRecord, etag: string, opts: WithdrawOptions): Promise<void> {
  try {
    await queue.send({ id: job.id });
  } catch (err) {
    await jobs.delete(job.id, etag).catch(() => withdrawLater(() => jobs.delete(job.id, etag), opts));
    throw err;
  }
}

/** Sends the replay message for a job an idempotent retry adopted (see `storeJob`). */
export async function enqueueReplay(queue: IntakeQueue, jobId: string): Promise<void> {
  await queue.send({ id: jobId, replay: true });
}

/** Retries a failed submit's cleanup with backoff for up to `forMs`, off the request path. */
function withdrawLater(remove: () => Promise<boolean>, opts: WithdrawOptions): void {
  const now = opts.now ?? Date.now;
  const schedule = opts.schedule ?? ((fn, ms) => void setTimeout(fn, ms).unref?.());
  const deadline = now() + (opts.forMs ?? 120_000);
  const attempt = (n: number) =>
    schedule(() => {
      remove().then(
        () => undefined,
        (err: Error) => {
          if (now() < deadline) attempt(n + 1);
          else opts.warn(`a failed submit's row could not be removed: ${err.message} (an idempotent retry still runs it)`);
        },
      );
    }, retryDelayMs(n, undefined, { baseMs: 1_000, maxMs: 15_000 }));
  attempt(1);
}
