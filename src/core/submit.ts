/**
 * Turning a submit body into a job: schema validation (zod), the model's limits, the context-window guard, and
 * the id (random, or derived from an Idempotency-Key so a retried submit finds the same job).
 */
import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { chatCharge, chatFields, chatMessage } from './chatRequest';
import { modelEntry, type ModelLimits } from './models';
import { ValidationError } from './errors';
import type { JobPriority, JobRecord } from './jobs';

const chatRequest = z
  .object({
    ...chatFields,
    model: z.string({ error: 'is required: the logical model, e.g. "gpt-4o-mini"' }).min(1),
    messages: z.array(chatMessage, { error: 'is required: a non-empty list of chat messages' }).min(1, 'must contain at least one message'),
    max_tokens: z.number().int().positive().optional(),
    max_completion_tokens: z.number().int().positive().optional(),
    n: z.number().int().min(1).max(128).optional(),
    stream: z.literal(false, { error: 'stream is not supported for queued jobs; omit it or set false' }).optional(),
  })
  .strict();

const metadata = z
  .record(z.string().min(1).max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, 'has more than 16 keys');

export const submitSchema = z
  .object({
    request: chatRequest,
    priority: z.enum(['interactive', 'batch']).default('interactive'),
    metadata: metadata.default({}),
  })
  .strict();

export type SubmitBody = z.output<typeof submitSchema>;

/** Formats a zod path as `request.messages[0].role`. */
function pathOf(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)), '');
}

/** Validates a parsed JSON body; throws ValidationError naming the first bad field. */
export function parseSubmitBody(body: unknown): SubmitBody {
  const parsed = submitSchema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys' && issue.path.length > 0) {
    // Inside the request: name the first field Sluice does not pass on.
    const param = pathOf([...issue.path, issue.keys[0]!]);
    throw new ValidationError(`${param}: not a chat-completions field Sluice passes to the model; remove it`, param, 'unsupported_parameter');
  }
  const param = pathOf(issue.path) || 'body';
  const detail = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
  throw new ValidationError(`${param}: ${detail}`, param);
}

export interface PrepareOptions {
  models: Record<string, ModelLimits>;
  now: number;
  /** Client-supplied Idempotency-Key header, if any. */
  idempotencyKey?: string;
  /** Team the job belongs to. @default metadata.team or "default" */
  team?: string;
}

/** Stable body hash, to tell an idempotent retry from a reused key with a different body. */
export function hashBody(body: SubmitBody): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

/** Job ids look like `job_<32 hex>`; idempotent ids are derived from the team and key. */
export function jobIdFor(team: string, idempotencyKey?: string): string {
  if (!idempotencyKey) return `job_${randomUUID().replace(/-/g, '')}`;
  return `job_${createHash('sha256').update(`${team}\n${idempotencyKey}`).digest('hex').slice(0, 32)}`;
}

/** `job_<32 hex>`, or a batch line's `job_<16 hex partition>_<24 hex line>` (see lineJobId in core/batch/validate). */
export const JOB_ID_PATTERN = /^job_(?:[0-9a-f]{32}|[0-9a-f]{16}_[0-9a-f]{24})$/;

/** Builds the job record for a validated body, applying the model's limits and the context-window guard. */
export function prepareJob(body: SubmitBody, opts: PrepareOptions): JobRecord {
  const { request } = body;
  const limits = modelEntry(opts.models, request.model);
  if (!limits) {
    throw new ValidationError(
      `request.model: "${request.model}" is not a configured model (configured: ${Object.keys(opts.models).join(', ')})`,
      'request.model',
      'model_not_found',
    );
  }
  const { maxTokens, promptTokens } = chatCharge(request, limits, 'request.');
  const n = request.n ?? 1;
  // The model is chosen per deployment at run time; the ceiling is always sent, since Azure charges quota for it.
  const { model: _model, ...toSend } = request;
  if (request.max_completion_tokens === undefined && request.max_tokens === undefined) toSend.max_tokens = maxTokens;
  const team = opts.team ?? body.metadata.team ?? 'default';
  return {
    id: jobIdFor(team, opts.idempotencyKey),
    status: 'queued',
    priority: body.priority as JobPriority,
    model: request.model,
    request: toSend,
    metadata: body.metadata,
    team,
    createdAt: opts.now,
    attempts: 0,
    promptTokens,
    maxOutputTokens: maxTokens * n,
    regionsTried: [],
    throttles: 0,
    bodyHash: hashBody(body),
  };
}
