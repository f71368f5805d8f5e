/**
 * The `kind` dimension (job, batch, sync) and time to first token through the rollup: groups per kind, TTFT
 * percentiles in /api/v1/usage and the window metrics, cache hits and abandoned streams counted, and rollup rows
 * written before kinds existed still read (and merge) as jobs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runRollup, WATERMARK, type RollupDeps } from '../../src/core/telemetry/rollup';
import { buildUsageRow, type UsageRow } from '../../src/core/telemetry/usage';
import { GroupAggregate } from '../../src/core/telemetry/aggregate';
import { WINDOW_METRICS } from '../../src/core/telemetry/names';
import { ROLLUP_PARTITIONS } from '../../src/core/telemetry/partitions';
import { windowIso, windowOf } from '../../src/core/telemetry/windows';
import { parseUsageQuery, queryUsage } from '../../src/core/telemetry/query';
import { ManualClock, newJob } from '../support/fakes';
import { MemorySink, MemoryState, MemoryUsage, ServerClock } from './memory';

const T0 = Date.UTC(2026, 10, 23, 19, 0, 0);
const settings = { latenessMs: 120_000, monthlyBudgetUsd: undefined, teamBudgetsUsd: {}, budgetThresholdsPct: [50, 80, 100], quotaAdviceMinutes: 3, quotaAdvicePercent: 80 };

function world() {
  const server = new ServerClock(T0);
  const clock = new ManualClock(T0);
  const state = new MemoryState(server);
  const usage = new MemoryUsage(server);
  const sink = new MemorySink();
  void state.create(WATERMARK.partition, WATERMARK.row, { closedThrough: windowOf(T0 - 60_000), claimWindow: '', claimRun: '', leaseUntil: 0, cut: '', history: '[]' });
  const deps: RollupDeps = {
    usage,
    state,
    sink,
    clock,
    settings,
    endpoints: [{ region: 'swedencentral', deployment: 'chat', model: 'gpt-4o-mini', tpm: 10_000, rpm: 60 }],
    log: () => {},
    initialLookbackMs: 60 * 60_000,
  };
  return { state, usage, sink, clock, deps };
}

function jobRow(i: number, over: { batchId?: string } = {}): UsageRow {
  const at = T0 + 1_000 + i;
  return buildUsageRow(
    newJob({
      id: `job_${String(i).padStart(6, '0')}`,
      status: 'succeeded',
      team: 'ads',
      createdAt: at - 1000,
      startedAt: at - 900,
      completedAt: at,
      latencyMs: 300,
      maxOutputTokens: 100,
      promptTokens: 10,
      region: 'swedencentral',
      deployment: 'chat',
      regionsTried: [{ region: 'swedencentral', deployment: 'chat', at: at - 500, status: 200, outcome: 'ok' }],
      response: { model: 'gpt-4o-mini-2024-07-18', choices: [{ finish_reason: 'stop' }] },
      usage: { prompt_tokens: 10, completion_tokens: 5 },
      ...over,
    }),
    at,
  );
}

/** A sync request's row as the sync routes write it: kind 'sync' with a TTFT. */
function syncRow(i: number, ttftMs: number | null, over: Partial<UsageRow> = {}): UsageRow {
  const { kind: _job, ...base } = jobRow(1000 + i);
  return { ...base, jobId: `sync_${i}`, kind: 'sync', ttftMs, ...over };
}

