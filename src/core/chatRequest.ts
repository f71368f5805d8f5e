/**
 * The chat-completions request as the API defines it: message shapes per role and content parts by type, checked at
 * submit so a malformed request is a 400 naming the field, not a queued job that fails later at the model. Fields
 * the API does not define on messages and parts pass through (the service judges them); required ones are required.
 */
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { z } from 'zod';
import { ValidationError } from './errors';
import type { ModelLimits } from './models';
import { countPromptTokens } from './tokens';

const ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'] as const;

/** A string that must be present: "is required" when absent, "must be a string" otherwise. */
const requiredString = (what = 'a string') =>
  z.string({ error: (issue) => (issue.input === undefined ? `is required (${what})` : `must be ${what}`) });

const requiredObject = <T extends z.core.$ZodLooseShape>(shape: T, what: string) =>
  z.looseObject(shape, { error: (issue) => (issue.input === undefined ? `is required (${what})` : `must be ${what}`) });

const textPart = z.looseObject({ type: z.literal('text'), text: requiredString() });
const imagePart = z.looseObject({
  type: z.literal('image_url'),
  image_url: requiredObject({ url: requiredString('an https or data: URL').min(1), detail: z.enum(['auto', 'low', 'high']).optional() }, 'an object with url'),
});
const audioPart = z.looseObject({
  type: z.literal('input_audio'),
  input_audio: requiredObject({ data: requiredString('base64 audio'), format: z.enum(['wav', 'mp3']) }, 'an object with data and format'),
});
const filePart = z.looseObject({
  type: z.literal('file'),
  file: requiredObject({ file_data: z.string().optional(), file_id: z.string().optional(), filename: z.string().optional() }, 'an object with file_data or file_id'),
});
const refusalPart = z.looseObject({ type: z.literal('refusal'), refusal: requiredString() });

type Part = typeof textPart | typeof imagePart | typeof audioPart | typeof filePart | typeof refusalPart;

function partsOf(parts: [Part, ...Part[]]) {
  const types = parts.map((p) => `"${p.shape.type.value}"`).join(', ');
  const part = z.discriminatedUnion('type', parts, {
    error: (issue) => (issue.code === 'invalid_union' ? `must be one of ${types}` : undefined),
  });
  return z.array(part).min(1, 'must not be an empty list');
}

/**
 * A message's `content`: a string or a non-empty list of the role's content parts. Checked by hand rather than with
 * a zod union, whose error would hide which part is wrong.
 */
function content(parts: ReturnType<typeof partsOf>, opts: { required: boolean; nullable?: boolean }) {
  return z.unknown().superRefine((value, ctx) => {
    if (typeof value === 'string') return;
    if (value === undefined || (value === null && opts.nullable)) {
      if (opts.required) ctx.addIssue({ code: 'custom', message: 'is required: a string or a list of content parts' });
      return;
    }
    if (!Array.isArray(value)) return void ctx.addIssue({ code: 'custom', message: 'must be a string or a list of content parts' });
    const parsed = parts.safeParse(value);
    if (!parsed.success) for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, message: issue.message } as Parameters<typeof ctx.addIssue>[0]);
  });
}

const textOnly = partsOf([textPart]);
const name = z.string().max(64).optional();

const toolCall = z.looseObject({
  id: requiredString(),
  type: z.enum(['function', 'custom']),
  function: z.looseObject({ name: requiredString(), arguments: requiredString('a JSON string') }).optional(),
  custom: z.looseObject({ name: requiredString(), input: requiredString() }).optional(),
});

const assistant = z
  .looseObject({
    role: z.literal('assistant'),
    content: content(partsOf([textPart, refusalPart]), { required: false, nullable: true }).optional(),
    name,
    refusal: z.string().nullable().optional(),
    tool_calls: z.array(toolCall).optional(),
    function_call: z.looseObject({ name: requiredString(), arguments: requiredString('a JSON string') }).nullable().optional(),
  })
  .superRefine((m, ctx) => {
    const given = (v: unknown) => v !== undefined && v !== null;
    if (!given(m.content) && !given(m.tool_calls) && !given(m.function_call) && !given(m.refusal) && !given(m.audio)) {
      ctx.addIssue({ code: 'custom', path: ['content'], message: 'is required unless tool_calls or function_call is given' });
    }
  });

