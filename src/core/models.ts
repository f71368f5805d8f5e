/**
 * What a model is to Sluice: its token limits, and whether its work may overflow to the next priority group.
 * Built-in limits of the models Sluice knows mean a deployment list alone is enough configuration; the SLUICE_MODELS
 * setting overrides or adds models (src/config.ts parses it with modelSchema).
 */
import { z } from 'zod';

export const modelSchema = z
  .object({
    /** Context window in tokens (prompt + completion). */
    contextWindow: z.number().int().positive(),
    /** Largest max_tokens / max_completion_tokens a request may ask for. */
    maxOutputTokens: z.number().int().positive(),
    /** Sent and charged when a request names no max_tokens, since Azure charges quota for the ceiling. */
    defaultMaxTokens: z.number().int().positive(),
    /** May work overflow to the next priority group when this group's budget is spent? @default true */
    spillover: z.boolean().default(true),
  })
  .strict();

export type ModelSettings = z.output<typeof modelSchema>;

/** The token limits of a model. */
export type ModelLimits = Omit<ModelSettings, 'spillover'>;

/**
 * The entry of `name` in a table of models, if the table has one of its own: a plain-object lookup would find
 * "constructor" or "toString" on Object.prototype, and a model name comes from the caller.
 */
export function modelEntry<T>(models: Readonly<Record<string, T>>, name: string): T | undefined {
  return Object.hasOwn(models, name) ? models[name] : undefined;
}

export const KNOWN_MODELS: Record<string, ModelLimits> = {
  'gpt-4o': { contextWindow: 128_000, maxOutputTokens: 16_384, defaultMaxTokens: 1_024 },
  'gpt-4o-mini': { contextWindow: 128_000, maxOutputTokens: 16_384, defaultMaxTokens: 1_024 },
  'gpt-4.1': { contextWindow: 1_047_576, maxOutputTokens: 32_768, defaultMaxTokens: 1_024 },
  'gpt-4.1-mini': { contextWindow: 1_047_576, maxOutputTokens: 32_768, defaultMaxTokens: 1_024 },
  'gpt-4.1-nano': { contextWindow: 1_047_576, maxOutputTokens: 32_768, defaultMaxTokens: 1_024 },
  'o4-mini': { contextWindow: 200_000, maxOutputTokens: 100_000, defaultMaxTokens: 4_096 },
  'o3-mini': { contextWindow: 200_000, maxOutputTokens: 100_000, defaultMaxTokens: 4_096 },
  // Embeddings models generate no output tokens; the schema wants positive limits, so 1 stands for "none".
  'text-embedding-3-small': { contextWindow: 8_191, maxOutputTokens: 1, defaultMaxTokens: 1 },
  'text-embedding-3-large': { contextWindow: 8_191, maxOutputTokens: 1, defaultMaxTokens: 1 },
  'text-embedding-ada-002': { contextWindow: 8_191, maxOutputTokens: 1, defaultMaxTokens: 1 },
};
