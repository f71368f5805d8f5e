// Expiry: with a 4-second completion window (SLUICE_BATCH_COMPLETION_WINDOW_S) and a slow deployment, lines not
// done in time end `batch_expired` in the error file, finished lines are in the output, the batch ends `expired`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunningStack } from '../../local/stack';
import { modelCallsSettled } from '../support/modelCalls';
import { batchLine, createBatch, fastSimulator, fileText, jsonl, lineJobIdOf, parseJsonl, simCallsByJob, startBatchStack, uploadText, waitForBatch } from './support';

let stack: RunningStack;

before(async () => {
  stack = await startBatchStack({ simulator: fastSimulator(3_000), env: { SLUICE_BATCH_COMPLETION_WINDOW_S: '4' } });
});

after(async () => {
  await stack?.stop();
});

test('lines not done by expires_at end expired and are reported in the error file', async () => {
  const lines = Array.from({ length: 40 }, (_, i) => batchLine(i, { body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hello ${i}` }], max_tokens: 400 } }));
  const file = await uploadText(stack.baseUrl, jsonl(lines));
  const created = await createBatch(stack.baseUrl, file.body.id);
  assert.equal(created.body.expires_at - created.body.created_at, 4);
  const done = await waitForBatch(stack.baseUrl, created.body.id, ['expired', 'completed'], 90_000);
  assert.equal(done.status, 'expired');
  assert.ok(done.expired_at >= done.expires_at);
  const { total, completed, failed } = done.request_counts;
  assert.equal(total, 40);
  assert.equal(completed + failed, 40);
  assert.ok(completed < 40, 'the slow deployment could not finish everything');
  const output = completed ? parseJsonl(await fileText(stack.baseUrl, done.output_file_id)) : [];
  const errors = parseJsonl(await fileText(stack.baseUrl, done.error_file_id));
  assert.equal(output.length, completed);
  assert.equal(errors.length, failed);
  assert.ok(errors.every((e) => e.error.code === 'batch_expired' && e.response === null));
  // A call in flight when the batch expired would be answered after it: wait until none is.
  await modelCallsSettled();
  const answered = simCallsByJob(stack);
  for (const e of errors) assert.equal(answered.get(lineJobIdOf(done.id, e.custom_id)) ?? 0, 0, `${e.custom_id} expired but ran`);
});
