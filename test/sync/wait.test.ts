/**
 * Waiting for quota instead of answering 429: a sync request the shared budget cannot admit waits in the fair-share
 * line up to its deadline and then runs; past its deadline it gets 429 with Retry-After and nothing is charged.
 * Small deployments (60,000 TPM) and large max_tokens make a burst of requests outrun the budget's pace.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, waitForJob } from '../support/api';
import { startSyncStack, usageRowOf, type SyncStack } from './support';

let s: SyncStack;

before(async () => {
  s = await startSyncStack({ chatTpm: 60_000 });
});

after(async () => {
  await s?.stop();
});

const big = (content: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 3_000 });

test('past its deadline a request gets 429 with Retry-After from the budget, and nothing is charged or sent', async () => {
  const since = Date.now();
  const answers = await Promise.all(
    Array.from({ length: 12 }, (_, i) => call(s.baseUrl, '/v1/chat/completions', { json: big(`burst ${i}`), headers: { 'x-sluice-max-wait-ms': '0' } })),
  );
  const ok = answers.filter((a) => a.status === 200);
  const refused = answers.filter((a) => a.status === 429);
  assert.equal(ok.length + refused.length, answers.length, JSON.stringify(answers.map((a) => [a.status, a.body?.error?.code])));
  assert.ok(refused.length > 0, 'the budget admitted the whole burst at once');
  for (const r of refused) {
    assert.equal(r.body.error.code, 'quota_wait_exceeded');
    assert.equal(r.body.error.type, 'rate_limit_error');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
  }
  const row = await usageRowOf(s.stack, refused[0]!.headers.get('x-sluice-request-id')!);
  assert.equal(row.status, 'failed');
  assert.equal(row.errorCode, 'quota_wait_exceeded');
  assert.equal(row.costUsd ?? 0, 0);
  assert.equal(row.promptTokens + row.completionTokens, 0);
  // Only the admitted requests reached a deployment, and none of them was throttled there.
  const upstream = s.sim.requests().filter((r) => r.at >= since);
  assert.equal(upstream.length, ok.length);
  assert.ok(upstream.every((r) => r.status === 200), JSON.stringify(upstream.map((r) => r.status)));
});

test('within its deadline a request the budget cannot admit now waits, then runs', async () => {
  const since = Date.now();
  const answers = await Promise.all(
    Array.from({ length: 8 }, (_, i) => call(s.baseUrl, '/v1/chat/completions', { json: big(`patient ${i}`), headers: { 'x-sluice-max-wait-ms': '120000' } })),
  );
  assert.deepEqual(
    answers.map((a) => a.status),
    answers.map(() => 200),
    JSON.stringify(answers.map((a) => a.body?.error)),
  );
  const waits = answers.map((a) => Number(a.headers.get('x-sluice-quota-wait-ms')));
  assert.ok(waits.some((w) => w > 0), `no request waited for quota: ${waits.join(', ')}`);
  const waited = answers[waits.indexOf(Math.max(...waits))]!;
  const row = await usageRowOf(s.stack, waited.headers.get('x-sluice-request-id')!);
  assert.equal(row.status, 'succeeded');
  assert.ok(row.queueWaitMs > 0);
  const upstream = s.sim.requests().filter((r) => r.at >= since);
  assert.ok(upstream.every((r) => r.status === 200), 'a deployment answered 429: the request was sent instead of waiting');
});

test('sync requests and queued jobs share one budget: together they never push a deployment past its quota', async () => {
  const since = Date.now();
  const jobs = await Promise.all(Array.from({ length: 6 }, (_, i) => call(s.baseUrl, '/v1/jobs', { json: { request: big(`queued ${i}`), priority: 'batch' } })));
  assert.ok(jobs.every((j) => j.status === 202));
  const sync = await Promise.all(
    Array.from({ length: 4 }, (_, i) => call(s.baseUrl, '/v1/chat/completions', { json: big(`live ${i}`), headers: { 'x-sluice-max-wait-ms': '120000' } })),
  );
  assert.deepEqual(sync.map((a) => a.status), sync.map(() => 200), JSON.stringify(sync.map((a) => a.body?.error)));
  for (const j of jobs) assert.equal((await waitForJob(s.baseUrl, j.body.id, ['succeeded', 'failed'], 180_000)).status, 'succeeded');
  const upstream = s.sim.requests().filter((r) => r.at >= since);
  assert.equal(upstream.length, jobs.length + sync.length);
  assert.ok(upstream.every((r) => r.status === 200), 'a deployment answered 429');
});
