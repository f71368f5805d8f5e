/**
 * Regional failover through the real path: HTTP submit → queue → worker processes → simulator, with the breaker
 * table and the shared budget in Azurite. Two worker processes share one breaker table and one budget table; the
 * simulator's faults play the outage. Spill-over is off for the model, so a job leaves the primary for health reasons
 * only (breaker open, call failed), never because the primary's budget is busy: what these tests see is the breaker,
 * with every call admitted through the budget gate.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type RunningStack } from '../../local/stack';
import { DEFAULT_SIMULATOR_CONFIG, type SimulatorConfig } from '../../local/simulator';
import { storageClients } from '../../src/azure/storage';
import { DEFAULT_BREAKER_TABLE } from '../../src/azure/breakerTable';
import { call, chatJob, eventually, waitForJob } from '../support/api';

const PRIMARY = 'sim-eastus';
const SECONDARY = 'sim-westus';
const COOLDOWN_MS = 2_000;
const WORKERS = 2;
/** A failed call takes a few ms between its start (what the job records) and the breaker write that reopens. */
const CALL_SLACK_MS = 250;

interface Attempt {
  region: string;
  status: number;
  outcome: string;
  at: string;
}
interface JobView {
  id: string;
  status: string;
  region?: string;
  regions_tried: Attempt[];
  error?: { code: string };
}

/** Both regions with quota far above what these tests send. */
const roomySim: SimulatorConfig = {
  ...DEFAULT_SIMULATOR_CONFIG,
  latency: { firstTokenMs: 0, perTokenMs: 0 },
  regions: DEFAULT_SIMULATOR_CONFIG.regions.map((r) => ({ ...r, port: 0, deployments: r.deployments.map((d) => ({ ...d, tpm: 2_000_000, rpm: 20_000 })) })),
  adminPort: 0,
};

let stack: RunningStack;

before(async () => {
  stack = await startStack({
    simulator: roomySim,
    workers: WORKERS,
    env: {
      SLUICE_BUDGET_ENABLED: 'true',
      // A job the primary's budget cannot take this instant waits for the primary instead of spilling over.
      SLUICE_MODELS: JSON.stringify({ 'gpt-4o-mini': { spillover: false } }),
      SLUICE_BREAKER_COOLDOWN_MS: String(COOLDOWN_MS),
      // Every check reads the shared row: an instance learns of an opened or closed breaker at its next call, with no
      // cache to wait out (the cache's bounds are unit-tested in health.test.ts).
      SLUICE_BREAKER_CACHE_MS: '0',
      SLUICE_CALL_TIMEOUT_MS: '10000',
    },
    hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.200' } } },
  });
});

after(async () => {
  await stack?.stop();
});

beforeEach(async () => {
  // Every scenario starts healthy: no fault and no breaker rows.
  for (const region of [PRIMARY, SECONDARY]) stack.sim!.setFault(region, {});
  const table = storageClients({ connectionString: stack.connectionString }).table(DEFAULT_BREAKER_TABLE);
  await table.createTable();
  for await (const e of table.listEntities()) await table.deleteEntity(e.partitionKey!, e.rowKey!);
});

async function submit(n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 1) {
    const res = await call(stack.baseUrl, '/v1/jobs', { json: chatJob(`${tag} ${i}`) });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    ids.push(res.body.id);
  }
  return ids;
}

async function finished(ids: string[], timeoutMs = 60_000): Promise<JobView[]> {
  return Promise.all(ids.map((id) => waitForJob(stack.baseUrl, id, ['succeeded', 'failed'], timeoutMs) as Promise<JobView>));
}

function failedOn(jobs: JobView[], region: string): number {
  return jobs.flatMap((j) => j.regions_tried).filter((a) => a.region === region && a.outcome !== 'ok').length;
}

/**
 * Once the breaker is open, the fleet calls the primary only to probe it, one instance per cool-down: the failed
 * calls the jobs recorded on the primary (the one that opened the breaker included) are a cool-down apart.
 */
function assertOnlyProbes(jobs: JobView[]): void {
  const starts = jobs
    .flatMap((j) => j.regions_tried)
    .filter((a) => a.region === PRIMARY && a.outcome !== 'ok')
    .map((a) => Date.parse(a.at))
    .sort((x, y) => x - y);
  assert.ok(starts.length >= 1, 'the outage was met at least once');
  for (let i = 1; i < starts.length; i += 1) {
    const gap = starts[i]! - starts[i - 1]!;
    assert.ok(gap >= COOLDOWN_MS - CALL_SLACK_MS, `failed calls on the primary ${gap} ms apart; probes are one cool-down (${COOLDOWN_MS} ms) apart`);
  }
}

/** The shared budget's rows, by region: proof that the calls went through the budget gate. */
async function budgetRegions(): Promise<Set<string>> {
  const table = storageClients({ connectionString: stack.connectionString }).table(stack.env.SLUICE_BUDGET_TABLE ?? 'sluicebudget');
  const keys: string[] = [];
  for await (const e of table.listEntities()) keys.push(decodeURIComponent(e.rowKey!));
  return new Set(stack.sim!.regions.filter((r) => keys.some((k) => k.startsWith(r.baseUrl.replace(/\/+$/, '')))).map((r) => r.name));
}

