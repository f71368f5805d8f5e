// POST .../chat/completions: validation, admission, deterministic content, JSON or SSE answer.
import { createHash } from 'node:crypto';
import {
  chatCompletionId,
  completionFilterResults,
  contentFiltered,
  contextLengthExceeded,
  invalidRequest,
  maxTokensTooLarge,
  promptFilterResults,
  rateLimited,
  SYSTEM_FINGERPRINT,
  type AzureError,
} from './azureShapes';
import type { Exchange } from './exchange';
import { delayUntil, type SimulatorSettings } from './settings';
import {
  countChatPromptTokens,
  countTextTokens,
  generateTokenPieces,
  hashToSeed,
  messageText,
  naturalCompletionTokens,
  type IncomingChatMessage,
} from './tokens';

// Azure (like OpenAI) starts reporting cached prompt tokens at 1,024 tokens, in 128-token steps.
const MIN_CACHEABLE_PROMPT_TOKENS = 1024;
const CACHE_GRANULARITY_TOKENS = 128;
const MAX_CHOICES = 128;

interface ChatChoicePlan {
  pieces: string[];
  content: string;
  completionTokens: number;
  finishReason: 'stop' | 'length';
}

interface ValidChatRequest {
  messages: IncomingChatMessage[];
  choiceCount: number;
  /** max_tokens ?? max_completion_tokens, if the request gave one. */
  requestedMaxTokens: number | undefined;
}

function validate(body: Record<string, unknown>, maxOutputTokens: number | undefined): ValidChatRequest | AzureError {
  const { messages } = body;
  if (messages === undefined || messages === null) return invalidRequest("'messages' is a required property", 'messages');
  if (!Array.isArray(messages)) return invalidRequest("Invalid type for 'messages': expected an array of objects.", 'messages', 'invalid_type');
  if (messages.length === 0) return invalidRequest("[] is too short - 'messages'", 'messages', 'empty_array');
  for (const [index, message] of messages.entries()) {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      return invalidRequest(`Invalid type for 'messages[${index}]': expected an object.`, `messages[${index}]`, 'invalid_type');
    }
    if (typeof (message as IncomingChatMessage).role !== 'string') {
      return invalidRequest(`Missing required parameter: 'messages[${index}].role'.`, `messages[${index}].role`, 'missing_required_parameter');
    }
  }
  const n = body['n'] ?? 1;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CHOICES) {
    return invalidRequest(`Invalid value for 'n': expected an integer between 1 and ${MAX_CHOICES}.`, 'n', 'invalid_value');
  }
  const maxTokensParam = body['max_tokens'] !== undefined && body['max_tokens'] !== null ? 'max_tokens' : 'max_completion_tokens';
  const requested = body[maxTokensParam];
  if (requested !== undefined && requested !== null) {
    if (typeof requested !== 'number' || !Number.isInteger(requested) || requested < 1) {
      return invalidRequest(`Invalid '${maxTokensParam}': integer below minimum value. Expected a value >= 1.`, maxTokensParam, 'integer_below_min_value');
    }
    if (maxOutputTokens !== undefined && requested > maxOutputTokens) return maxTokensTooLarge(maxTokensParam, requested, maxOutputTokens);
  }
  return {
    messages: messages as IncomingChatMessage[],
    choiceCount: n,
    requestedMaxTokens: typeof requested === 'number' ? requested : undefined,
  };
}

function isAzureError(value: ValidChatRequest | AzureError): value is AzureError {
  return 'status' in value;
}

