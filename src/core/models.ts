/**
 * Built-in limits of models Sluice knows, so a deployment list alone is enough configuration.
 * Override or add models with the SLUICE_MODELS setting.
 */
export interface ModelLimits {
  /** Prompt + completion tokens the model accepts. */
  contextWindow: number;
  /** Largest max_tokens / max_completion_tokens a request may ask for. */
  maxOutputTokens: number;
  /** Sent and charged when a request names no max_tokens, since Azure charges quota for the ceiling. */
  defaultMaxTokens: number;
}

export const KNOWN_MODELS: Record<string, ModelLimits> = {
  'gpt-4o': { contextWindow: 128_000, maxOutputTokens: 16_384, defaultMaxTokens: 1_024 },
  'gpt-4o-mini': { contextWindow: 128_000, maxOutputTokens: 16_384, defaultMaxTokens: 1_024 },
  'gpt-4.1': { contextWindow: 1_047_576, maxOutputTokens: 32_768, defaultMaxTokens: 1_024 },
  'gpt-4.1-mini': { contextWindow: 1_047_576, maxOutputTokens: 32_768, defaultMaxTokens: 1_024 },
  'gpt-4.1-nano': { contextWindow: 1_047_576, maxOutputTokens: 32_768, defaultMaxTokens: 1_024 },
  'o4-mini': { contextWindow: 200_000, maxOutputTokens: 100_000, defaultMaxTokens: 4_096 },
  'o3-mini': { contextWindow: 200_000, maxOutputTokens: 100_000, defaultMaxTokens: 4_096 },
};