async function breakerOf(region: string): Promise<{ state: string; lastError?: string }> {
  const res = await call(stack.baseUrl, '/v1/health', { key: stack.adminKey! });
  const endpoint = (res.body.endpoints as Array<{ region: string; breaker?: { state: string; lastError?: string } }>).find((e) => e.region === region);
  assert.ok(endpoint?.breaker, `health shows no breaker for ${region}: ${JSON.stringify(res.body.endpoints)}`);
  return endpoint.breaker;
}

test('primary refuses connections: jobs fail over, and the fleet calls the primary only to probe it', async () => {
  assert.deepEqual(
    (await finished(await submit(2, 'warm'))).map((j) => j.region),
    [PRIMARY, PRIMARY],
  );
  stack.sim!.setFault(PRIMARY, { down: 'refuse' });
  const first = await finished(await submit(1, 'outage-first'));
  assert.equal(first[0]!.status, 'succeeded');
  assert.equal(first[0]!.region, SECONDARY);
  assert.deepEqual(first[0]!.regions_tried.map((a) => [a.region, a.outcome]), [
    [PRIMARY, 'connection_failed'],
    [SECONDARY, 'ok'],
  ]);
  assert.equal((await breakerOf(PRIMARY)).state, 'open');

  const rest = await finished(await submit(20, 'outage'));
  assert.deepEqual(new Set(rest.map((j) => j.status)), new Set(['succeeded']));
  assert.deepEqual(new Set(rest.map((j) => j.region)), new Set([SECONDARY]));
  assertOnlyProbes([...first, ...rest]);
  assert.deepEqual(await budgetRegions(), new Set([PRIMARY, SECONDARY]), 'both regions admitted through the shared budget');
});

test('a 429 asking for a day fails over at once instead of parking the job', async () => {
  stack.sim!.setFault(PRIMARY, { errorRate: { '429': 1 }, retryAfterSeconds: 86_400 });
  // A job that honoured the day-long Retry-After would still be waiting when this deadline passes.
  const [job] = await finished(await submit(1, 'daily-quota'), 30_000);
  assert.equal(job!.status, 'succeeded');
  assert.equal(job!.region, SECONDARY);
  assert.deepEqual(job!.regions_tried.map((a) => [a.region, a.status]), [
    [PRIMARY, 429],
    [SECONDARY, 200],
  ]);
  const breaker = await breakerOf(PRIMARY);
  assert.equal(breaker.state, 'open');
  assert.match(breaker.lastError ?? '', /^429/);

  const rest = await finished(await submit(10, 'daily-quota-rest'));
  assert.deepEqual(new Set(rest.map((j) => j.region)), new Set([SECONDARY]));
  assertOnlyProbes([job!, ...rest]);
});

test('a short 429 does not open the breaker', async () => {
  stack.sim!.setFault(PRIMARY, { errorRate: { '429': 1 }, retryAfterSeconds: 1 });
  const [job] = await finished(await submit(1, 'short-429'));
  assert.equal(job!.status, 'succeeded');
  assert.equal(job!.region, SECONDARY);
  assert.equal((await breakerOf(PRIMARY)).state, 'closed');
});

test('503s: the breaker opens after a run of them, not after one', async () => {
  stack.sim!.setFault(PRIMARY, { down: '503' });
  const [one] = await finished(await submit(1, '503-one'));
  assert.equal(one!.region, SECONDARY);
  assert.equal((await breakerOf(PRIMARY)).state, 'closed', 'one 503 is not an outage');
  // Sequentially, so each job sees the previous one's 503 recorded; the breaker opens within a few.
  let state = 'closed';
  for (let i = 0; i < 8 && state !== 'open'; i += 1) {
    const [job] = await finished(await submit(1, `503-run-${i}`));
    assert.equal(failedOn([job!], PRIMARY), 1, 'every job meets the 503 until the breaker opens');
    state = (await breakerOf(PRIMARY)).state;
  }
  assert.equal(state, 'open');
});

test('failback: after recovery a probe closes the breaker and traffic returns to the primary', async () => {
  stack.sim!.setFault(PRIMARY, { down: 'refuse' });
  const [outage] = await finished(await submit(1, 'fb-outage'));
  assert.equal(outage!.region, SECONDARY);
  assert.equal((await breakerOf(PRIMARY)).state, 'open');
  stack.sim!.setFault(PRIMARY, {});
  // The first job after the cool-down probes the primary, succeeds and closes the breaker; until then jobs go to
  // the secondary. The deadline is only there to fail the test if that never happens.
  const backOnPrimary = await eventually(
    'a job served by the primary again',
    async () => {
      const [job] = await finished(await submit(1, 'fb-probe'));
      return job!.region === PRIMARY ? job : undefined;
    },
    COOLDOWN_MS + 30_000,
    100,
  );
  assert.equal(backOnPrimary.status, 'succeeded');
  assert.equal((await breakerOf(PRIMARY)).state, 'closed');
  const after = await finished(await submit(6, 'fb-after'));
  assert.deepEqual(new Set(after.map((j) => j.region)), new Set([PRIMARY]), 'every instance reads the closed breaker');
});
