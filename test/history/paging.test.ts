/**
 * Listing files and batches through real HTTP (the app, Azurite, the simulator): pages by key with the OpenAI
 * `after` / `limit` / `has_more` / `first_id` / `last_id`, the openai package's auto-paging walks every page, and
 * another team's objects never appear (an admin sees every team's).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import type { RunningStack } from '../../local/stack';
import { call, eventually } from '../support/api';
import { batchLine, createBatch, jsonl, uploadText, waitForBatch, startBatchStack } from '../batch/support';

let stack: RunningStack;
let otherKey: string;
/** Ids newest first, as the API lists them. */
const mine = { files: [] as string[], batches: [] as string[] };
const theirs = { files: [] as string[], batches: [] as string[] };

async function teamWithKey(id: string): Promise<string> {
  const admin = { key: stack.adminKey! };
  const created = await call(stack.baseUrl, '/v1/admin/teams', { ...admin, json: { id } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const key = await call(stack.baseUrl, `/v1/admin/teams/${id}/keys`, { ...admin, json: {} });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  return key.body.key as string;
}

before(async () => {
  stack = await startBatchStack();
  otherKey = await teamWithKey('other-team');
  const client = (apiKey: string) => new OpenAI({ baseURL: `${stack.baseUrl}/v1`, apiKey, maxRetries: 0 });
  const upload = async (apiKey: string, i: number) =>
    (await client(apiKey).files.create({ file: await toFile(Buffer.from(jsonl([batchLine(i)])), `in-${i}.jsonl`), purpose: 'batch' })).id;
  // Interleaved, so that each team's pages have the other's objects between theirs in key order.
  for (let i = 0; i < 5; i += 1) {
    mine.files.unshift(await upload(stack.apiKey!, i));
    if (i < 2) theirs.files.unshift(await upload(otherKey, i));
  }
  for (let i = 0; i < 5; i += 1) {
    const res = await createBatch(stack.baseUrl, mine.files[i]!);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    mine.batches.unshift(res.body.id);
    if (i < 2) {
      const other = await call(stack.baseUrl, '/v1/batches', { key: otherKey, json: { input_file_id: theirs.files[i], endpoint: '/v1/chat/completions', completion_window: '24h' } });
      assert.equal(other.status, 200, JSON.stringify(other.body));
      theirs.batches.unshift(other.body.id);
    }
  }
  // Done batches add their output files to their team's listing; wait so that the listings stand still.
  for (const id of mine.batches) mine.files.unshift((await waitForBatch(stack.baseUrl, id, ['completed'])).output_file_id);
  for (const id of theirs.batches) {
    const done = await eventually(`batch ${id} to complete`, async () => {
      const res = await call(stack.baseUrl, `/v1/batches/${id}`, { key: otherKey });
      return res.body.status === 'completed' ? res.body : undefined;
    });
    theirs.files.unshift(done.output_file_id);
  }
  mine.files.sort();
  theirs.files.sort();
});

after(async () => {
  await stack?.stop();
});

/** Walks a listing page by page with `after`, checking each page's fields; returns the ids in order. */
async function walk(path: string, limit: number, key?: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 50; pages += 1) {
    const res = await call(stack.baseUrl, `${path}?limit=${limit}${cursor ? `&after=${cursor}` : ''}`, key ? { key } : {});
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const page = res.body as { object: string; data: Array<{ id: string }>; first_id: string | null; last_id: string | null; has_more: boolean };
    assert.equal(page.object, 'list');
    assert.ok(page.data.length <= limit);
    assert.equal(page.first_id, page.data[0]?.id ?? null);
    assert.equal(page.last_id, page.data.at(-1)?.id ?? null);
    ids.push(...page.data.map((o) => o.id));
    if (!page.has_more) return ids;
    assert.equal(page.data.length, limit, 'a page with more after it is full');
    cursor = page.last_id!;
  }
  assert.fail('more than 50 pages');
}

test('files page by key: after, limit, has_more; only the caller team\'s', async () => {
  assert.deepEqual(await walk('/v1/files', 3), mine.files);
  assert.deepEqual(await walk('/v1/files', 2, otherKey), theirs.files);
  assert.deepEqual(await walk('/v1/files', 100), mine.files, 'one page when the limit is above the count');
  const purpose = await call(stack.baseUrl, '/v1/files?purpose=batch_output&limit=2');
  assert.equal(purpose.body.data.length, 2);
  assert.ok(purpose.body.data.every((f: { purpose: string }) => f.purpose === 'batch_output'));
  assert.equal(purpose.body.has_more, true);
  const admin = await walk('/v1/files', 4, stack.adminKey!);
  for (const id of [...mine.files, ...theirs.files]) assert.ok(admin.includes(id), `admin sees ${id}`);
});

test('batches page by key: after, limit, has_more; only the caller team\'s', async () => {
  assert.deepEqual(await walk('/v1/batches', 2), mine.batches);
  assert.deepEqual(await walk('/v1/batches', 1, otherKey), theirs.batches);
  const admin = await walk('/v1/batches', 3, stack.adminKey!);
  for (const id of [...mine.batches, ...theirs.batches]) assert.ok(admin.includes(id), `admin sees ${id}`);
  const beyond = await call(stack.baseUrl, `/v1/batches?after=${mine.batches.at(-1)}`);
  assert.deepEqual([beyond.body.data, beyond.body.has_more, beyond.body.first_id], [[], false, null]);
});

test('the openai package auto-pages files and batches', async () => {
  const client = new OpenAI({ baseURL: `${stack.baseUrl}/v1`, apiKey: stack.apiKey!, maxRetries: 0 });
  const files: string[] = [];
  for await (const f of client.files.list({ limit: 2 })) files.push(f.id);
  assert.deepEqual(files, mine.files);
  const batches: string[] = [];
  for await (const b of client.batches.list({ limit: 2 })) batches.push(b.id);
  assert.deepEqual(batches, mine.batches);
  const other = new OpenAI({ baseURL: `${stack.baseUrl}/v1`, apiKey: otherKey, maxRetries: 0 });
  const theirBatches: string[] = [];
  for await (const b of other.batches.list({ limit: 1 })) theirBatches.push(b.id);
  assert.deepEqual(theirBatches, theirs.batches);
});

test('a file deleted leaves the listing at once', async () => {
  const res = await uploadText(stack.baseUrl, jsonl([batchLine(0)]), 'gone.jsonl');
  assert.equal(res.status, 200);
  assert.ok((await walk('/v1/files', 100)).includes(res.body.id));
  assert.equal((await call(stack.baseUrl, `/v1/files/${res.body.id}`, { method: 'DELETE' })).status, 200);
  assert.deepEqual(await walk('/v1/files', 100), mine.files);
});
