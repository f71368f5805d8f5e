/**
 * Against real Azurite and the real app: usage rows recorded through the Table store (idempotent, sharded), two
 * racing rollups over the Table state, then GET /api/v1/usage through the local Functions host.
 */
import { authHeaders } from '../../local/stack';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../../local/stack';
import { runRollup, watermarkCuts, WATERMARK, type RollupDeps } from '../../src/core/telemetry/rollup';
import { buildUsageRow, recordJobUsage } from '../../src/core/telemetry/usage';
import { windowOf } from '../../src/core/telemetry/windows';
import { RollupTable } from '../../src/azure/rollupTable';
import { UsageTable } from '../../src/azure/usageTable';
import { tableClientFromConnectionString } from '../support/storage';
import { newJob } from '../support/fakes';
import { MemorySink } from './memory';

test('usage rows → racing rollups → GET /api/v1/usage, on Azurite through the local host', { timeout: 180_000 }, async () => {
  const stack = await startStack({ env: { SLUICE_TEAM_BUDGETS: '{"search": 0.001}', SLUICE_BUDGET_MONTHLY_USD: '100' } });
  try {
    const usage = new UsageTable(tableClientFromConnectionString(stack.connectionString, 'sluiceusage'));
    const state = new RollupTable(tableClientFromConnectionString(stack.connectionString, 'sluicerollup'));
    const now = Date.now();
    const base = Math.floor((now - 10 * 60_000) / 60_000) * 60_000;
    await state.upsert(WATERMARK.partition, WATERMARK.row, { closedThrough: windowOf(base - 60_000), claimWindow: '', claimRun: '', leaseUntil: 0, cut: '', history: '[]' });
    const recorder = { store: usage, cuts: watermarkCuts(state), clock: { now: () => Date.now() }, latenessMs: 120_000 };
    for (let i = 0; i < 60; i += 1) {
      const at = base + (i % 3) * 60_000 + 1000 + i;
      const job = newJob({
        id: `job_int_${i}`, status: i % 10 === 9 ? 'failed' : 'succeeded', team: i % 2 ? 'search' : 'ads', model: i % 3 ? 'gpt-4o-mini' : 'gpt-4o',
        createdAt: at - 3000, startedAt: at - 2000, completedAt: at, latencyMs: 1000 + i * 10, maxOutputTokens: 400,
        region: 'swedencentral', deployment: 'chat', regionsTried: [{ region: 'swedencentral', deployment: 'chat', at: at - 1900, status: 200, outcome: 'ok' }],
        response: { model: 'x', choices: [{ finish_reason: 'stop' }] }, usage: { prompt_tokens: 500, completion_tokens: 100, prompt_tokens_details: { cached_tokens: 100 } },
      });
      await recordJobUsage(recorder, job, at);
      if (i < 5) assert.equal((await usage.insert(buildUsageRow(job, at))).result, 'exists', 'recording twice is a no-op');
    }
    const sink = new MemorySink();
    const deps = (runId: string): RollupDeps => ({
      usage, state, sink, clock: { now: () => Date.now() },
      settings: { latenessMs: 120_000, monthlyBudgetUsd: 100, teamBudgetsUsd: { search: 0.001 }, budgetThresholdsPct: [50, 80, 100], quotaAdviceMinutes: 15, quotaAdvicePercent: 80 },
      endpoints: [{ region: 'swedencentral', deployment: 'chat', model: 'gpt-4o-mini', tpm: 100_000, rpm: 600 }],
      log: () => {}, runId,
    });
    const [a, b] = await Promise.all([runRollup(deps('a')), runRollup(deps('b'))]);
    const closed = [...a.closed, ...b.closed];
    assert.equal(new Set(closed).size, closed.length, 'no window closed twice');
    assert.equal(a.rows + b.rows, 60);
    const jobs = sink.metrics('sluice.jobs.succeeded').reduce((n, m) => n + m.value!, 0) + sink.metrics('sluice.jobs.failed').reduce((n, m) => n + m.value!, 0);
    assert.equal(jobs, 60);
    assert.equal(sink.events('SluiceBudgetThreshold').filter((e) => e.properties.scope === 'team').length, 6, 'search: actual and projected × 3 thresholds, once');

    const from = new Date(base - 60_000).toISOString();
    // An admin key sees every team's usage (a member sees only its own: test/teams/access.test.ts).
    const res = await fetch(`${stack.baseUrl}/v1/usage?from=${from}&group_by=model`, { headers: { 'api-key': stack.adminKey! } });
    const body = (await res.json()) as any;
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.group_by, 'model');
    assert.deepEqual(body.data.map((g: any) => g.model).sort(), ['gpt-4o', 'gpt-4o-mini']);
    assert.equal(body.total.jobs.succeeded + body.total.jobs.failed, 60);
    assert.equal(body.total.tokens.cached, 60 * 100);
    assert.ok(body.total.latency_ms.model.p95 >= body.total.latency_ms.model.p50);
    const search = body.month_to_date.scopes.find((s: any) => s.scope === 'team' && s.name === 'search');
    assert.equal(search.status, 'over');
    assert.equal(body.month_to_date.scopes[0].name, 'all');
    assert.equal(body.month_to_date.scopes[0].budget_usd, 100);

    for (const [query, param] of [['from=nope', 'from'], ['group_by=colour', 'group_by'], ['from=2020-01-01', 'from'], ['from=2026-11-23T10:00:00Z&to=2026-11-23T09:00:00Z', 'from']] as const) {
      const bad = await fetch(`${stack.baseUrl}/v1/usage?${query}`, { headers: authHeaders(stack.baseUrl) });
      const err = (await bad.json()) as any;
      assert.equal(bad.status, 400, query);
      assert.equal(err.error.code, 'invalid_parameter');
      assert.equal(err.error.param, param, query);
    }
  } finally {
    await stack.stop();
  }
});
