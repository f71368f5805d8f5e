// With the dispatcher, each model's jobs travel in a queue lane of their own: the dispatcher releases them into that
// lane's queue and that lane's worker function runs them (the real path: HTTP → team queue → dispatcher → lane queue
// → worker → storage).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStack, type RunningStack } from '../../local/stack';
import type { SimulatorConfig } from '../../local/simulator';
import { eventually } from '../support/api';
import { submit, waitForFinalStatus } from './stackSupport';

const chat = (name: string, model: string) => ({ name, model, tpm: 1_000_000, rpm: 10_000, contextWindow: 128_000, maxOutputTokens: 16_384 });
const SIMULATOR: SimulatorConfig = {
  // In name order gpt-4.1-mini comes first: lane 0; gpt-4o-mini: lane 1.
  regions: [{ name: 'sim-lanes', deployments: [chat('gpt-4o-mini', 'gpt-4o-mini-2024-07-18'), chat('gpt-4.1-mini', 'gpt-4.1-mini-2025-04-14')] }],
  latency: { firstTokenMs: 0, perTokenMs: 0 },
};

let stack: RunningStack;

before(async () => {
  stack = await startStack({ simulator: SIMULATOR, env: { SLUICE_QUEUE_LANES: '2' }, hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.200' } } } });
});

after(async () => {
  await stack?.stop();
});

const job = (model: string, priority: string) => ({ request: { model, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 20 }, priority });

test("each model's jobs run in its own lane's worker function", async () => {
  const runs: Array<{ id: string; fn: string }> = [];
  for (const [model, priority, fn] of [
    ['gpt-4.1-mini', 'interactive', 'worker'],
    ['gpt-4o-mini', 'interactive', 'worker_l1'],
    ['gpt-4o-mini', 'batch', 'worker_l1_batch'],
  ] as const) {
    const { status, id } = await submit(stack.baseUrl, job(model, priority));
    assert.equal(status, 202);
    runs.push({ id, fn });
  }
  for (const { id } of runs) assert.equal((await waitForFinalStatus(stack.baseUrl, id, () => stack.logs())).status, 'succeeded');
  // The worker's one line per finished job names the job; its prefix names the function that ran it.
  for (const { id, fn } of runs) {
    await eventually(`job ${id} finished by ${fn}`, async () => stack.logs().some((l) => new RegExp(`\\] ${fn} .*\\[job=${id}\\] succeeded`).test(l)));
  }
});
