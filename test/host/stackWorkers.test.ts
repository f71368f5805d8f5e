// local/stack.ts with worker processes: the in-process host serves HTTP, a child process drains the jobs queue.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStack, type RunningStack } from '../../local/stack';
import { submit, waitForFinalStatus } from './stackSupport';
import { eventually } from '../support/api';

let stack: RunningStack;

before(async () => {
  stack = await startStack({ workers: 1, hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.500' } } } });
});

after(async () => {
  await stack?.stop();
});

test('a worker process runs the job; a replacement worker takes over after a kill', async () => {
  const first = await submit(stack.baseUrl);
  assert.equal((await waitForFinalStatus(stack.baseUrl, first.id, () => stack.logs())).status, 'succeeded');
  // The job's status is stored before the invocation returns; its "Executed" line follows a moment later.
  await eventually('the first worker to log the invocation', async () =>
    stack.logs().some((l) => l.startsWith('[worker 0]') && l.includes("Executed 'Functions.worker' (Succeeded")),
  );

  const exited = new Promise((resolve) => stack.workerProcesses[0]!.once('exit', resolve));
  stack.killWorker(0, 'SIGKILL');
  await exited;
  stack.startWorker();
  const second = await submit(stack.baseUrl);
  assert.equal((await waitForFinalStatus(stack.baseUrl, second.id, () => stack.logs())).status, 'succeeded');
  // The job's status is stored before the invocation returns; its "Executed" line follows a moment later.
  await eventually('the replacement worker to log the invocation', async () =>
    stack.logs().some((l) => l.startsWith('[worker 1]') && l.includes("Executed 'Functions.worker' (Succeeded")),
  );
});
