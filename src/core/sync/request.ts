/**
 * The synchronous API's request bodies: chat completions (the job API's message rules, plus `stream` and
 * `stream_options`) and embeddings (a string, a list of strings, a token array or a list of token arrays), each
 * turned into what the budget is charged and what is sent to the deployment.
 */
// Azure's embeddings models count input in cl100k_base (text-embedding-3-*, ada-002), not o200k.
import { countTokens } from 'gpt-tokenizer/model/text-embedding-3-small';
import { z } from 'zod';
import { chatCharge, chatFields, chatMessage } from '../chatRequest';
import { ValidationError } from '../errors';
import { modelEntry, type ModelLimits } from '../models';

export type SyncKind = 'chat' | 'embeddings';

export interface SyncRequest {
  kind: SyncKind;
  /** Logical model (the body's `model`, or the Azure-style path's deployment segment). */
  model: string;
  /** The client's body as validated, without `model`: the cache key's input. */
  clientBody: Record<string, unknown>;
  /** What goes to the deployment: max_tokens filled in, usage always asked for on a stream. */
  upstreamBody: Record<string, unknown>;
  stream: boolean;
  /** The client asked for the usage chunk (`stream_options.include_usage`). */
  includeUsage: boolean;
  /** Prompt tokens as Azure counts them at admission. */
  promptTokens: number;
  /** Output tokens reserved: max_tokens × n for chat, 0 for embeddings. */
  maxOutputTokens: number;
}

/** Tokens the quota is charged for the request: prompt + reserved output, as Azure estimates at admission. */
export function chargeOfRequest(req: Pick<SyncRequest, 'promptTokens' | 'maxOutputTokens'>): number {
  return req.promptTokens + req.maxOutputTokens;
}

const chatSchema = z
  .object({
    ...chatFields,
    model: z.string({ error: 'must be a string: the logical model, e.g. "gpt-4o-mini"' }).min(1).optional(),
    messages: z.array(chatMessage, { error: 'is required: a non-empty list of chat messages' }).min(1, 'must contain at least one message'),
    max_tokens: z.number().int().positive().optional(),
    max_completion_tokens: z.number().int().positive().optional(),
    n: z.number().int().min(1).max(128).optional(),
    stream: z.boolean().nullable().optional(),
    stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  })
  .strict();

/** Azure's limit on inputs per embeddings request. */
const MAX_EMBEDDING_INPUTS = 2048;
const tokenArray = z.array(z.number().int().min(0), { error: 'must be a list of token ids' }).min(1, 'must not be empty');
const embeddingsSchema = z
  .object({
    model: z.string({ error: 'must be a string: the logical model, e.g. "text-embedding-3-small"' }).min(1).optional(),
    input: z.union(
      [
        z.string().min(1, 'must not be empty'),
        z.array(z.string().min(1, 'must not be empty')).min(1, 'must not be empty').max(MAX_EMBEDDING_INPUTS),
        tokenArray,
        z.array(tokenArray).min(1, 'must not be empty').max(MAX_EMBEDDING_INPUTS),
      ],
      { error: (issue) => (issue.input === undefined ? 'is required: a string, a list of strings, a token array or a list of token arrays' : undefined) },
    ),
    dimensions: z.number().int().positive().optional(),
    encoding_format: z.enum(['float', 'base64']).optional(),
    user: z.string().optional(),
  })
  .strict();

/** Formats a zod path as `messages[0].role`. */
function pathOf(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)), '');
}

function validated<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('body: must be a JSON object', 'body');
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const param = pathOf([...issue.path, issue.keys[0]!]);
    throw new ValidationError(`${param}: not a field Sluice passes to the model; remove it`, param, 'unsupported_parameter');
  }
  const param = pathOf(issue.path) || 'body';
  const detail = issue.code === 'invalid_union' && issue.path.length === 1 && issue.path[0] === 'input' ? 'must be a non-empty string, list of strings, token array or list of token arrays' : issue.message;
  throw new ValidationError(`${param}: ${detail}`, param);
}

/** The logical model: the path's segment (Azure style) wins over the body's `model`, which is otherwise required. */
function modelOf(bodyModel: string | undefined, pathModel: string | undefined): string {
  const model = pathModel ?? bodyModel;
  if (!model) throw new ValidationError('model: is required: the logical model, e.g. "gpt-4o-mini"', 'model');
  return model;
}

function notServed(model: string, served: readonly string[]): ValidationError {
  return new ValidationError(`model: "${model}" is not a configured model (configured: ${served.join(', ') || 'none'})`, 'model', 'model_not_found', 404);
}

/** Validates a chat-completions body against the model's limits; throws ValidationError naming the field. */
export function parseChatRequest(body: unknown, opts: { models: Record<string, ModelLimits>; served: readonly string[]; pathModel?: string }): SyncRequest {
  const data = validated(chatSchema, body);
  const model = modelOf(data.model, opts.pathModel);
  const limits = modelEntry(opts.models, model);
  if (!limits || !opts.served.includes(model)) throw notServed(model, opts.served.filter((m) => modelEntry(opts.models, m)));
  const { maxTokens, promptTokens } = chatCharge(data, limits, '');
  const { model: _model, ...clientBody } = data;
  const stream = data.stream === true;
  const includeUsage = stream && data.stream_options?.include_usage === true;
  // The ceiling is always sent (Azure charges quota for it); a stream always asks for usage, so its cost is exact.
  const upstreamBody: Record<string, unknown> = { ...clientBody };
  if (data.max_completion_tokens === undefined && data.max_tokens === undefined) upstreamBody.max_tokens = maxTokens;
  if (stream) upstreamBody.stream_options = { ...(data.stream_options ?? {}), include_usage: true };
  else delete upstreamBody.stream_options;
  return { kind: 'chat', model, clientBody, upstreamBody, stream, includeUsage, promptTokens, maxOutputTokens: maxTokens * (data.n ?? 1) };
}

/** Input tokens of an embeddings input, as Azure charges them: text through the tokenizer, token arrays by length. */
export function embeddingTokens(input: string | string[] | number[] | number[][]): number {
  if (typeof input === 'string') return countTokens(input);
  let total = 0;
  for (const item of input as Array<string | number | number[]>) {
    if (typeof item === 'string') total += countTokens(item);
    else if (Array.isArray(item)) total += item.length;
    else total += 1;
  }
  return total;
}

/** Validates an embeddings body; throws ValidationError naming the field. */
export function parseEmbeddingsRequest(body: unknown, opts: { served: readonly string[]; pathModel?: string }): SyncRequest {
  const data = validated(embeddingsSchema, body);
  const model = modelOf(data.model, opts.pathModel);
  if (!opts.served.includes(model)) throw notServed(model, opts.served);
  const { model: _model, ...clientBody } = data;
  return {
    kind: 'embeddings',
    model,
    clientBody,
    upstreamBody: { ...clientBody },
    stream: false,
    includeUsage: false,
    promptTokens: embeddingTokens(data.input),
    maxOutputTokens: 0,
  };
}