export const chatMessage = z.discriminatedUnion(
  'role',
  [
    z.looseObject({ role: z.literal('system'), content: content(textOnly, { required: true }), name }),
    z.looseObject({ role: z.literal('developer'), content: content(textOnly, { required: true }), name }),
    z.looseObject({ role: z.literal('user'), content: content(partsOf([textPart, imagePart, audioPart, filePart]), { required: true }), name }),
    assistant,
    z.looseObject({ role: z.literal('tool'), content: content(textOnly, { required: true }), tool_call_id: requiredString('the id of the tool call answered') }),
    z.looseObject({ role: z.literal('function'), content: z.string({ error: (issue) => (issue.input === undefined ? 'is required: a string or null' : 'must be a string or null') }).nullable(), name: requiredString('the function name') }),
  ],
  { error: (issue) => (issue.code === 'invalid_union' ? `must be one of ${ROLES.map((r) => `"${r}"`).join(', ')}` : undefined) },
);

/**
 * The chat-completions fields Sluice passes to Azure OpenAI: exactly the keys of the openai package's
 * ChatCompletionCreateParamsNonStreaming (the `satisfies` makes a field the SDK adds or drops a build error until
 * it is listed here). Anything else, such as Azure's `data_sources`, which makes the service fetch and bill data
 * the charge does not count, is refused.
 */
const CHAT_FIELDS = {
  audio: true,
  frequency_penalty: true,
  function_call: true,
  functions: true,
  logit_bias: true,
  logprobs: true,
  max_completion_tokens: true,
  max_tokens: true,
  messages: true,
  metadata: true,
  modalities: true,
  model: true,
  moderation: true,
  n: true,
  parallel_tool_calls: true,
  prediction: true,
  presence_penalty: true,
  prompt_cache_key: true,
  prompt_cache_options: true,
  prompt_cache_retention: true,
  reasoning_effort: true,
  response_format: true,
  safety_identifier: true,
  seed: true,
  service_tier: true,
  stop: true,
  store: true,
  stream: true,
  stream_options: true,
  temperature: true,
  tool_choice: true,
  tools: true,
  top_logprobs: true,
  top_p: true,
  user: true,
  verbosity: true,
  web_search_options: true,
} as const satisfies Record<keyof ChatCompletionCreateParamsNonStreaming, true>;

/** Every chat-completions field, unchecked: the request schema overrides the ones Sluice reads itself. */
export const chatFields = Object.fromEntries(Object.keys(CHAT_FIELDS).map((k) => [k, z.unknown().optional()])) as Record<
  keyof typeof CHAT_FIELDS,
  z.ZodOptional<z.ZodUnknown>
>;

/**
 * What a chat request is charged at admission: its output ceiling (max_completion_tokens or max_tokens, within the
 * model's limit, else its default) and its prompt's tokens, which together must fit the context window. Errors name the
 * field as the caller's body nests it (`prefix`: "request." in a job, "" in a synchronous request).
 */
export function chatCharge(
  body: { max_tokens?: number; max_completion_tokens?: number },
  limits: ModelLimits,
  prefix: string,
): { maxTokens: number; promptTokens: number } {
  if (body.max_tokens !== undefined && body.max_completion_tokens !== undefined) {
    throw new ValidationError(`${prefix}max_tokens: give either max_tokens or max_completion_tokens, not both`, `${prefix}max_tokens`);
  }
  const asked = body.max_completion_tokens ?? body.max_tokens;
  const param = `${prefix}${body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens'}`;
  if (asked !== undefined && asked > limits.maxOutputTokens) {
    throw new ValidationError(`${param}: ${asked} exceeds the model's limit of ${limits.maxOutputTokens}`, param);
  }
  const maxTokens = asked ?? limits.defaultMaxTokens;
  const promptTokens = countPromptTokens(body as Parameters<typeof countPromptTokens>[0]);
  if (promptTokens + maxTokens > limits.contextWindow) {
    throw new ValidationError(
      `This model's maximum context length is ${limits.contextWindow} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
      `${prefix}messages`,
      'context_length_exceeded',
    );
  }
  return { maxTokens, promptTokens };
}
