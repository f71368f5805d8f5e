// Token counting (o200k_base via gpt-tokenizer, as gpt-4o / gpt-4o-mini use) and deterministic
// fake content whose token count is known exactly.
import { createHash } from 'node:crypto';
import { countChatCompletionTokens, countTokens, encode } from 'gpt-tokenizer/model/gpt-4o';
// Azure's embeddings models (text-embedding-3-*, ada-002) count input in cl100k_base, not o200k.
import { countTokens as countEmbeddingTokens } from 'gpt-tokenizer/model/text-embedding-3-small';

/** A chat message as it arrives in a request body; only the fields that cost tokens matter here. */
export interface IncomingChatMessage {
  role?: unknown;
  name?: unknown;
  content?: unknown;
  tool_calls?: unknown;
}

/** Flattens message content (string, null, or an array of parts) into the text the model would read. */
export function messageText(message: IncomingChatMessage): string {
  const { content } = message;
  let text = '';
  if (typeof content === 'string') {
    text = content;
  } else if (Array.isArray(content)) {
    // Only text parts are counted; image parts are priced differently by Azure and ignored here.
    text = content
      .map((part: unknown) =>
        typeof part === 'object' && part !== null && typeof (part as { text?: unknown }).text === 'string'
          ? (part as { text: string }).text
          : '',
      )
      .join('');
  }
  if (message.tool_calls !== undefined) text += JSON.stringify(message.tool_calls);
  return text;
}

/**
 * Prompt tokens of a chat request as Azure reports them for gpt-4o-family models: o200k tokens of
 * every role and content, plus 3 per message, 1 per `name`, and 3 for priming the reply.
 * (gpt-tokenizer's countChatCompletionTokens implements exactly that cookbook formula.)
 */
export function countChatPromptTokens(messages: readonly IncomingChatMessage[]): number {
  const normalized = messages.map((message) => ({
    role: typeof message.role === 'string' ? message.role : 'user',
    content: messageText(message),
    ...(typeof message.name === 'string' ? { name: message.name } : {}),
  }));
  return countChatCompletionTokens!({ messages: normalized });
}

/** o200k token count of plain text. */
export function countTextTokens(text: string): number {
  return countTokens(text);
}

/**
 * Tokens of an embeddings `input` per item, as Azure charges them: a string or strings in cl100k_base tokens, a token
 * array or token arrays by their length. Azure refuses empty items and more than 2,048 items; so does this.
 */
export function embeddingInputTokenCounts(input: unknown): number[] | undefined {
  if (typeof input === 'string') return input === '' ? undefined : [countEmbeddingTokens(input)];
  if (!Array.isArray(input) || input.length === 0 || input.length > MAX_EMBEDDING_INPUTS) return undefined;
  if (input.every((item) => Number.isInteger(item))) return [input.length];
  const counts: number[] = [];
  for (const item of input) {
    if (typeof item === 'string' && item !== '') counts.push(countEmbeddingTokens(item));
    else if (Array.isArray(item) && item.length > 0 && item.every((token) => Number.isInteger(token))) counts.push(item.length);
    else return undefined;
  }
  return counts;
}

/** Most items one embeddings request may carry (Azure's limit). */
export const MAX_EMBEDDING_INPUTS = 2048;

/** 32-bit seed from arbitrary text (sha256 prefix); stable across runs and platforms. */
export function hashToSeed(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32LE(0);
}

/** Small deterministic PRNG (mulberry32); returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Words that are a single o200k token both with and without a leading space, so that a text of
// k such words (space separated) is exactly k tokens. Filtered at load time rather than trusted.
const CANDIDATE_WORDS = (
  'the quota is shared among teams and each request waits for its turn while the model answers ' +
  'with care so that no region runs out of tokens before the minute ends we route work to the ' +
  'next deployment when one is busy because latency matters more than order in this simple test ' +
  'data flows through queues into batches where every job has a budget owner cost limit and time ' +
  'window after which results are written back to storage for later review by people who need them ' +
  'today report plan build check send read write open close start stop fast slow good clear small large'
).split(' ');

const SINGLE_TOKEN_WORDS: readonly string[] = [...new Set(CANDIDATE_WORDS)].filter(
  (word) => encode(word).length === 1 && encode(` ${word}`).length === 1,
);

/**
 * Deterministic text of exactly `tokenCount` o200k tokens, returned as one piece per token
 * (the first without a leading space) so streaming can emit one token per delta.
 */
export function generateTokenPieces(seed: number, tokenCount: number): string[] {
  const random = seededRandom(seed);
  const pieces: string[] = [];
  for (let i = 0; i < tokenCount; i++) {
    const word = SINGLE_TOKEN_WORDS[Math.floor(random() * SINGLE_TOKEN_WORDS.length)]!;
    pieces.push(i === 0 ? word.charAt(0).toUpperCase() + word.slice(1) : ` ${word}`);
  }
  // Capitalising can change tokenisation; fall back to the lower-case word if it does.
  if (pieces.length > 0 && encode(pieces[0]!).length !== 1) pieces[0] = pieces[0]!.toLowerCase();
  return pieces;
}

/** Natural (unconstrained) completion length for a seed: 5..200 tokens. */
export function naturalCompletionTokens(seed: number): number {
  return 5 + (seed % 196);
}
