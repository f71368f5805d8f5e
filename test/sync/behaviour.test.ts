/**
 * The sync API's behaviour through real HTTP, Azurite and the simulator: failover before the first byte, a stream
 * that breaks after it, a client that leaves mid-stream, teams and keys, and bad input answered 4xx in OpenAI's shape.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { call } from '../support/api';
import { startSyncStack, usageRowOf, type SyncStack } from './support';

let s: SyncStack;

before(async () => {
  // Slow enough tokens that a stream is still running when the client leaves.
  s = await startSyncStack({ latency: { firstTokenMs: 0, perTokenMs: 20 } });
});

after(async () => {
  await s?.stop();
});

beforeEach(() => {
  for (const region of ['sim-eastus', 'sim-westus']) s.sim.setFault(region, {});
});

const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 30, ...extra });

/** Upstream calls the simulator saw since `since` (epoch ms). */
const upstreamCallsSince = (since: number) => s.sim.requests().filter((r) => r.at >= since);

test('a deployment answering 503 is failed over before the first byte: the stream comes from the next region', async () => {
  s.sim.setFault('sim-eastus', { down: '503' });
  const res = await fetch(`${s.baseUrl}/v1/chat/completions`, { method: 'POST', headers: { 'api-key': s.apiKey, 'content-type': 'application/json' }, body: JSON.stringify(chat('fail over', { stream: true })) });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-sluice-region'), 'sim-westus');
  const text = await res.text();
  assert.match(text, /data: \[DONE\]/);
  const row = await usageRowOf(s.stack, res.headers.get('x-sluice-request-id')!);
  assert.equal(row.status, 'succeeded');
  assert.equal(row.region, 'sim-westus');
});

