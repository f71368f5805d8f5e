/**
 * Worker processes killed at each point of a job (before the model call, during it, after it but before the result
 * is stored) leave nothing stuck: the claim runs out, the recovery message finishes the job, and the job ends exactly
 * once. Also: a worker told to stop (SIGTERM) releases a job it was holding in-process.
 * Crashes use the test-only SLUICE_FAULT_CRASH_AT hook, or a SIGKILL while the simulator holds a slow call.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type RunningStack } from '../../local/stack';
import { call, chatJob, eventually, waitForJob } from '../support/api';
import { modelCallsSettled } from '../support/modelCalls';
import { callsOf, endings, exited, fastQueues, fastSim, jobRow, modelCallArrives, startWorkerWith } from './support';

/** Claim = call timeout + 30 s (src/core/worker.ts), so a crashed job is recovered ~33 s later. */
const CALL_TIMEOUT_MS = 3_000;
const REGIONS = ['sim-eastus', 'sim-westus'];

let stack: RunningStack;

before(async () => {
  stack = await startStack({
    simulator: fastSim,
    workers: 1,
    env: { SLUICE_CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS), SLUICE_BREAKER_ENABLED: 'false' },
    hostJson: fastQueues,
  });
});

after(async () => {
  await stack?.stop();
});

async function submit(content: string): Promise<string> {
  const res = await call(stack.baseUrl, '/v1/jobs', { json: chatJob(content) });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  return res.body.id as string;
}

test('SIGTERM while a job is held in-process: the worker parks it and exits promptly; another worker finishes it', async () => {
  for (const region of REGIONS) stack.sim!.setFault(region, { errorRate: { '429': 1 }, retryAfterSeconds: 1 });
  const id = await submit('held while throttled');
  try {
    await eventually('the worker to be throttled on the job', async () => callsOf(stack, id).all >= 2, 20_000);
    const worker = stack.workerProcesses[0]!;
    stack.killWorker(0, 'SIGTERM');
    // The throttling goes on until after this: a worker that kept holding the job would never exit.
    assert.equal(await exited(worker, 30_000), '0');
    const row = await jobRow(stack, id);
    assert.equal(row.status, 'waiting', 'released (parked), not left running');
  } finally {
    for (const region of REGIONS) stack.sim!.setFault(region, {});
  }
  stack.startWorker();
  const job = await waitForJob(stack.baseUrl, id, ['succeeded', 'failed'], 30_000);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.equal(callsOf(stack, id).ok, 1);
  // The worker's log line may arrive a moment after the record says succeeded.
  await eventually('the ending to be logged', async () => endings(stack, id).length === 1, 5_000);
});

test('a worker killed before, during or after the model call: each job finishes once, after its claim ran out', async () => {
  // No worker running, so each job goes to exactly the worker started for it.
  const idle = stack.workerProcesses.filter((w) => w.exitCode === null && w.signalCode === null);
  for (const w of idle) w.kill('SIGTERM');
  await Promise.all(idle.map((w) => exited(w)));

  // Before the call: the worker claims the job and dies before calling the model.
  const beforeId = await submit('crash before the call');
  const beforeWorker = startWorkerWith(stack, { SLUICE_FAULT_CRASH_AT: 'before-call', SLUICE_FAULT_CRASH_JOB: beforeId });
  assert.equal(await exited(beforeWorker), 'SIGKILL');

  // After the call: the model answered, the worker dies before storing the result.
  const afterId = await submit('crash after the call');
  const afterWorker = startWorkerWith(stack, { SLUICE_FAULT_CRASH_AT: 'after-call', SLUICE_FAULT_CRASH_JOB: afterId });
  assert.equal(await exited(afterWorker), 'SIGKILL');
  assert.equal(callsOf(stack, afterId).ok, 1, 'the crashed worker got its answer');

  // During the call: the simulator holds every call for 6 s; the worker is killed while it waits.
  for (const region of REGIONS) stack.sim!.setFault(region, { slowRate: 1, slowMs: 6_000 });
  const duringId = await submit('crash during the call');
  const inFlight = modelCallArrives(duringId);
  const duringWorker = stack.startWorker();
  await inFlight;
  duringWorker.kill('SIGKILL');
  await exited(duringWorker);
  for (const region of REGIONS) stack.sim!.setFault(region, {});

  const ids = { before: beforeId, during: duringId, after: afterId };
  const claims: Record<string, number> = {};
  for (const [point, id] of Object.entries(ids)) {
    const row = await jobRow(stack, id);
    assert.equal(row.status, 'running', `${point}: left running by the dead worker`);
    claims[point] = row.claimUntil!;
  }
  assert.equal(callsOf(stack, beforeId).all, 0, 'before: the model was never called');

  // A healthy worker takes over each job once its claim has run out.
  stack.startWorker();
  for (const [point, id] of Object.entries(ids)) {
    const job = await waitForJob(stack.baseUrl, id, ['succeeded', 'failed'], 90_000);
    assert.equal(job.status, 'succeeded', `${point}: ${JSON.stringify(job.error)}`);
    assert.equal(job.dequeue_count, 1, `${point}: finished by the recovery message, not the 10-minute redelivery`);
    assert.ok(Date.parse(job.completed_at) >= claims[point]!, `${point}: nobody took the job over while the dead worker's claim held`);
  }
  // No model call in flight: a second run of any of the three would have ended by now.
  await modelCallsSettled();
  for (const [point, id] of Object.entries(ids)) {
    await eventually(`${point}: the ending to be logged`, async () => endings(stack, id).length >= 1, 10_000);
    assert.equal(endings(stack, id).length, 1, `${point}: ended exactly once`);
  }
  assert.ok(callsOf(stack, duringId).statuses.some((s) => s !== 200), 'during: the killed worker cut a call in flight');
  assert.equal(callsOf(stack, beforeId).ok, 1, 'before: one model call in all');
  assert.equal(callsOf(stack, duringId).ok, 1, `during: one answered call (the cut one is logged ${callsOf(stack, duringId).statuses})`);
  assert.equal(callsOf(stack, afterId).ok, 2, 'after: the crash between call and store is the one case that calls twice');
});
