/**
 * The submission queue: producers put the body of POST /api/v1/jobs on a queue, plus `api_key` (a Sluice API key
 * of the team the job bills, checked as the api-key header is), an optional `client_id` (idempotency: the same
 * client_id never makes a second job) and `reply_to` (a queue that receives {id, status, client_id, error} when the
 * job finishes). Messages may be JSON or base64 JSON. A message that cannot become a job (no valid key, a disabled
 * or stopped team, a reply_to naming one of Sluice's own queues, a bad body) goes to the dead-letter queue with the
 * reason; it is never dropped or retried forever.
 */
import { ValidationError } from '../errors';
import type { ModelSettings } from '../models';
import type { JobRecord, JobStatus } from '../jobs';
import type { Refusal } from '../admission';
import type { Team } from '../teams/model';
import { hashBody, parseSubmitBody, prepareJob } from '../submit';

const QUEUE_NAME = /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** A Sluice API key anywhere in a text, secret part included (see teams/model.ts). */
const KEY_IN_TEXT = /(slk_[a-f0-9]{16}_)[A-Za-z0-9_-]{43}/g;

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

/**
 * A message as the dead-letter queue keeps it: without the producer's key. A message that could not be decoded
 * keeps its text with any key's secret blanked.
 */
export function redactSubmission(original: unknown): unknown {
  const decoded = decodeSubmission(original);
  if (decoded.ok) {
    const { api_key: _key, ...rest } = decoded.value;
    return rest;
  }
  const text = Buffer.isBuffer(original) ? original.toString('utf8') : String(original);
  return text.slice(0, 60_000).replace(KEY_IN_TEXT, '$1***');
}

/** Is `name` one of Sluice's own queues (`own`), or a lane or poison queue derived from one (`<name>-…`)? */
export function isOwnQueue(name: string, own: readonly string[]): boolean {
  return own.some((q) => name === q || name.startsWith(`${q}-`));
}

/** The team a producer's key proves, or why it proves none (codes as for the api-key header). */
export type ProducerTeam = { ok: true; team: Team } | { ok: false; code: string; message: string };

export interface SubmissionPort {
  /** Checks a producer's key as the api-key header is checked (cached; a disabled team is refused). */
  authenticate(apiKey: string): Promise<ProducerTeam>;
  /** Why the team may not start work now (admission's team rule, spend from the background cache). */
  teamLimit(team: Team): Refusal | undefined;
  create(job: JobRecord): Promise<boolean>;
  get(id: string): Promise<{ bodyHash?: string; status: JobStatus } | undefined>;
  /** Hands the job over to run (its team queue, or its team's queue lane). */
  enqueue(job: JobRecord, teamLane: number): Promise<void>;
}

export type SubmissionOutcome =
  | { kind: 'queued'; jobId: string }
  | { kind: 'replayed'; jobId: string }
  | { kind: 'dead-letter'; reason: DeadLetterReason };

/** Turns one decoded message into a queued job (at-least-once safe: a redelivery finds and re-enqueues its job). */
export async function acceptSubmission(
  message: Record<string, unknown>,
  deps: SubmissionPort,
  opts: {
    models: Record<string, ModelSettings>;
    now: number;
    /** Sluice's own queue names (jobs, batch, submit, dead-letter): never a reply_to. */
    ownQueues: readonly string[];
  },
): Promise<SubmissionOutcome> {
  const { api_key: apiKey, client_id: clientId, reply_to: replyTo, ...body } = message;
  const dead = (code: string, text: string, param: string | null): SubmissionOutcome => ({ kind: 'dead-letter', reason: { code, message: text, param } });
  if (typeof apiKey !== 'string' || apiKey.length === 0) {
    return dead('missing_credentials', 'api_key: a Sluice API key of the team the job bills is required', 'api_key');
  }
  if (clientId !== undefined && (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 255)) {
    return dead('invalid_request', 'client_id: must be a string of 1 to 255 characters', 'client_id');
  }
  if (replyTo !== undefined && (typeof replyTo !== 'string' || !QUEUE_NAME.test(replyTo))) {
    return dead('invalid_request', 'reply_to: must be a storage queue name (3-63 lowercase letters, digits, dashes)', 'reply_to');
  }
  if (typeof replyTo === 'string' && isOwnQueue(replyTo, opts.ownQueues)) {
    return dead('reply_to_reserved', `reply_to: "${replyTo}" is one of Sluice's own queues`, 'reply_to');
  }
  // The key decides the team: metadata.team in the message never does, so a producer bills only its own team.
  const producer = await deps.authenticate(apiKey);
  if (!producer.ok) return dead(producer.code, producer.message, 'api_key');
  const refused = deps.teamLimit(producer.team);
  if (refused) return dead(refused.code, refused.message, null);
  let job: JobRecord;
  let hash: string;
  try {
    const parsed = parseSubmitBody(body);
    job = prepareJob(parsed, { models: opts.models, now: opts.now, idempotencyKey: clientId as string | undefined, team: producer.team.id });
    hash = hashBody(parsed);
  } catch (err) {
    if (err instanceof ValidationError) return dead(err.code, err.message, err.param ?? null);
    throw err;
  }
  if (replyTo) job.replyTo = replyTo as string;
  if (clientId) job.clientId = clientId as string;
  if (await deps.create(job)) {
    await deps.enqueue(job, producer.team.lane);
    return { kind: 'queued', jobId: job.id };
  }
  const existing = await deps.get(job.id);
  if (!existing) throw new Error(`job ${job.id} exists but could not be read`);
  if (existing.bodyHash !== hash) return dead('idempotency_key_reused', 'client_id was already used with a different request body', 'client_id');
  // A redelivery after a crash between insert and enqueue: enqueue again while nobody has run it (harmless twice).
  if (existing.status === 'queued') await deps.enqueue(job, producer.team.lane);
  return { kind: 'replayed', jobId: job.id };
}
