/**
 * What Sluice keeps for how long (docs/retention.md), as pure rules over times in epoch ms: when a job, a file or a
 * usage row has expired, and the OpenAI Files API's `expires_after` on upload.
 */
import { ValidationError } from '../errors';
import { isTerminal, type JobStatus } from '../jobs';

export const DAY_MS = 86_400_000;

/** Retention periods, in days. */
export interface RetentionPolicy {
  /** A finished job's record and payload blobs, after it finished. @default 30 */
  jobsDays: number;
  /** Usage rows, after their minute window (year-over-year cost needs more than a year). @default 400 */
  usageDays: number;
  /** A file without `expires_after`, after its creation. @default 30 */
  filesDays: number;
}

/** `expires_after.seconds` bounds, as the OpenAI Files API: 1 hour to 30 days. */
export const EXPIRES_AFTER_MIN_S = 3_600;
export const EXPIRES_AFTER_MAX_S = 2_592_000;

/** True when a job has finished and its retention has run out; queued or running jobs never expire. */
export function jobExpired(job: { status: JobStatus; createdAt: number; completedAt?: number }, policy: RetentionPolicy, now: number): boolean {
  return isTerminal(job.status) && (job.completedAt ?? job.createdAt) + policy.jobsDays * DAY_MS <= now;
}

/** Jobs that finished at or before this time have expired. */
export function jobsFinishedBy(policy: RetentionPolicy, now: number): number {
  return now - policy.jobsDays * DAY_MS;
}

/** Usage rows of minute windows starting before this time have expired. */
export function usageBefore(policy: RetentionPolicy, now: number): number {
  return now - policy.usageDays * DAY_MS;
}

/** When a file expires: its own `expires_after` (stored as expiresAt), else the default period from its creation. */
export function fileExpiresAt(file: { createdAt: number; expiresAt?: number }, policy: RetentionPolicy): number {
  return file.expiresAt ?? file.createdAt + policy.filesDays * DAY_MS;
}

export function fileExpired(file: { createdAt: number; expiresAt?: number }, policy: RetentionPolicy, now: number): boolean {
  return fileExpiresAt(file, policy) <= now;
}

/** The longest any file is kept: the default period or the longest `expires_after`, whichever is longer. */
export function longestFileRetentionMs(policy: RetentionPolicy): number {
  return Math.max(policy.filesDays * DAY_MS, EXPIRES_AFTER_MAX_S * 1000);
}

/**
 * True when a file created at `createdAt` is past every retention it could have had, so a missing file of that age
 * has expired (file ids carry their creation time: core/batch/model.ts newFileId).
 */
export function fileCertainlyExpired(createdAt: number, policy: RetentionPolicy, now: number): boolean {
  return createdAt + longestFileRetentionMs(policy) <= now;
}

/**
 * `expires_after` of a file upload, as multipart fields `expires_after[anchor]` and `expires_after[seconds]` (how the
 * OpenAI SDKs send it): the expiry time, or undefined when neither is given. Throws a 400 ValidationError otherwise.
 */
export function expiresAtOfUpload(anchor: string | undefined, seconds: string | undefined, createdAt: number): number | undefined {
  if (anchor === undefined && seconds === undefined) return undefined;
  if (anchor !== 'created_at') {
    throw new ValidationError(`expires_after.anchor: ${anchor === undefined ? 'is required' : `"${anchor}" is not supported`}; use "created_at"`, 'expires_after.anchor');
  }
  const s = Number(seconds);
  if (seconds === undefined || !/^\d+$/.test(seconds.trim()) || s < EXPIRES_AFTER_MIN_S || s > EXPIRES_AFTER_MAX_S) {
    throw new ValidationError(`expires_after.seconds: expected an integer from ${EXPIRES_AFTER_MIN_S} to ${EXPIRES_AFTER_MAX_S}, got ${seconds === undefined ? 'nothing' : JSON.stringify(seconds)}`, 'expires_after.seconds');
  }
  return createdAt + s * 1000;
}

/** A file id's creation time (`file-<12 hex inverted ms>…`, core/batch/model.ts newFileId), or undefined. */
export function fileCreatedAtOfId(id: string): number | undefined {
  const m = /^file-([0-9a-f]{12})/.exec(id);
  return m ? 0xffffffffffff - parseInt(m[1]!, 16) : undefined;
}

/** A batch id's creation time (`batch_<12 hex inverted ms>…`), or undefined. */
export function batchCreatedAtOfId(id: string): number | undefined {
  const m = /^batch_([0-9a-f]{12})/.exec(id);
  return m ? 0xffffffffffff - parseInt(m[1]!, 16) : undefined;
}

/** The smallest batch id created at `t` (ids sort newest first, so every batch created before `t` sorts after it). */
export function batchIdBoundary(t: number): string {
  return `batch_${(0xffffffffffff - t).toString(16).padStart(12, '0')}`;
}

/** Metric each sweep run sends per kind of record it deleted (dimension `kind`: jobs, batches, batchLines, files, usageRows). */
export const RETENTION_DELETED_METRIC = 'sluice.retention.deleted';
