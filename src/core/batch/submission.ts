/**
 * The submission queue: producers put the body of POST /api/v1/jobs on a queue, plus an optional `client_id`
 * (idempotency: the same client_id never makes a second job) and `reply_to` (a queue that receives
 * {id, status, client_id, error} when the job finishes). Messages may be JSON or base64 JSON. A message that
 * cannot become a job goes to the dead-letter queue with the reason; it is never dropped or retried forever.
 */
import { ValidationError } from '../errors';
import type { ModelSettings } from '../models';
import type { JobRecord, JobStatus } from '../jobs';
import { hashBody, parseSubmitBody, prepareJob } from '../submit';

const QUEUE_NAME = /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface DeadLetterReason {
  code: string;
  message: string;
  param: string | null;
}

/** What the Functions host hands over (parsed JSON, or text) or a raw queue text → the submission object. */
export function decodeSubmission(input: unknown): { ok: true; value: Record<string, unknown> } | { ok: false; reason: DeadLetterReason } {
  let value = input;
  if (Buffer.isBuffer(value)) value = value.toString('utf8');
  if (typeof value === 'string') {
    let text = value.trim();
    const compact = text.replace(/\s+/g, '');
    if (!text.startsWith('{') && compact.length % 4 === 0 && BASE64.test(compact)) text = Buffer.from(compact, 'base64').toString('utf8').trim();
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { ok: false, reason: { code: 'invalid_json', message: `message is neither JSON nor base64 JSON (${(err as Error).message})`, param: null } };
    }
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, reason: { code: 'invalid_message', message: 'message must be a JSON object like the body of POST /api/v1/jobs', param: null } };
  }
  return { ok: true, value: value as Record<string, unknown> };
}

export interface SubmissionPort {
  create(job: JobRecord): Promise<boolean>;
  get(id: string): Promise<{ bodyHash?: string; status: JobStatus } | undefined>;
  enqueue(id: string): Promise<void>;
}

export type SubmissionOutcome =
  | { kind: 'queued'; jobId: string }
  | { kind: 'replayed'; jobId: string }
  | { kind: 'dead-letter'; reason: DeadLetterReason };

/** Turns one decoded message into a queued job (at-least-once safe: a redelivery finds and re-enqueues its job). */
export async function acceptSubmission(
  message: Record<string, unknown>,
  deps: SubmissionPort,
  opts: { models: Record<string, ModelSettings>; now: number },
): Promise<SubmissionOutcome> {
  const { client_id: clientId, reply_to: replyTo, ...body } = message;
  const dead = (code: string, text: string, param: string | null): SubmissionOutcome => ({ kind: 'dead-letter', reason: { code, message: text, param } });
  if (clientId !== undefined && (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 255)) {
    return dead('invalid_request', 'client_id: must be a string of 1 to 255 characters', 'client_id');
  }
  if (replyTo !== undefined && (typeof replyTo !== 'string' || !QUEUE_NAME.test(replyTo))) {
    return dead('invalid_request', 'reply_to: must be a storage queue name (3-63 lowercase letters, digits, dashes)', 'reply_to');
  }
  let job: JobRecord;
  let hash: string;
  try {
    const parsed = parseSubmitBody(body);
    job = prepareJob(parsed, { models: opts.models, now: opts.now, idempotencyKey: clientId as string | undefined });
    hash = hashBody(parsed);
  } catch (err) {
    if (err instanceof ValidationError) return dead(err.code, err.message, err.param ?? null);
    throw err;
  }
  if (replyTo) job.replyTo = replyTo as string;
  if (clientId) job.clientId = clientId as string;
  if (await deps.create(job)) {
    await deps.enqueue(job.id);
    return { kind: 'queued', jobId: job.id };
  }
  const existing = await deps.get(job.id);
  if (!existing) throw new Error(`job ${job.id} exists but could not be read`);
  if (existing.bodyHash !== hash) return dead('idempotency_key_reused', 'client_id was already used with a different request body', 'client_id');
  // A redelivery after a crash between insert and enqueue: enqueue again while nobody has run it (harmless twice).
  if (existing.status === 'queued') await deps.enqueue(job.id);
  return { kind: 'replayed', jobId: job.id };
}
