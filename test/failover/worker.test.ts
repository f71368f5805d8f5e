/**
 * Regional failover through the real path: HTTP submit → queue → worker processes → simulator, with the breaker
 * table in Azurite. Two worker processes share one breaker table; the simulator's faults play the outage.
 * (These pass once the worker consults EndpointHealth; see docs/failover.md "Integration".)
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

/** Both regions with quota far above what these tests send, so only faults (not the shared budget) move work. */
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
      // These tests are about the breaker: with the shared budget on, its spill-over (a job the primary's lease cannot
      // take this instant goes to the secondary) sends the odd job around the primary and flaked them under load.
      SLUICE_BUDGET_ENABLED: 'false',
      SLUICE_BREAKER_COOLDOWN_MS: String(COOLDOWN_MS),
      SLUICE_BREAKER_CACHE_MS: '1000',
      SLUICE_CALL_TIMEOUT_MS: '10000',
    },
    hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.200' } } },
  });
});

after(async () => {
  await stack?.stop();
});

beforeEach(async () => {
  // Every scenario starts healthy: no fault, no breaker rows, and every instance's 1 s cache expired.
  for (const region of [PRIMARY, SECONDARY]) stack.sim!.setFault(region, {});
  const table = storageClients({ connectionString: stack.connectionString }).table(DEFAULT_BREAKER_TABLE);
  await table.createTable();
  for await (const e of table.listEntities()) await table.deleteEntity(e.partitionKey!, e.rowKey!);
  await sleep(1_200);
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

/** After the fleet learned of the outage, the primary gets at most one probe per cool-down (from one instance). */
function assertOnlyProbes(failedCalls: number, openedAt: number): void {
  const probes = Math.ceil((Date.now() - openedAt) / COOLDOWN_MS);
  assert.ok(failedCalls <= probes, `${failedCalls} failed calls on the primary; at most ${probes} probes allowed`);
}

async function breakerOf(region: string): Promise<{ state: string; lastError?: string }> {
  const res = await call(stack.baseUrl, '/v1/health');
  const endpoint = (res.body.endpoints as Array<{ region: string; breaker?: { state: string; lastError?: string } }>).find((e) => e.region === region);
  assert.ok(endpoint?.breaker, `health shows no breaker for ${region}: ${JSON.stringify(res.body.endpoints)}`);
  return endpoint.breaker;
}

test('primary refuses connections: jobs fail over, and within a cache period no instance calls the primary', async () => {
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
  const opened = Date.now();
  assert.equal((await breakerOf(PRIMARY)).state, 'open');

  // Once every instance's cached read (≤ 1 s) has expired, the primary sees only the fleet's one probe per cool-down.
  await sleep(1_100);
  const rest = await finished(await submit(20, 'outage'));
  assert.deepEqual(new Set(rest.map((j) => j.status)), new Set(['succeeded']));
  assert.deepEqual(new Set(rest.map((j) => j.region)), new Set([SECONDARY]));
  assertOnlyProbes(failedOn(rest, PRIMARY), opened);
});

test('a 429 asking for a day fails over at once instead of parking the job', async () => {
  stack.sim!.setFault(PRIMARY, { errorRate: { '429': 1 }, retryAfterSeconds: 86_400 });
  // The first job that reaches the primary meets the daily-quota 429 (a job the shared budget sends straight to the
  // secondary doesn't; bounded retries cover that).
  let job: JobView | undefined;
  for (let i = 0; i < 5 && !job?.regions_tried.some((a) => a.region === PRIMARY); i += 1) {
    const started = Date.now();
    [job] = await finished(await submit(1, `daily-quota-${i}`), 20_000);
    assert.equal(job!.status, 'succeeded');
    assert.equal(job!.region, SECONDARY);
    assert.ok(Date.now() - started < 10_000, 'no stall on the Retry-After');
  }
  assert.deepEqual(job!.regions_tried.map((a) => [a.region, a.status]), [
    [PRIMARY, 429],
    [SECONDARY, 200],
  ]);
  const breaker = await breakerOf(PRIMARY);
  assert.equal(breaker.state, 'open');
  assert.match(breaker.lastError ?? '', /^429/);

  const opened = Date.now();
  await sleep(1_100);
  const rest = await finished(await submit(10, 'daily-quota-rest'));
  assert.deepEqual(new Set(rest.map((j) => j.region)), new Set([SECONDARY]));
  assertOnlyProbes(failedOn(rest, PRIMARY), opened);
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
  // Sequentially, so each job sees the previous one's 503 recorded. A job the shared budget sends straight to the
  // secondary adds no 503, so keep going (bounded) until the run of 503s is long enough.
  let state = 'closed';
  for (let i = 0; i < 8 && state !== 'open'; i += 1) {
    await finished(await submit(1, `503-run-${i}`));
    state = (await breakerOf(PRIMARY)).state;
  }
  assert.equal(state, 'open');
});

test('failback: after recovery one probe returns traffic to the primary within a cool-down', async () => {
  stack.sim!.setFault(PRIMARY, { down: 'refuse' });
  // As above: a job the shared budget sends straight to the secondary does not meet the outage, so keep going
  // (bounded) until one has opened the breaker.
  let state = 'closed';
  for (let i = 0; i < 5 && state !== 'open'; i += 1) {
    await finished(await submit(1, `fb-outage-${i}`));
    state = (await breakerOf(PRIMARY)).state;
  }
  assert.equal(state, 'open');
  stack.sim!.setFault(PRIMARY, {});
  const recovered = Date.now();
  const backOnPrimary = await eventually(
    'a job served by the primary again',
    async () => {
      const [job] = await finished(await submit(1, 'fb-probe'));
      return job!.region === PRIMARY ? job : undefined;
    },
    COOLDOWN_MS + 10_000,
    100,
  );
  assert.equal(backOnPrimary.status, 'succeeded');
  assert.ok(Date.now() - recovered <= COOLDOWN_MS + 5_000, `failback took ${Date.now() - recovered} ms`);
  assert.equal((await breakerOf(PRIMARY)).state, 'closed');
  // The other instance may still trust its cached read of the open breaker for up to a second.
  await sleep(1_100);
  const after = await finished(await submit(6, 'fb-after'));
  assert.deepEqual(new Set(after.map((j) => j.region)), new Set([PRIMARY]));
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
