/**
 * A storage outage (Azurite stopped, data kept on disk) and non-retryable model errors.
 * - While storage is down, submit answers 503 with Retry-After without waiting out storage retries (never 500, 202),
 *   reads answer 503 too, and everything written before the outage is still there afterwards.
 * - A job whose model call is in flight when storage goes down stores its result once storage is back, with one call.
 * - content_filter and other 400s end the job `failed` at once, with the reason, and never reach the poison queue.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type RunningStack } from '../../local/stack';
import type { SimulatorConfig } from '../../local/simulator';
import { call, chatJob, eventually, waitForJob } from '../support/api';
import { callsOf, endings, fastQueues, fastSim, jobRow, modelCallArrives } from './support';

const REGIONS = ['sim-eastus', 'sim-westus'];
/** The simulator's deployments cap max_tokens below Sluice's model limit, so a bigger ask is a model-side 400. */
const SIM_MAX_OUTPUT = 1_000;
const sim: SimulatorConfig = {
  ...fastSim,
  regions: fastSim.regions.map((r) => ({ ...r, deployments: r.deployments.map((d) => ({ ...d, maxOutputTokens: SIM_MAX_OUTPUT })) })),
};

let stack: RunningStack;

before(async () => {
  stack = await startStack({ simulator: sim, azurite: { inMemory: false }, env: { SLUICE_CALL_TIMEOUT_MS: '10000' }, hostJson: fastQueues });
});

after(async () => {
  await stack?.stop();
});

test('storage down: submit answers 503 with Retry-After promptly; nothing written before is lost; work resumes', async () => {
  const earlier = await call(stack.baseUrl, '/v1/jobs', { json: chatJob('written before the outage') });
  assert.equal(earlier.status, 202);
  const before = await waitForJob(stack.baseUrl, earlier.body.id);
  assert.equal(before.status, 'succeeded');

  // A job whose model call is in flight when storage goes away.
  for (const region of REGIONS) stack.sim!.setFault(region, { slowRate: 1, slowMs: 2_500 });
  const inFlight = await call(stack.baseUrl, '/v1/jobs', { json: chatJob('stored after the outage') });
  assert.equal(inFlight.status, 202);
  const inFlightId = inFlight.body.id as string;
  await modelCallArrives(inFlightId); // the worker picks the job up after a queue poll; the call is then in flight
  assert.equal((await jobRow(stack, inFlightId)).status, 'running');
  for (const region of REGIONS) stack.sim!.setFault(region, {});

  await stack.azurite.stop();
  try {
    for (let i = 0; i < 3; i += 1) {
      // A deadline far above a prompt answer: a submit that waited out the storage SDK's retries would miss it.
      const res = await call(stack.baseUrl, '/v1/jobs', { json: chatJob(`during the outage ${i}`), signal: AbortSignal.timeout(15_000) });
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'storage_unavailable');
      assert.ok(Number(res.headers.get('retry-after')) >= 1, 'Retry-After');
    }
    const read = await call(stack.baseUrl, `/v1/jobs/${earlier.body.id}`);
    assert.equal(read.status, 503, `a read during the outage: ${read.status}`);
    // The in-flight call ends while storage is still down.
    await eventually('the in-flight call to be answered', async () => callsOf(stack, inFlightId).ok === 1, 20_000, 50);
  } finally {
    await stack.azurite.start();
  }

  const stored = await waitForJob(stack.baseUrl, inFlight.body.id, ['succeeded', 'failed'], 60_000);
  assert.equal(stored.status, 'succeeded', JSON.stringify(stored.error));
  assert.equal(callsOf(stack, inFlight.body.id).ok, 1, 'the result was stored, not fetched again');

  const again = await call(stack.baseUrl, `/v1/jobs/${earlier.body.id}`);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body.response, before.response, 'the record written before the outage survived');
  const after = await call(stack.baseUrl, '/v1/jobs', { json: chatJob('after the outage') });
  assert.equal(after.status, 202);
  assert.equal((await waitForJob(stack.baseUrl, after.body.id, ['succeeded', 'failed'], 60_000)).status, 'succeeded');
});

test('content_filter and other model-side 400s fail the job at once with the reason, never via the poison queue', async () => {
  const filtered = await call(stack.baseUrl, '/v1/jobs', { json: chatJob('Please SLUICE_TRIGGER_CONTENT_FILTER now') });
  const tooLong = await call(stack.baseUrl, '/v1/jobs', { json: { request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: SIM_MAX_OUTPUT + 1 } } });
  assert.equal(filtered.status, 202);
  assert.equal(tooLong.status, 202, JSON.stringify(tooLong.body));
  for (const [id, code] of [[filtered.body.id, 'content_filter'], [tooLong.body.id, undefined]] as const) {
    const job = await waitForJob(stack.baseUrl, id);
    assert.equal(job.status, 'failed');
    if (code) assert.equal(job.error.code, code);
    assert.notEqual(job.error.code, 'worker_crashed');
    assert.ok(job.error.message.length > 0, 'a readable reason');
    assert.equal(job.attempts, 1);
    assert.equal(job.dequeue_count, 1);
    assert.equal(callsOf(stack, id).all, 1, 'one call, no retries');
    await eventually('the ending to be logged', async () => endings(stack, id).length === 1, 5_000);
  }
  // The host logs every invocation it starts; without those lines the check below could not fail.
  assert.ok(stack.logs().some((l) => l.includes("Executing 'Functions.")), 'the host logs its invocations');
  assert.ok(!stack.logs().some((l) => l.includes("Executing 'Functions.poisonJobs")), 'the poison queue trigger never ran');
});
