import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runRollup, watermarkCuts, WATERMARK, type RollupDeps } from '../../src/core/telemetry/rollup';
import { buildUsageRow, recordJobUsage, type UsageRow } from '../../src/core/telemetry/usage';
import { LatencySketch, SKETCH_RELATIVE_ACCURACY } from '../../src/core/telemetry/sketch';
import { addToMonth, crossedThresholds, projectMonthEnd } from '../../src/core/telemetry/budget';
import { EVENTS, WINDOW_METRICS, COST_METRICS, DEPLOYMENT_METRICS } from '../../src/core/telemetry/names';
import { windowIso, windowOf } from '../../src/core/telemetry/windows';
import { partitionPlan, parseUsageQuery, queryUsage } from '../../src/core/telemetry/query';
import { ManualClock, newJob } from '../support/fakes';
import { MemorySink, MemoryState, MemoryUsage, ServerClock } from './memory';

const T0 = Date.UTC(2026, 10, 23, 19, 0, 0);
const settings = { latenessMs: 120_000, monthlyBudgetUsd: undefined as number | undefined, teamBudgetsUsd: {} as Record<string, number>, budgetThresholdsPct: [50, 80, 100], quotaAdviceMinutes: 3, quotaAdvicePercent: 80 };

function world(overrides: Partial<typeof settings> = {}) {
  const server = new ServerClock(T0);
  const clock = new ManualClock(T0);
  const state = new MemoryState(server);
  const usage = new MemoryUsage(server);
  const sink = new MemorySink();
  const logs: string[] = [];
  // The first window the rollup will close is 19:00.
  void state.create(WATERMARK.partition, WATERMARK.row, { closedThrough: windowOf(T0 - 60_000), claimWindow: '', claimRun: '', leaseUntil: 0, cut: '', history: '[]' });
  const deps = (runId?: string): RollupDeps => ({
    usage,
    state,
    sink,
    clock,
    settings: { ...settings, ...overrides },
    endpoints: [{ region: 'swedencentral', deployment: 'chat', model: 'gpt-4o-mini', tpm: 10_000, rpm: 60 }],
    log: (level, m) => logs.push(`${level} ${m}`),
    runId,
    initialLookbackMs: 60 * 60_000,
  });
  return { server, clock, state, usage, sink, logs, deps };
}

function row(i: number, at: number, over: Partial<UsageRow> = {}): UsageRow {
  const job = newJob({
    id: `job_${String(i).padStart(6, '0')}`,
    status: 'succeeded',
    team: i % 2 ? 'search' : 'ads',
    model: 'gpt-4o-mini',
    createdAt: at - 1000 - (i % 7) * 100,
    startedAt: at - 900,
    completedAt: at,
    latencyMs: 100 + (i % 50) * 10,
    maxOutputTokens: 500,
    promptTokens: 100,
    region: 'swedencentral',
    deployment: 'chat',
    regionsTried: [{ region: 'swedencentral', deployment: 'chat', at: at - 500, status: 200, outcome: 'ok' }],
    response: { model: 'gpt-4o-mini-2024-07-18', choices: [{ finish_reason: 'stop' }] },
    usage: { prompt_tokens: 100, completion_tokens: 50 },
  });
  return { ...buildUsageRow(job, at), ...over };
}

test('percentiles from the sketch are within its relative accuracy of exact order statistics', () => {
  const s = new LatencySketch();
  const values: number[] = [];
  let x = 12345;
  for (let i = 0; i < 20_000; i += 1) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const v = Math.exp((x / 2 ** 31) * 9); // 1 ms … 8 s, long tail
    values.push(v);
    s.add(v);
  }
  values.sort((a, b) => a - b);
  const restored = LatencySketch.deserialize(s.serialize());
  for (const q of [0.5, 0.95, 0.99]) {
    const exact = values[Math.floor(q * (values.length - 1))]!;
    for (const sk of [s, restored]) {
      const err = Math.abs(sk.quantile(q)! - exact) / exact;
      assert.ok(err <= SKETCH_RELATIVE_ACCURACY + 1e-9, `q${q}: error ${err}`);
    }
  }
  const a = LatencySketch.deserialize(s.serialize());
  a.merge(restored);
  assert.equal(a.count, 40_000);
});

test('projection: month-to-date plus the recent run rate over the rest of the month', () => {
  const start = Date.UTC(2026, 10, 1);
  let mtd = addToMonth(undefined, 0, start);
  for (let h = 0; h < 48; h += 1) mtd = addToMonth(mtd, 1, start + h * 3_600_000); // $1 per hour for two days
  const now = start + 48 * 3_600_000;
  assert.equal(mtd.costUsd, 48);
  const projected = projectMonthEnd(mtd, now);
  assert.ok(Math.abs(projected - (48 + 28 * 24)) < 1e-6, `projected ${projected}`); // 30-day month: 28 days left
  assert.deepEqual(crossedThresholds(48, projected, 100, [50, 80, 100]).map((c) => `${c.basis}${c.thresholdPct}`), ['projected50', 'projected80', 'projected100']);
});

