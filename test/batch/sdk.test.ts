// The official openai package, unchanged, against Sluice: files.create → batches.create → retrieve/list → content.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import type { RunningStack } from '../../local/stack';
import { call, eventually } from '../support/api';
import { batchLine, jsonl, parseJsonl, simCallsByJob, startBatchStack } from './support';

let stack: RunningStack;
let client: OpenAI;

before(async () => {
  stack = await startBatchStack();
  client = new OpenAI({ baseURL: `${stack.baseUrl}/v1`, apiKey: stack.apiKey!, maxRetries: 0 });
});

after(async () => {
  await stack?.stop();
});

test('openai SDK round trip: upload, create, poll, list, download results in the OpenAI format', async () => {
  const lines = Array.from({ length: 25 }, (_, i) => batchLine(i));
  lines.push(batchLine(99, { content: 'please SLUICE_TRIGGER_CONTENT_FILTER now' }));
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), 'prompts.jsonl'), purpose: 'batch' });
  assert.match(file.id, /^file-/);
  assert.equal(file.object, 'file');
  assert.equal(file.purpose, 'batch');
  assert.equal(file.filename, 'prompts.jsonl');
  assert.equal(file.bytes, Buffer.byteLength(jsonl(lines)));
  assert.equal(typeof file.created_at, 'number');

  const retrievedFile = await client.files.retrieve(file.id);
  assert.equal(retrievedFile.id, file.id);
  const fileList = await client.files.list();
  assert.ok(fileList.data.some((f) => f.id === file.id));

  const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { team: 'search' } });
  assert.match(created.id, /^batch_/);
  assert.equal(created.object, 'batch');
  assert.equal(created.status, 'validating');
  assert.equal(created.metadata?.team, 'search');
  assert.ok(created.expires_at! > created.created_at);

  const done = await eventually('batch to complete', async () => {
    const b = await client.batches.retrieve(created.id);
    return b.status === 'completed' ? b : undefined;
  });
  assert.deepEqual(done.request_counts, { total: 26, completed: 25, failed: 1 });
  assert.ok(done.in_progress_at && done.finalizing_at && done.completed_at);
  assert.ok(done.output_file_id && done.error_file_id);

  const page = await client.batches.list({ limit: 10 });
  assert.equal(page.data[0]?.id, created.id, 'newest first');

  const output = parseJsonl(await (await client.files.content(done.output_file_id!)).text());
  assert.equal(output.length, 25);
  const first = output.find((o) => o.custom_id === 'req-0');
  assert.match(first.id, /^batch_req_/);
  assert.equal(first.response.status_code, 200);
  assert.equal(first.response.body.object, 'chat.completion');
  assert.equal(first.error, null);
  const errors = parseJsonl(await (await client.files.content(done.error_file_id!)).text());
  assert.equal(errors.length, 1);
  assert.equal(errors[0].custom_id, 'req-99');
  assert.equal(errors[0].error.code, 'content_filter');

  // Each line ran exactly once (the content-filtered one answered 400), as a batch-priority job of the batch's team.
  const calls = simCallsByJob(stack, null);
  assert.equal(calls.size, 26);
  assert.ok([...calls.values()].every((n) => n === 1));
  const job = await call(stack.baseUrl, `/v1/jobs/${first.response.request_id}`);
  assert.equal(job.body.priority, 'batch');
  assert.equal(job.body.batch_id, created.id);
  assert.equal(job.body.custom_id, 'req-0');

  const outFile = await client.files.retrieve(done.output_file_id!);
  assert.equal(outFile.purpose, 'batch_output');

  const deleted = await client.files.delete(file.id);
  assert.equal(deleted.deleted, true);
  await assert.rejects(client.files.retrieve(file.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
});

test('openai SDK cancel: batches.cancel answers cancelling, then cancelled', async () => {
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl([batchLine(1), batchLine(2)])), 'c.jsonl'), purpose: 'batch' });
  const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  const cancelled = await client.batches.cancel(created.id);
  assert.ok(['cancelling', 'cancelled'].includes(cancelled.status));
  const end = await eventually('batch to be cancelled', async () => {
    const b = await client.batches.retrieve(created.id);
    return b.status === 'cancelled' ? b : undefined;
  });
  assert.equal(end.request_counts?.total, 2);
  assert.ok(end.cancelled_at);
});
