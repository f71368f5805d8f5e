// Batch validation errors, cancel, and a crash during fan-out followed by a resume — through the real functions,
// Azurite and the simulator.
import assert from 'node:assert/strict';
import { TableClient } from '@azure/data-tables';
import { after, before, test } from 'node:test';
import type { RunningStack } from '../../local/stack';
import { driveBatch } from '../../src/core/batch/driver';
import { prepareBatch } from '../../src/core/batch/api';
import { jobIdFor } from '../../src/core/submit';
import { lineKey } from '../../src/core/batch/validate';
import { getBatchServices } from '../../src/runtime/services';
import { getServices } from '../../src/runtime/services';
import { call, eventually } from '../support/api';
import { modelCallsSettled } from '../support/modelCalls';
import { queuesDrained } from '../support/queues';
import { batchLine, createBatch, fileText, jsonl, lineJobIdOf, parseJsonl, simCallsByJob, startBatchStack, uploadText, waitForBatch } from './support';

let stack: RunningStack;

before(async () => {
  stack = await startBatchStack({ env: { SLUICE_BATCH_FANOUT_CHUNK: '40' } });
});

after(async () => {
  await stack?.stop();
});

test('every kind of bad line fails the batch with errors.data {code, line, message, param} and enqueues nothing', async () => {
  const long = 'word '.repeat(140_000);
  const lines = [
    batchLine(1),
    '{"custom_id": "broken", ',
    batchLine(3, { custom_id: undefined }),
    batchLine(1), // duplicate custom_id req-1
    batchLine(5, { method: 'GET' }),
    batchLine(6, { url: '/v1/embeddings' }),
    batchLine(7, { body: { model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] } }),
    batchLine(8, { body: { model: 'gpt-4o-mini', messages: [] } }),
    batchLine(9, { body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 1_000_000 } }),
    batchLine(10, { body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: long }], max_tokens: 100 } }),
    '',
    batchLine(12, { body: { model: 'gpt-4o-mini', messages: [{ role: 'wizard', content: 'x' }] } }),
    batchLine(13, { body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true } }),
    batchLine(14),
  ];
  const file = await uploadText(stack.baseUrl, jsonl(lines));
  assert.equal(file.status, 200, JSON.stringify(file.body));
  const created = await createBatch(stack.baseUrl, file.body.id);
  assert.equal(created.status, 200);
  const failed = await waitForBatch(stack.baseUrl, created.body.id, ['failed', 'in_progress', 'completed']);
  assert.equal(failed.status, 'failed');
  assert.ok(failed.failed_at);
  const byLine = new Map<number, any>(failed.errors.data.map((e: any) => [e.line, e]));
  const expect: [number, string, string | null][] = [
    [2, 'invalid_json_line', null],
    [3, 'missing_required_parameter', 'custom_id'],
    [4, 'duplicate_custom_id', 'custom_id'],
    [5, 'invalid_method', 'method'],
    [6, 'mismatched_endpoint', 'url'],
    [7, 'model_not_found', 'body.model'],
    [8, 'invalid_request', 'body.messages'],
    [9, 'invalid_request', 'body.max_tokens'],
    [10, 'context_length_exceeded', 'body.messages'],
    [12, 'invalid_request', 'body.messages[0].role'],
    [13, 'invalid_request', 'body.stream'],
  ];
  for (const [line, code, param] of expect) {
    const e = byLine.get(line);
    assert.ok(e, `an error for line ${line}`);
    assert.equal(e.code, code, `line ${line}: ${e.message}`);
    assert.equal(e.param, param, `line ${line}`);
    assert.equal(typeof e.message, 'string');
  }
  assert.equal(failed.errors.data.length, expect.length, 'valid lines have no error');
  // Nothing ran and no job was created, not even for the valid lines.
  assert.equal(simCallsByJob(stack, null).size, 0);
  const validJob = lineJobIdOf(created.body.id, 'req-14');
  assert.equal((await call(stack.baseUrl, `/v1/jobs/${validJob}`)).status, 404);
});