test('rollup closes each window once, after the lateness allowance, with metrics per group', async () => {
  const w = world();
  for (let i = 0; i < 40; i += 1) await w.usage.insert(row(i, T0 + 10_000 + i));
  w.clock.t = T0 + 60_000 + 119_000; // window 19:00 ends 19:01; lateness 2 min → closable at 19:03
  let r = await runRollup(w.deps());
  assert.ok(!r.closed.includes(windowOf(T0)));
  w.clock.t = T0 + 180_000;
  r = await runRollup(w.deps());
  assert.ok(r.closed.includes(windowOf(T0)));
  assert.equal(r.rows, 40);
  const iso = windowIso(windowOf(T0));
  const ok = w.sink.metrics(WINDOW_METRICS.jobsSucceeded, { window: iso });
  assert.deepEqual(ok.map((m) => [m.properties.team, m.value]).sort(), [['ads', 20], ['search', 20]]);
  const util = w.sink.metrics(DEPLOYMENT_METRICS.tpmUtilisation, { window: iso })[0]!;
  assert.equal(util.value, (40 * 600) / 10_000);
  assert.ok(w.sink.metrics(WINDOW_METRICS.latencyTotalP95, { window: iso }).length === 2);
  // Nothing new: a second run closes nothing and sends no window metrics again.
  const before = w.sink.metrics(WINDOW_METRICS.jobsSucceeded).length;
  r = await runRollup(w.deps());
  assert.deepEqual(r.closed, []);
  assert.equal(w.sink.metrics(WINDOW_METRICS.jobsSucceeded).length, before);
});

test('racing runs: two rollups at once count every window exactly once', async () => {
  const w = world();
  for (let m = 0; m < 4; m += 1) for (let i = 0; i < 10; i += 1) await w.usage.insert(row(m * 100 + i, T0 + m * 60_000 + 5_000 + i));
  w.clock.t = T0 + 7 * 60_000;
  const [a, b] = await Promise.all([runRollup(w.deps('a')), runRollup(w.deps('b')), runRollup(w.deps('c'))]);
  void a;
  void b;
  const sent = w.sink.metrics(WINDOW_METRICS.jobsSucceeded);
  const perWindow = new Map<string, number>();
  for (const s of sent) perWindow.set(s.properties.window!, (perWindow.get(s.properties.window!) ?? 0) + s.value!);
  for (let m = 0; m < 4; m += 1) assert.equal(perWindow.get(windowIso(windowOf(T0 + m * 60_000))), 10, `window ${m}`);
  const mtd = await w.state.get(`mtd202611`, 'all');
  assert.ok(Math.abs(Number(mtd!.value.costUsd) - 40 * (100 * 0.15 + 50 * 0.6) / 1e6) < 1e-12);
});

test('a crashed run: its expired claim is taken over with the same cut; nothing is counted twice', async () => {
  const w = world();
  for (let i = 0; i < 10; i += 1) await w.usage.insert(row(i, T0 + 5_000 + i));
  w.clock.t = T0 + 180_000;
  // Run "dead" claims 19:00 and crashes right after aggregating (simulated: claim written, nothing else).
  const dead = w.deps('dead');
  const wm0 = windowOf(T0 - 60_000);
  const before = await w.state.get(WATERMARK.partition, WATERMARK.row);
  const claim = await w.state.replace(WATERMARK.partition, WATERMARK.row, { closedThrough: wm0, claimWindow: windowOf(T0), claimRun: 'dead', leaseUntil: w.clock.t + 300_000, cut: '', history: '[]' }, before!.etag);
  void dead;
  // Rows committed after the claim are not the window's (their writers re-file them).
  await w.usage.insert(row(99, T0 + 30_000));
  let r = await runRollup(w.deps('live'));
  assert.equal(r.busy, true, 'a live claim keeps others off');
  w.clock.t += 300_001;
  r = await runRollup(w.deps('live'));
  assert.ok(r.closed.includes(windowOf(T0)));
  const sent = w.sink.metrics(WINDOW_METRICS.jobsSucceeded, { window: windowIso(windowOf(T0)) });
  assert.equal(sent.reduce((n, s) => n + s.value!, 0), 10, 'the row committed after the cut is not counted');
  assert.ok(claim.committedAt);
  assert.ok(w.logs.some((l) => /took over/.test(l)));
});

