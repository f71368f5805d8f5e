/**
 * Cost of one job from its token usage. Prices are data (prices.json, USD per 1M tokens) overridable per deployment
 * or per model through SLUICE_PRICES. A model with no price gives cost `null` (unknown), never 0.
 */
import defaultPriceFile from './prices.json';

/** USD per 1,000,000 tokens. */
interface TokenPrice {
  input: number;
  /** Cached prompt tokens. @default input (never under-report when a price omits it) */
  cachedInput: number;
  output: number;
}

export interface PriceTable {
  /** By logical model name (or a reported model version, e.g. "gpt-4o-2024-11-20"). */
  models: Record<string, TokenPrice>;
  /** Multiplier discount for Azure's Batch API (0.5 = half price). Applied only if batchDiscountApplies. */
  batchDiscount: number;
  batchDiscountApplies: boolean;
  asOf: string;
  source: string;
}

/** Overrides from SLUICE_PRICES: keys "<region>/<deployment>" or a model name. */
export type PriceOverrides = Record<string, TokenPrice>;

export const DEFAULT_PRICES: PriceTable = {
  models: defaultPriceFile.models,
  batchDiscount: defaultPriceFile.batchDiscount,
  batchDiscountApplies: defaultPriceFile.batchDiscountApplies,
  asOf: defaultPriceFile.asOf,
  source: defaultPriceFile.source,
};

interface PricedCall {
  model: string;
  /** Model version the endpoint reported (response.model), when known. */
  modelVersion?: string;
  region?: string;
  deployment?: string;
  priority: 'interactive' | 'batch';
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
}

/** "gpt-4o-2024-11-20" → "gpt-4o". */
function stripVersion(model: string): string {
  return model.replace(/-\d{4}-\d{2}-\d{2}$/, '');
}

/** The price that applies: deployment override, then model overrides, then the table; undefined if none. */
export function priceFor(call: Pick<PricedCall, 'model' | 'modelVersion' | 'region' | 'deployment'>, table: PriceTable, overrides: PriceOverrides = {}): TokenPrice | undefined {
  const keys: string[] = [];
  if (call.region && call.deployment) keys.push(`${call.region}/${call.deployment}`);
  if (call.modelVersion) keys.push(call.modelVersion);
  keys.push(call.model);
  if (call.modelVersion) keys.push(stripVersion(call.modelVersion));
  for (const k of keys) if (overrides[k]) return overrides[k];
  for (const k of keys) if (table.models[k]) return table.models[k];
  return undefined;
}

/**
 * USD for one job: uncached prompt at input, cached prompt at cachedInput, completion at output. `null` when tokens
 * were used but the model has no price. No tokens (a job that failed before any answer) costs 0: Azure does not bill
 * rejected or failed calls.
 */
export function costOf(call: PricedCall, table: PriceTable = DEFAULT_PRICES, overrides: PriceOverrides = {}): number | null {
  const billed = call.promptTokens + call.completionTokens;
  if (billed === 0) return 0;
  const price = priceFor(call, table, overrides);
  if (!price) return null;
  const cached = Math.min(call.cachedTokens, call.promptTokens);
  let usd = ((call.promptTokens - cached) * price.input + cached * price.cachedInput + call.completionTokens * price.output) / 1e6;
  if (call.priority === 'batch' && table.batchDiscountApplies) usd *= 1 - table.batchDiscount;
  return usd;
}