test('a stream that breaks after the first byte ends with an OpenAI error event, is not retried, and is billed for what came', async () => {
  s.sim.setFault('sim-eastus', { cutStreamAfterChunks: 3 });
  const since = Date.now();
  const res = await fetch(`${s.baseUrl}/v1/chat/completions`, { method: 'POST', headers: { 'api-key': s.apiKey, 'content-type': 'application/json' }, body: JSON.stringify(chat('break mid-stream', { stream: true, max_tokens: 60 })) });
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.match(text, /"content":/, 'the first chunks reached the client');
  assert.match(text, /data: \{"error":\{"message":"[^"]+","type":"server_error"/);
  assert.doesNotMatch(text, /\[DONE\]/);
  assert.equal(upstreamCallsSince(since).length, 1, 'the stream was retried');
  const row = await usageRowOf(s.stack, res.headers.get('x-sluice-request-id')!);
  assert.equal(row.status, 'failed');
  assert.equal(row.errorCode, 'upstream_stream_error');
  assert.ok(row.completionTokens > 0, 'the chunks received were not counted');
  assert.ok((row.costUsd ?? 0) > 0);

  // The official client raises it (wherever the request lands).
  s.sim.setFault('sim-westus', { cutStreamAfterChunks: 3 });
  const openai = new OpenAI({ baseURL: `${s.baseUrl}/v1`, apiKey: s.apiKey, maxRetries: 0 });
  await assert.rejects(async () => {
    for await (const _chunk of await openai.chat.completions.create({ ...chat('break again'), stream: true, max_tokens: 60 } as OpenAI.ChatCompletionCreateParamsStreaming)) {
      // read on until the error event
    }
  });
});

test('a client that leaves mid-stream: the upstream call is aborted, the row is abandoned and billed for what was generated', async () => {
  // The simulator's answer depends only on the prompt: the whole answer's length, for comparison.
  const whole = await call(s.baseUrl, '/v1/chat/completions', { json: chat('a long story please', { max_tokens: 2000 }) });
  assert.equal(whole.status, 200);
  const full = whole.body.usage.completion_tokens as number;
  assert.ok(full > 20, `the simulator's answer is too short (${full} tokens) to leave in the middle`);
  const stop = new AbortController();
  const res = await fetch(`${s.baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'api-key': s.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify(chat('a long story please', { stream: true, max_tokens: 2000 })),
    signal: stop.signal,
  });
  assert.equal(res.status, 200);
  const id = res.headers.get('x-sluice-request-id')!;
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let seen = '';
  while (!/"content":"[^"]+"/.test(seen)) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'the stream ended before any content');
    seen += decoder.decode(value, { stream: true });
  }
  stop.abort();
  const row = await usageRowOf(s.stack, id);
  assert.equal(row.abandoned, true);
  assert.equal(row.status, 'failed');
  assert.equal(row.errorCode, 'client_closed');
  assert.ok(row.completionTokens > 0, 'nothing counted for an abandoned stream');
  assert.ok(row.completionTokens < full, `the whole answer (${full} tokens) was read although the client left`);
  assert.ok((row.costUsd ?? 0) > 0, 'an abandoned stream recorded no cost');
});

test("keys and teams: no key is a 401 in OpenAI's shape; another team's key is served and billed to that team", async () => {
  const none = await call(s.baseUrl, '/v1/chat/completions', { key: null, json: chat('who am I') });
  assert.equal(none.status, 401);
  assert.equal(typeof none.body.error.message, 'string');
  assert.equal(none.body.error.code, 'missing_credentials');
  const wrong = await call(s.baseUrl, '/v1/embeddings', { key: 'slk_not_a_key', json: { model: 'text-embedding-3-small', input: 'x' } });
  assert.equal(wrong.status, 401);

  const admin = { key: s.stack.adminKey! };
  assert.equal((await call(s.baseUrl, '/v1/admin/teams', { ...admin, json: { id: 'other' } })).status, 201);
  const otherKey = (await call(s.baseUrl, '/v1/admin/teams/other/keys', { ...admin, json: {} })).body.key as string;
  const res = await call(s.baseUrl, '/v1/chat/completions', { key: otherKey, json: chat('who am I') });
  assert.equal(res.status, 200);
  const row = await usageRowOf(s.stack, res.headers.get('x-sluice-request-id')!);
  assert.equal(row.team, 'other');
  // Team "default" does not see it in its usage.
  const usage = await call(s.baseUrl, '/v1/usage');
  assert.ok(!JSON.stringify(usage.body).includes('"other"'), 'team default sees team other in its usage');
});

test("bad input is a 4xx in OpenAI's error shape naming the field, and nothing is sent upstream", async () => {
  const since = Date.now();
  const cases: Array<{ path: string; body: unknown; status: number; param?: string; headers?: Record<string, string> }> = [
    { path: '/v1/chat/completions', body: { model: 'gpt-4o-mini' }, status: 400, param: 'messages' },
    { path: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'wizard', content: 'x' }] }, status: 400, param: 'messages[0].role' },
    { path: '/v1/chat/completions', body: { ...chat('x'), data_sources: [] }, status: 400, param: 'data_sources' },
    { path: '/v1/chat/completions', body: { ...chat('x'), max_tokens: 1_000_000 }, status: 400, param: 'max_tokens' },
    { path: '/v1/chat/completions', body: { ...chat('x'), model: 'no-such-model' }, status: 404, param: 'model' },
    { path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: 'x' }] }, status: 400, param: 'model' },
    { path: '/v1/chat/completions', body: chat('x'), status: 400, param: 'x-sluice-max-wait-ms', headers: { 'x-sluice-max-wait-ms': 'soon' } },
    { path: '/v1/chat/completions', body: chat('x'), status: 400, param: 'x-sluice-cache', headers: { 'x-sluice-cache': 'sometimes' } },
    { path: '/v1/embeddings', body: { model: 'text-embedding-3-small' }, status: 400, param: 'input' },
    { path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: [] }, status: 400, param: 'input' },
    { path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: [['a']] }, status: 400, param: 'input' },
    { path: '/openai/deployments/no-such-model/embeddings?api-version=2024-10-21', body: { input: 'x' }, status: 404, param: 'model' },
  ];
  for (const c of cases) {
    const res = await call(s.baseUrl, c.path, { json: c.body, ...(c.headers ? { headers: c.headers } : {}) });
    assert.equal(res.status, c.status, `${c.path} ${JSON.stringify(c.body)}: ${JSON.stringify(res.body)}`);
    assert.deepEqual(Object.keys(res.body), ['error']);
    assert.equal(typeof res.body.error.message, 'string');
    if (c.param) assert.equal(res.body.error.param, c.param, JSON.stringify(res.body));
  }
  const notJson = await call(s.baseUrl, '/v1/chat/completions', { method: 'POST', body: '{not json', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.status, 400);
  assert.equal(upstreamCallsSince(since).length, 0);
});