test('late rows: a slow write after its window was closed is re-filed and counted in a later window, once', async () => {
  const w = world();
  const clock = w.clock;
  const recorder = { store: w.usage, cuts: watermarkCuts(w.state), clock, latenessMs: 120_000 };
  const job = newJob({ id: 'job_late', status: 'succeeded', completedAt: T0 + 30_000, startedAt: T0, createdAt: T0, usage: { prompt_tokens: 10, completion_tokens: 5 }, response: { choices: [] } });
  // Close 19:00 first (with one ordinary row), then the slow write lands at 19:04.
  await recordJobUsage(recorder, newJob({ id: 'job_fast', status: 'succeeded', completedAt: T0 + 20_000, createdAt: T0, usage: { prompt_tokens: 10, completion_tokens: 5 }, response: { choices: [] } }), T0 + 20_000);
  clock.t = T0 + 3 * 60_000;
  await runRollup(w.deps());
  clock.t = T0 + 4 * 60_000 + 5_000;
  const written = await recordJobUsage(recorder, job, T0 + 30_000); // built at 19:00:30, committed at 19:04:05
  assert.equal(written.lateFrom, windowOf(T0));
  assert.equal(written.window, windowOf(clock.t));
  clock.t = T0 + 8 * 60_000;
  await runRollup(w.deps());
  const total = w.sink.metrics(WINDOW_METRICS.jobsSucceeded).reduce((n, s) => n + s.value!, 0);
  assert.equal(total, 2, 'each job counted once');
  // Recording the same job again is a no-op.
  const again = await recordJobUsage({ ...recorder, clock: { now: () => T0 + 30_500 } }, job, T0 + 30_000);
  assert.equal(again.lateFrom, undefined);
  assert.equal(w.usage.stored.size, 3);
});

test('budget thresholds: one event per scope, basis and threshold per month, however many runs', async () => {
  const w = world({ monthlyBudgetUsd: 0.0001, teamBudgetsUsd: { search: 1000 } });
  for (let m = 0; m < 3; m += 1) for (let i = 0; i < 5; i += 1) await w.usage.insert(row(m * 10 + i, T0 + m * 60_000 + 1000 + i));
  w.clock.t = T0 + 4 * 60_000;
  await runRollup(w.deps('a'));
  w.clock.t = T0 + 6 * 60_000;
  await Promise.all([runRollup(w.deps('b')), runRollup(w.deps('c'))]);
  const events = w.sink.events(EVENTS.budgetThreshold);
  const keys = events.map((e) => `${e.properties.scope}|${e.properties.basis}|${e.properties.threshold_pct}`);
  assert.equal(new Set(keys).size, keys.length, 'no duplicates');
  assert.ok(keys.includes('all|actual|100') && keys.includes('all|projected|50'));
  assert.ok(!keys.some((k) => k.startsWith('team')), 'search is far from its budget');
  assert.ok(w.logs.some((l) => /^warn budget: overall actual/.test(l)));
  assert.ok(w.sink.metrics(COST_METRICS.projectedMonthUsd, { scope: 'all' }).length >= 3);
});

test('quota advice after N minutes above the threshold, once per streak', async () => {
  const w = world();
  // 10,000 TPM; each row charges 600 → 15 rows = 90 %.
  for (let m = 0; m < 5; m += 1) for (let i = 0; i < 15; i += 1) await w.usage.insert(row(m * 100 + i, T0 + m * 60_000 + 1000 + i));
  w.clock.t = T0 + 8 * 60_000;
  await runRollup(w.deps());
  const advice = w.sink.events(EVENTS.quotaAdvice);
  assert.equal(advice.length, 1);
  assert.equal(advice[0]!.properties.deployment, 'chat');
  assert.equal(advice[0]!.measurements!.minutes, 3);
  assert.equal(advice[0]!.measurements!.suggested_tpm, 12_000);
});

test('usage query: parameters, partition plan and merged groups with percentiles', async () => {
  const params = (o: Record<string, string>) => ({ get: (k: string) => o[k] ?? null });
  assert.throws(() => parseUsageQuery(params({ from: 'yesterday' }), T0), (e: { param?: string }) => e.param === 'from');
  assert.throws(() => parseUsageQuery(params({ group_by: 'colour' }), T0), (e: { param?: string }) => e.param === 'group_by');
  assert.throws(() => parseUsageQuery(params({ from: '2026-11-23T19:00:00Z', to: '2026-11-23T18:00:00Z' }), T0), (e: { param?: string }) => e.param === 'from');
  assert.deepEqual(partitionPlan(Date.UTC(2026, 10, 22, 22, 58), Date.UTC(2026, 10, 24, 1, 2)), [
    ['M202611222258', 'M202611222300'],
    ['H2026112223', 'H2026112300'],
    ['D20261123', 'D20261124'],
    ['H2026112400', 'H2026112401'],
    ['M202611240100', 'M202611240102'],
  ]);
  const w = world();
  for (let i = 0; i < 30; i += 1) await w.usage.insert(row(i, T0 + 1000 + i * 100));
  w.clock.t = T0 + 5 * 60_000;
  await runRollup(w.deps());
  const q = parseUsageQuery(params({ from: '2026-11-23T18:00:00Z', to: '2026-11-23T20:00:00Z', group_by: 'team' }), w.clock.t);
  const { groups, total } = await queryUsage(w.state, q);
  assert.equal(total.jobs.succeeded, 30);
  assert.deepEqual(groups.map((g) => g.team).sort(), ['ads', 'search']);
  assert.ok(total.latency_ms.model!.p95 > 0);
});