test('job rows say job, batch lines say batch; a row without a kind counts as a job', async () => {
  assert.equal(jobRow(1).kind, 'job');
  assert.equal(jobRow(2, { batchId: 'batch_1' }).kind, 'batch');
  const w = world();
  const { kind: _absent, ...legacy } = jobRow(3);
  await w.usage.insert(legacy);
  await w.usage.insert(jobRow(4));
  await w.usage.insert(jobRow(5, { batchId: 'batch_1' }));
  for (let i = 0; i < 20; i += 1) await w.usage.insert(syncRow(i, 100 + i * 10));
  await w.usage.insert(syncRow(50, null, { cacheHit: true, costUsd: 0, savedUsd: 0.5, modelLatencyMs: null }));
  await w.usage.insert(syncRow(51, 80, { abandoned: true }));
  w.clock.t = T0 + 5 * 60_000;
  await runRollup(w.deps);

  const params = (o: Record<string, string>) => ({ get: (k: string) => o[k] ?? null });
  const q = parseUsageQuery(params({ from: '2026-11-23T18:00:00Z', to: '2026-11-23T20:00:00Z', group_by: 'kind' }), w.clock.t);
  const { groups, total } = await queryUsage(w.state, q);
  const byKind = new Map(groups.map((g) => [g.kind, g]));
  assert.deepEqual([...byKind.keys()].sort(), ['batch', 'job', 'sync']);
  assert.equal(byKind.get('job')!.jobs.succeeded, 2);
  assert.equal(byKind.get('batch')!.jobs.succeeded, 1);
  const sync = byKind.get('sync')!;
  assert.equal(sync.jobs.succeeded, 22);
  assert.equal(sync.cache_hits, 1);
  assert.equal(sync.saved_usd, 0.5);
  assert.equal(sync.abandoned, 1);
  // TTFT: 21 values, 80 and 100…290 ms (median 190); a cache hit has none.
  assert.ok(Math.abs(sync.latency_ms.ttft!.p50 - 190) <= 190 * 0.02, `p50 ${sync.latency_ms.ttft!.p50}`);
  assert.ok(sync.latency_ms.ttft!.p99 <= 290 && sync.latency_ms.ttft!.p99 >= 280 * 0.98, `p99 ${sync.latency_ms.ttft!.p99}`);
  assert.equal(byKind.get('job')!.latency_ms.ttft, null);
  assert.equal(total.jobs.succeeded, 25);

  // The window metrics carry kind, and TTFT percentiles only where there is one.
  const iso = windowIso(windowOf(T0));
  const ok = w.sink.metrics(WINDOW_METRICS.jobsSucceeded, { window: iso });
  assert.deepEqual(ok.map((m) => [m.properties.kind, m.value]).sort(), [['batch', 1], ['job', 2], ['sync', 22]]);
  const ttft = w.sink.metrics(WINDOW_METRICS.latencyTtftP95, { window: iso });
  assert.deepEqual(ttft.map((m) => m.properties.kind), ['sync']);
  assert.deepEqual(w.sink.metrics(WINDOW_METRICS.cacheHits, { window: iso }).map((m) => m.value), [1]);
  assert.deepEqual(w.sink.metrics(WINDOW_METRICS.cacheSavedUsd, { window: iso }).map((m) => m.value), [0.5]);
  assert.deepEqual(w.sink.metrics(WINDOW_METRICS.abandoned, { window: iso }).map((m) => m.value), [1]);
});

test('an hour row stored before groups had a kind reads as a job group and merges with new job minutes', async () => {
  const w = world();
  const legacy = new GroupAggregate({ team: 'ads', model: 'gpt-4o-mini', region: 'swedencentral', deployment: 'chat', kind: 'job' });
  legacy.add(jobRow(1));
  const { kind: _k, ttftSketch: _t, ...oldRecord } = legacy.toRecord();
  const hour = ROLLUP_PARTITIONS.hour(windowOf(T0));
  const key = 'ads|gpt-4o-mini|swedencentral|chat';
  await w.state.upsert(hour, key, oldRecord);
  assert.equal(GroupAggregate.fromRecord(oldRecord).key.kind, 'job');
  await w.usage.insert(jobRow(2));
  await w.usage.insert(syncRow(1, 50));
  w.clock.t = T0 + 5 * 60_000;
  await runRollup(w.deps);
  const rows = new Map<string, Record<string, unknown>>();
  for await (const page of w.state.list(hour, `${hour}~`)) for (const r of page) rows.set(r.row, r.value);
  assert.deepEqual([...rows.keys()].sort(), [key, `${key}|sync`]);
  assert.equal(GroupAggregate.fromRecord(rows.get(key)!).succeeded, 2);
  assert.equal(GroupAggregate.fromRecord(rows.get(`${key}|sync`)!).ttft.count, 1);
});
