/**
 * A job and its life: queued → running → succeeded | failed, with `waiting` while quota or a region is not available.
 * Plain data and pure transitions; storage lives in src/azure/jobStore.ts.
 */

export type JobStatus = 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed';
export type JobPriority = 'interactive' | 'batch';

export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed']);

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** Why a region was tried and what happened, in order. */
export interface RegionAttempt {
  region: string;
  deployment: string;
  /** Epoch ms the call started. */
  at: number;
  /** HTTP status, or 0 when no response arrived (connection refused, timeout). */
  status: number;
  /** Stable error code (see core/errors.ts) or "ok". */
  outcome: string;
}

export interface JobError {
  code: string;
  message: string;
}

/** The stored job, as the worker and the API see it. Times are epoch milliseconds. */
export interface JobRecord {
  id: string;
  status: JobStatus;
  priority: JobPriority;
  /** Logical model the client asked for. */
  model: string;
  /** The chat-completions body to send (model field removed; the deployment is chosen at run time). */
  request: Record<string, unknown>;
  metadata: Record<string, string>;
  /** Team the job belongs to: the submitting caller's team. */
  team: string;
  createdAt: number;
  startedAt?: number;
  completedAt?: number;
  /** Model calls made for this job. */
  attempts: number;
  /** Prompt tokens counted at submit (o200k, chat overhead included). */
  promptTokens: number;
  /** max_tokens (or max_completion_tokens, or the model default) × n: what the budget reserves beyond the prompt. */
  maxOutputTokens: number;
  region?: string;
  deployment?: string;
  response?: Record<string, unknown>;
  usage?: Record<string, unknown>;
  latencyMs?: number;
  error?: JobError;
  /** Earliest time a waiting job is expected to start (also on a running job its worker holds for quota). */
  notBefore?: number;
  /** Claim held by a worker: who and until when (epoch ms). */
  claimId?: string;
  claimUntil?: number;
  regionsTried: RegionAttempt[];
  /** 429 responses seen while running this job. */
  throttles: number;
  /** Dequeue count of the queue message that last ran the job (1 unless a worker crashed on it). */
  dequeueCount?: number;
  /** Calls that ended in a 5xx, timeout or connection failure. */
  transientFailures?: number;
  /** sha256 of the submitted body, to tell an idempotent retry from a reused key. */
  bodyHash?: string;
  // Batch and submission-queue fields; absent for plain HTTP jobs.
  /** Batch this job is one line of. */
  batchId?: string;
  /** The line's custom_id within its batch. */
  customId?: string;
  /** Queue to post {id, status, client_id} to when the job finishes (submission queue `reply_to`). */
  replyTo?: string;
  /** Producer's client_id from the submission queue (its idempotency key). */
  clientId?: string;
}

/** Tokens the quota is charged when this job is sent: prompt + max output, as Azure estimates at admission. */
export function chargeOf(job: Pick<JobRecord, 'promptTokens' | 'maxOutputTokens'>): number {
  return job.promptTokens + job.maxOutputTokens;
}

const heldWaiting = (job: JobRecord) => job.status === 'running' && job.notBefore !== undefined;

/** The public view of a job (GET /api/v1/jobs/{id}). Times as ISO strings. */
export function toJobView(job: JobRecord): Record<string, unknown> {
  const iso = (t?: number) => (t === undefined ? null : new Date(t).toISOString());
  return {
    id: job.id,
    object: 'sluice.job',
    // A running job with notBefore is held by its worker until quota frees up (worker.ts): it is waiting.
    status: heldWaiting(job) ? 'waiting' : job.status,
    priority: job.priority,
    created_at: iso(job.createdAt),
    started_at: iso(job.startedAt),
    completed_at: iso(job.completedAt),
    attempts: job.attempts,
    dequeue_count: job.dequeueCount ?? null,
    model: job.model,
    region: job.region ?? null,
    deployment: job.deployment ?? null,
    response: job.response ?? null,
    usage: job.usage ?? null,
    latency_ms: job.latencyMs ?? null,
    error: job.error ?? null,
    estimated_start_at: job.status === 'waiting' || heldWaiting(job) ? iso(job.notBefore) : null,
    regions_tried: job.regionsTried.map((a) => ({ ...a, at: new Date(a.at).toISOString() })),
    metadata: job.metadata,
    // Batch lines say which batch and custom_id they serve.
    ...(job.batchId !== undefined ? { batch_id: job.batchId, custom_id: job.customId ?? null } : {}),
  };
}

/** Thrown by a job repository when the record changed since it was read (ETag mismatch). */
export class StaleJobError extends Error {
  constructor(readonly jobId: string) {
    super(`job ${jobId} was changed by someone else`);
    this.name = 'StaleJobError';
  }
}

/** Storage of jobs as the core sees it. */
export interface JobRepository {
  get(id: string): Promise<{ job: JobRecord; etag: string } | undefined>;
  /** Replaces the record if unchanged since `etag`; throws StaleJobError otherwise. Returns the new etag. */
  replace(job: JobRecord, etag: string): Promise<string>;
}