/** Handles a chat completion for `exchange.deployment` (which must be set and be a chat deployment). */
export async function handleChatCompletion(
  exchange: Exchange,
  body: Record<string, unknown>,
  apiVersion: string,
  settings: SimulatorSettings,
): Promise<void> {
  const deployment = exchange.deployment!;
  const { contextWindow, maxOutputTokens } = deployment.config;
  const request = validate(body, maxOutputTokens);
  if (isAzureError(request)) return exchange.sendError(request);

  // Context check comes before admission, so an oversized request is never charged.
  const promptTokens = countChatPromptTokens(request.messages);
  const { requestedMaxTokens, choiceCount } = request;
  if (requestedMaxTokens === undefined ? promptTokens >= contextWindow : promptTokens + requestedMaxTokens > contextWindow) {
    return exchange.sendError(contextLengthExceeded(contextWindow, promptTokens, requestedMaxTokens));
  }
  const completionAllowance = requestedMaxTokens ?? Math.min(settings.defaultMaxTokens, contextWindow - promptTokens);
  const charge = promptTokens + completionAllowance * choiceCount;
  const admission = deployment.limiter.tryAdmit(charge);
  exchange.admission = admission;
  if (!admission.admitted) {
    return exchange.sendError(rateLimited('ChatCompletions_Create', apiVersion, admission.limitKind, admission.retryAfterMs));
  }
  exchange.charged = charge;

  // Azure filters after admission, so a filtered prompt still costs quota.
  if (request.messages.some((message) => messageText(message).includes(settings.contentFilterTrigger))) {
    return exchange.sendError(contentFiltered());
  }

  const promptKey = JSON.stringify(request.messages);
  const seedText = `${promptKey}|seed=${String(body['seed'] ?? '')}`;
  const choices: ChatChoicePlan[] = [];
  for (let index = 0; index < choiceCount; index++) {
    const seed = hashToSeed(`${seedText}|choice=${index}`);
    const natural = naturalCompletionTokens(seed);
    const length = Math.min(natural, completionAllowance);
    const pieces = generateTokenPieces(seed, length);
    const content = pieces.join('');
    choices.push({ pieces, content, completionTokens: countTextTokens(content), finishReason: natural > length ? 'length' : 'stop' });
  }
  const promptHash = createHash('sha256').update(promptKey).digest('hex');
  const cachedTokens =
    promptTokens >= MIN_CACHEABLE_PROMPT_TOKENS && deployment.checkAndRememberPrompt(promptHash)
      ? Math.floor(promptTokens / CACHE_GRANULARITY_TOKENS) * CACHE_GRANULARITY_TOKENS
      : 0;
  const completionTokens = choices.reduce((sum, choice) => sum + choice.completionTokens, 0);
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { audio_tokens: 0, cached_tokens: cachedTokens },
    completion_tokens_details: { accepted_prediction_tokens: 0, audio_tokens: 0, reasoning_tokens: 0, rejected_prediction_tokens: 0 },
  };
  exchange.promptTokens = promptTokens;
  exchange.completionTokens = completionTokens;

  const header = {
    id: chatCompletionId(),
    created: Math.floor(Date.now() / 1000),
    model: deployment.config.model,
    system_fingerprint: SYSTEM_FINGERPRINT,
  };
  const startedAt = performance.now();
  const longest = Math.max(...choices.map((choice) => choice.completionTokens));
  const { firstTokenMs, perTokenMs } = settings.latency;

  if (body['stream'] !== true) {
    await delayUntil(startedAt + firstTokenMs + perTokenMs * longest);
    return exchange.sendJson(200, {
      ...header,
      object: 'chat.completion',
      choices: choices.map((choice, index) => ({
        index,
        message: { role: 'assistant', content: choice.content, refusal: null },
        finish_reason: choice.finishReason,
        logprobs: null,
        content_filter_results: completionFilterResults(),
      })),
      usage,
      prompt_filter_results: promptFilterResults(),
    });
  }

  const streamOptions = body['stream_options'];
  const includeUsage =
    typeof streamOptions === 'object' && streamOptions !== null && (streamOptions as { include_usage?: unknown }).include_usage === true;
  const chunk = (choiceDeltas: unknown[], extra: Record<string, unknown> = {}) => ({
    ...header,
    object: 'chat.completion.chunk',
    choices: choiceDeltas,
    ...(includeUsage ? { usage: null } : {}),
    ...extra,
  });
  const delta = (index: number, content: Record<string, unknown>, finishReason: string | null, filtered = true) => ({
    index,
    delta: content,
    finish_reason: finishReason,
    logprobs: null,
    content_filter_results: filtered ? completionFilterResults() : {},
  });

  exchange.beginStream();
  // Azure's first event carries only the prompt filter results, with empty id/model and no choices.
  exchange.writeEvent({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: promptFilterResults() });
  await delayUntil(startedAt + firstTokenMs);
  exchange.writeEvent(chunk(choices.map((_, index) => delta(index, { role: 'assistant', content: '', refusal: null }, null, false))));
  const cutAfter = exchange.region.fault.cutStreamAfterChunks;
  for (let tokenIndex = 0; tokenIndex < longest; tokenIndex++) {
    if (exchange.clientGone) return;
    if (cutAfter !== undefined && tokenIndex >= cutAfter) {
      // The connection drops mid-answer, as when a deployment's node fails.
      exchange.res.destroy();
      return;
    }
    await delayUntil(startedAt + firstTokenMs + perTokenMs * tokenIndex);
    for (const [index, choice] of choices.entries()) {
      const piece = choice.pieces[tokenIndex];
      if (piece !== undefined) exchange.writeEvent(chunk([delta(index, { content: piece }, null)]));
    }
  }
  await delayUntil(startedAt + firstTokenMs + perTokenMs * longest);
  exchange.writeEvent(chunk(choices.map((choice, index) => delta(index, {}, choice.finishReason, false))));
  if (includeUsage) exchange.writeEvent(chunk([], { usage }));
  exchange.endStream();
}
