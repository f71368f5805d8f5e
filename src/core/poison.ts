/** Ending a job whose message was poisoned (the worker failed on it maxDequeueCount times). */
import type { JobLogger } from './worker';

const POISON_ERROR = {
  code: 'worker_crashed',
  message: 'The worker failed on this job repeatedly (its queue message was moved to the poison queue). It was not retried further.',
};

/** The one write a poison handler needs: fail the job unless it already ended, without reading its payloads. */
export interface PoisonTarget {
  failIfNotTerminal(id: string, error: { code: string; message: string }, now: number): Promise<boolean>;
}

/** Marks the job failed unless it already ended. Safe to run twice. */
export async function markPoisoned(jobs: PoisonTarget, jobId: string, now: number, log: JobLogger): Promise<boolean> {
  const changed = await jobs.failIfNotTerminal(jobId, POISON_ERROR, now);
  log(changed ? 'error' : 'info', changed ? `failed: ${POISON_ERROR.code}` : 'poison message for a job that already ended or is unknown', { jobId });
  return changed;
}
