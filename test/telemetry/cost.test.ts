import { test } from 'node:test';
import assert from 'node:assert/strict';
import { costOf, DEFAULT_PRICES, priceFor } from '../../src/core/telemetry/prices';
import { buildUsageRow } from '../../src/core/telemetry/usage';
import { newJob } from '../support/fakes';

const call = { model: 'gpt-4o', priority: 'interactive' as const, promptTokens: 1_000_000, cachedTokens: 0, completionTokens: 0 };

test('cost: prompt at input price, cached prompt at cached price, completion at output price', () => {
  assert.equal(costOf(call), 2.5);
  assert.equal(costOf({ ...call, cachedTokens: 400_000 }), 0.6 * 2.5 + 0.4 * 1.25);
  assert.equal(costOf({ ...call, promptTokens: 0, completionTokens: 1_000_000 }), 10);
  const mini = costOf({ ...call, model: 'gpt-4o-mini', promptTokens: 1200, cachedTokens: 1024, completionTokens: 300 })!;
  assert.ok(Math.abs(mini - (176 * 0.15 + 1024 * 0.075 + 300 * 0.6) / 1e6) < 1e-15);
});

test('cost: batch priority pays standard rates (Sluice calls the online API)', () => {
  assert.equal(DEFAULT_PRICES.batchDiscountApplies, false);
  assert.equal(costOf({ ...call, priority: 'batch' }), costOf(call));
  assert.equal(costOf({ ...call, priority: 'batch' }, { ...DEFAULT_PRICES, batchDiscountApplies: true }), 1.25);
});

test('cost: unknown model is null (unknown), not zero; no tokens costs 0', () => {
  assert.equal(costOf({ ...call, model: 'gpt-9' }), null);
  assert.equal(costOf({ ...call, model: 'gpt-9', promptTokens: 0 }), 0);
});

test('cost: reported model version falls back to the logical price; overrides win by deployment, then model', () => {
  assert.equal(priceFor({ model: 'custom', modelVersion: 'gpt-4o-mini-2024-07-18' }, DEFAULT_PRICES)?.input, 0.15);
  const overrides = { 'swedencentral/chat': { input: 1, cachedInput: 0.5, output: 2 }, 'gpt-4o': { input: 3, cachedInput: 3, output: 3 } };
  assert.equal(costOf({ ...call, region: 'swedencentral', deployment: 'chat' }, DEFAULT_PRICES, overrides), 1);
  assert.equal(costOf({ ...call, region: 'eastus', deployment: 'chat' }, DEFAULT_PRICES, overrides), 3);
  assert.equal(costOf({ ...call, model: 'gpt-9' }, DEFAULT_PRICES, { 'gpt-9': { input: 4, cachedInput: 4, output: 4 } }), 4);
});

test('usage row: tokens, headroom, latencies, failover and finish reason from the job', () => {
  const t0 = Date.UTC(2026, 10, 23, 19, 51, 10);
  const job = newJob({
    status: 'succeeded',
    model: 'gpt-4o-mini',
    team: 'search',
    createdAt: t0,
    startedAt: t0 + 500,
    completedAt: t0 + 2500,
    latencyMs: 1800,
    attempts: 2,
    throttles: 1,
    maxOutputTokens: 1000,
    region: 'westeurope',
    deployment: 'chat-b',
    regionsTried: [
      { region: 'swedencentral', deployment: 'chat-a', at: t0 + 500, status: 429, outcome: 'rate_limited' },
      { region: 'westeurope', deployment: 'chat-b', at: t0 + 600, status: 200, outcome: 'ok' },
    ],
    response: { model: 'gpt-4o-mini-2024-07-18', choices: [{ finish_reason: 'stop' }] },
    usage: { prompt_tokens: 2000, completion_tokens: 150, prompt_tokens_details: { cached_tokens: 1024 } },
  });
  const row = buildUsageRow(job, t0 + 2600);
  assert.equal(row.window, '202611231951');
  assert.equal(row.modelVersion, 'gpt-4o-mini-2024-07-18');
  assert.equal(row.reservedUnusedTokens, 850);
  assert.equal(row.queueWaitMs, 500);
  assert.equal(row.modelLatencyMs, 1800);
  assert.equal(row.totalLatencyMs, 2500);
  assert.equal(row.regionsTried, 2);
  assert.equal(row.finishReason, 'stop');
  assert.ok(Math.abs(row.costUsd! - (976 * 0.15 + 1024 * 0.075 + 150 * 0.6) / 1e6) < 1e-15);
  const warnings: string[] = [];
  const unpriced = buildUsageRow({ ...job, model: 'mystery', response: { model: 'mystery-1' } }, t0 + 2600, {}, (m) => warnings.push(m));
  assert.equal(unpriced.costUsd, null);
  assert.match(warnings[0]!, /mystery.*no price/);
  const failed = buildUsageRow({ ...job, status: 'failed', response: undefined, usage: undefined, latencyMs: undefined, error: { code: 'context_length_exceeded', message: '' } }, t0 + 2600);
  assert.equal(failed.costUsd, 0);
  assert.equal(failed.reservedUnusedTokens, 0);
  assert.equal(failed.errorCode, 'context_length_exceeded');
});