test('batch create rejects a bad request, an unknown file and a bad upload', async () => {
  const missing = await call(stack.baseUrl, '/v1/batches', { json: { input_file_id: 'file-000000000000000000000000aaaa', endpoint: '/v1/chat/completions', completion_window: '24h' } });
  assert.equal(missing.status, 404);
  const badWindow = await call(stack.baseUrl, '/v1/batches', { json: { input_file_id: 'x', endpoint: '/v1/chat/completions', completion_window: '1h' } });
  assert.equal(badWindow.status, 400);
  assert.equal(badWindow.body.error.param, 'completion_window');
  const badPurpose = await uploadText(stack.baseUrl, jsonl([batchLine(1)]), 'x.jsonl', 'fine-tune');
  assert.equal(badPurpose.status, 400);
  assert.equal(badPurpose.body.error.param, 'purpose');
  const list = await call(stack.baseUrl, '/v1/files');
  assert.ok(list.body.data.every((f: any) => f.purpose !== 'fine-tune'), 'a refused upload leaves no file');
});

test('cancel: lines not started never run, the batch ends cancelled with finished lines in its output', async () => {
  // Slow the model so most lines are still queued when the cancel lands.
  stack.sim!.setLimits('sim-test', 'gpt-4o-mini', { tpm: 3_000, rpm: 30 });
  try {
    const lines = Array.from({ length: 60 }, (_, i) => batchLine(i));
    const file = await uploadText(stack.baseUrl, jsonl(lines));
    const created = await createBatch(stack.baseUrl, file.body.id);
    await eventually('some lines to finish before the cancel', async () => {
      const res = await call(stack.baseUrl, `/v1/batches/${created.body.id}`);
      return res.body?.request_counts?.completed > 0;
    }, 60_000);
    const cancel = await call(stack.baseUrl, `/v1/batches/${created.body.id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 200);
    assert.equal(cancel.body.status, 'cancelling');
    const done = await waitForBatch(stack.baseUrl, created.body.id, ['cancelled'], 90_000);
    const { completed, failed, total } = done.request_counts;
    assert.equal(total, 60);
    assert.equal(completed + failed, 60);
    assert.ok(completed > 0 && completed < 60, `some but not all lines ran (completed ${completed})`);
    const output = done.output_file_id ? parseJsonl(await fileText(stack.baseUrl, done.output_file_id)) : [];
    const errors = parseJsonl(await fileText(stack.baseUrl, done.error_file_id));
    assert.equal(output.length, completed);
    assert.ok(errors.every((e) => e.error.code === 'batch_cancelled'));
    assert.equal(output.length + errors.length, 60);
    // Cancelled lines never got an answer from the model (a 429 while waiting is no run), and no line ran twice: a
    // call in flight when the cancel landed has been answered by now. (A parked line's delayed retry finds its job
    // cancelled at the claim, as for any finished job.)
    await modelCallsSettled();
    const calls = simCallsByJob(stack);
    const team = 'default';
    for (const e of errors) assert.equal(calls.get(lineJobIdOf(done.id, e.custom_id, team)) ?? 0, 0, `${e.custom_id} was cancelled but ran`);
    for (const o of output) assert.equal(calls.get(o.response.request_id), 1, `${o.custom_id} ran once`);
    const twice = await call(stack.baseUrl, `/v1/batches/${done.id}/cancel`, { method: 'POST' });
    assert.equal(twice.body.status, 'cancelled');
  } finally {
    stack.sim!.setLimits('sim-test', 'gpt-4o-mini', { tpm: 5_000_000, rpm: 50_000 });
    // While the deployment answered with a 3,000 TPM quota, its x-ratelimit-remaining headers were (rightly) charged
    // to the shared budget as drift, which holds its minute window full for up to 60 s. The quota is back: start the
    // next test from a fresh budget row instead of waiting that minute out.
    await resetBudgetRows();
  }
});

async function resetBudgetRows(): Promise<void> {
  const table = TableClient.fromConnectionString(stack.connectionString, getServices().config.budget.table, { allowInsecureConnection: true });
  for await (const e of table.listEntities()) await table.deleteEntity(e.partitionKey!, e.rowKey!).catch(() => undefined);
}

test('a crash half-way through fan-out resumes from the checkpoint: no line lost, none run twice', async () => {
  const batch = getBatchServices();
  const lines = Array.from({ length: 150 }, (_, i) => batchLine(i, { custom_id: `crash-${i}` }));
  const up = await uploadText(stack.baseUrl, jsonl(lines));
  // Created directly (no driver message), so this test alone drives the fan-out until it is done.
  const record = await prepareBatch({ input_file_id: up.body.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { team: 'crashers' } }, {
    now: Date.now(),
    completionWindowS: 3600,
    getFile: (id) => batch.files.get(id),
    team: 'default', // the uploader's team (the stack's default key)
  });
  await batch.batches.create(record);
  const deps = batch.driverDeps();
  assert.equal(await driveBatch(deps, record.id), 'continue'); // validated
  assert.equal(await driveBatch(deps, record.id), 'continue'); // chunk 1: lines 1-40
  await assert.rejects(driveBatch({ ...deps, failAfterLines: 17 }, record.id), /injected fan-out failure/); // chunk 2 dies part-way
  const mid = (await batch.batches.get(record.id))!.batch;
  assert.equal(mid.cursorLines, 40, 'the checkpoint stays at the last whole chunk');
  assert.equal(mid.leaseId, undefined, 'a failed invocation gives its lease back');
  await assert.rejects(driveBatch({ ...deps, failAfterLines: 5 }, record.id), /injected/); // and again
  let steps = 0;
  while ((await driveBatch(deps, record.id)) === 'continue') steps += 1;
  assert.equal(steps, 3, 'chunks 2, 3 and 4');
  await batch.batches.setActive(record.id, true); // hand over to the sweep for completion
  const done = await waitForBatch(stack.baseUrl, record.id, ['completed'], 60_000);
  assert.deepEqual(done.request_counts, { total: 150, completed: 150, failed: 0 });
  const output = parseJsonl(await fileText(stack.baseUrl, done.output_file_id));
  assert.deepEqual(output.map((o) => o.custom_id), lines.map((_, i) => `crash-${i}`), 'every line once, in input order');
  await queuesDrained(stack.connectionString); // no message left that could run a line a second time
  const calls = simCallsByJob(stack);
  for (let i = 0; i < 150; i += 1) {
    const id = lineJobIdOf(record.id, `crash-${i}`);
    assert.equal(calls.get(id), 1, `crash-${i} ran ${calls.get(id) ?? 0} times`);
    if (i === 45) assert.equal((await getServices().jobs.get(id))?.job.team, 'default');
  }
});

test('a batch with per-line job ids (one partition and one message per line) still runs to completion', async () => {
  const batch = getBatchServices();
  const lines = Array.from({ length: 30 }, (_, i) => batchLine(i, { custom_id: `old-${i}` }));
  const up = await uploadText(stack.baseUrl, jsonl(lines));
  const prepared = await prepareBatch({ input_file_id: up.body.id, endpoint: '/v1/chat/completions', completion_window: '24h' }, {
    now: Date.now(),
    completionWindowS: 3600,
    getFile: (id) => batch.files.get(id),
    team: 'default',
  });
  const { jobIds, ...record } = prepared;
  assert.equal(jobIds, 2, 'new batches are grouped');
  await batch.batches.create(record);
  const deps = batch.driverDeps();
  while ((await driveBatch(deps, record.id)) === 'continue');
  await batch.batches.setActive(record.id, true);
  const done = await waitForBatch(stack.baseUrl, record.id, ['completed'], 60_000);
  assert.deepEqual(done.request_counts, { total: 30, completed: 30, failed: 0 });
  const output = parseJsonl(await fileText(stack.baseUrl, done.output_file_id));
  for (const [i, o] of output.entries()) {
    assert.equal(o.custom_id, `old-${i}`);
    assert.equal(o.response.request_id, jobIdFor('default', lineKey(record.id, `old-${i}`)), 'the per-line id scheme');
  }
});
