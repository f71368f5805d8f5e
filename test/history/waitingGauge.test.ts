/**
 * The rollup's waiting-jobs gauge through the real worker (the app, Azurite, the simulator): jobs its deployment
 * refuses with 429 wait, are counted while they wait and counted out once they ran, without a scan of the jobs table.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStack, type RunningStack } from '../../local/stack';
import { GAUGE_METRICS } from '../../src/core/telemetry/names';
import { getTelemetryServices } from '../../src/runtime/telemetry';
import { call, chatJob, eventually, waitForJob } from '../support/api';
import { fastSimulator } from '../batch/support';

let stack: RunningStack;

before(async () => {
  stack = await startStack({ simulator: fastSimulator() });
});

after(async () => {
  await stack?.stop();
});

async function waitingGauge(): Promise<number> {
  const gauges = await getTelemetryServices().gauges();
  const gauge = gauges.find((g) => g.name === GAUGE_METRICS.jobsWaiting);
  assert.ok(gauge, 'the rollup sends the waiting gauge');
  return gauge.value;
}

test('jobs waiting for quota are counted while they wait and counted out once they ran', async () => {
  assert.equal(await waitingGauge(), 0);
  // Every call refused with a 3 s Retry-After: the worker holds or parks each job until then, then tries again.
  stack.sim!.setFault('sim-test', { errorRate: { '429': 1 }, retryAfterSeconds: 3 });
  const ids: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    const res = await call(stack.baseUrl, '/v1/jobs', { json: chatJob(`wait ${i}`) });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    ids.push(res.body.id);
  }
  const shown = await eventually('a job shown waiting', async () => {
    for (const id of ids) if ((await call(stack.baseUrl, `/v1/jobs/${id}`)).body.status === 'waiting') return id;
    return undefined;
  }, 60_000, 250);
  await eventually(`the gauge to count ${shown}`, async () => (await waitingGauge()) > 0, 30_000, 250);
  stack.sim!.setFault('sim-test', {});
  for (const id of ids) assert.equal((await waitForJob(stack.baseUrl, id, ['succeeded', 'failed'], 180_000)).status, 'succeeded');
  await eventually('every job counted out', async () => (await waitingGauge()) === 0, 30_000, 250);
});
