// POST .../embeddings: charge = input tokens; deterministic unit vectors, float or base64.
import { invalidRequest, rateLimited } from './azureShapes';
import type { Exchange } from './exchange';
import { delayUntil, type SimulatorSettings } from './settings';
import { embeddingInputTokenCounts, hashToSeed, seededRandom } from './tokens';

const DEFAULT_DIMENSIONS = 1536;
const MAX_DIMENSIONS = 3072;

function embeddingVector(seedText: string, dimensions: number): number[] {
  const random = seededRandom(hashToSeed(seedText));
  const raw = Array.from({ length: dimensions }, () => random() * 2 - 1);
  const norm = Math.sqrt(raw.reduce((sum, value) => sum + value * value, 0)) || 1;
  return raw.map((value) => value / norm);
}

/** Handles an embeddings request for `exchange.deployment` (which must be set and be an embeddings deployment). */
export async function handleEmbeddings(
  exchange: Exchange,
  body: Record<string, unknown>,
  apiVersion: string,
  settings: SimulatorSettings,
): Promise<void> {
  const deployment = exchange.deployment!;
  const { input } = body;
  if (input === undefined || input === null) return exchange.sendError(invalidRequest("'input' is a required property", 'input'));
  const counts = embeddingInputTokenCounts(input);
  if (counts === undefined) {
    return exchange.sendError(invalidRequest("'input' must be a non-empty string, or an array of 1 to 2048 non-empty strings or token arrays.", 'input', 'invalid_type'));
  }
  const { contextWindow } = deployment.config;
  const oversized = counts.find((count) => count > contextWindow);
  if (oversized !== undefined) {
    return exchange.sendError(
      invalidRequest(
        `This model's maximum context length is ${contextWindow} tokens, however you requested ${oversized} tokens (${oversized} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.`,
        'input',
        'context_length_exceeded',
      ),
    );
  }
  const dimensions = body['dimensions'] ?? DEFAULT_DIMENSIONS;
  if (typeof dimensions !== 'number' || !Number.isInteger(dimensions) || dimensions < 1 || dimensions > MAX_DIMENSIONS) {
    return exchange.sendError(invalidRequest(`Invalid value for 'dimensions': expected an integer between 1 and ${MAX_DIMENSIONS}.`, 'dimensions', 'invalid_value'));
  }

  const promptTokens = counts.reduce((sum, count) => sum + count, 0);
  const admission = deployment.limiter.tryAdmit(promptTokens);
  exchange.admission = admission;
  if (!admission.admitted) {
    return exchange.sendError(rateLimited('Embeddings_Create', apiVersion, admission.limitKind, admission.retryAfterMs));
  }
  exchange.charged = promptTokens;
  exchange.promptTokens = promptTokens;

  // A single string or a single token array is one item; otherwise each element is one.
  const isSingleItem = typeof input === 'string' || (input as unknown[]).every((item) => typeof item === 'number');
  const items: unknown[] = isSingleItem ? [input] : (input as unknown[]);
  const asBase64 = body['encoding_format'] === 'base64';
  const data = items.map((item, index) => {
    const vector = embeddingVector(JSON.stringify(item), dimensions);
    return {
      object: 'embedding',
      index,
      embedding: asBase64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector,
    };
  });
  await delayUntil(performance.now() + settings.latency.firstTokenMs);
  exchange.sendJson(200, {
    object: 'list',
    data,
    model: deployment.config.model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}
