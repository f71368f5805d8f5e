/** Ending a job whose message was poisoned (the worker failed on it maxDequeueCount times). */
import { isTerminal, StaleJobError, type JobRepository } from './jobs';
import type { JobLogger } from './worker';

export const POISON_ERROR = {
  code: 'worker_crashed',
  message: 'The worker failed on this job repeatedly (its queue message was moved to the poison queue). It was not retried further.',
};

/** Marks the job failed unless it already ended. Safe to run twice. */
export async function markPoisoned(jobs: JobRepository, jobId: string, now: number, log: JobLogger): Promise<boolean> {
  for (let tries = 0; tries < 5; tries += 1) {
    const stored = await jobs.get(jobId);
    if (!stored) {
      log('warn', 'poison message for an unknown job', { jobId });
      return false;
    }
    if (isTerminal(stored.job.status)) return false;
    try {
      await jobs.replace({ ...stored.job, status: 'failed', error: POISON_ERROR, completedAt: now, claimId: undefined, claimUntil: undefined }, stored.etag);
      log('error', `failed: ${POISON_ERROR.code}`, { jobId, attempt: stored.job.attempts });
      return true;
    } catch (err) {
      if (!(err instanceof StaleJobError)) throw err;
    }
  }
  throw new Error(`could not mark job ${jobId} failed: it kept changing`);
}
