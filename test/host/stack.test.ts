// The whole app through local/stack.ts: Azurite + simulator + the real functions in the in-process host.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStack, type RunningStack } from '../../local/stack';
import { submit, waitForFinalStatus } from './stackSupport';

let stack: RunningStack;

before(async () => {
  stack = await startStack({ hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.500' } } } });
});

after(async () => {
  await stack?.stop();
});

test('the stack sets the app settings', () => {
  const endpoints = JSON.parse(stack.env.SLUICE_ENDPOINTS!) as { region: string; model: string; priority: number; auth: string }[];
  assert.deepEqual(
    endpoints.map((e) => [e.region, e.model, e.priority, e.auth]),
    [
      ['sim-eastus', 'gpt-4o-mini', 1, 'key'],
      ['sim-eastus', 'text-embedding-3-small', 1, 'key'],
      ['sim-westus', 'gpt-4o-mini', 2, 'key'],
      ['sim-westus', 'text-embedding-3-small', 2, 'key'],
    ],
  );
  assert.equal(process.env.AzureWebJobsStorage, stack.connectionString);
  assert.match(stack.baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/api$/);
});

test('a submitted job runs through the real functions and the simulator', async () => {
  const { status, id } = await submit(stack.baseUrl);
  assert.equal(status, 202);
  const job = await waitForFinalStatus(stack.baseUrl, id, () => stack.logs());
  assert.equal(job.status, 'succeeded');
  assert.equal(job.region, 'sim-eastus');
});
