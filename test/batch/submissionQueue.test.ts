// The submission queue through Azurite and the real functions: base64 and plain JSON messages, client_id
// idempotency, reply_to completion messages, the producer's key deciding the team, and the dead-letter path.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import type { RunningStack } from '../../local/stack';
import { call, eventually } from '../support/api';
import { modelCallsSettled } from '../support/modelCalls';
import { queuesDrained } from '../support/queues';
import { startBatchStack } from './support';
import { getTelemetryServices } from '../../src/runtime/telemetry';
import { refreshTeamSpend } from '../../src/runtime/teamLimits';
import { ROLLUP_PARTITIONS, scopeKey } from '../../src/core/telemetry/rollup';
import { monthOf } from '../../src/core/telemetry/windows';

let stack: RunningStack;
let service: QueueServiceClient;

before(async () => {
  stack = await startBatchStack();
  service = QueueServiceClient.fromConnectionString(stack.connectionString);
  await service.getQueueClient('sluice-submit').createIfNotExists();
});

after(async () => {
  await stack?.stop();
});

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');
/** A submission signed with the default team's key unless `extra` names another `api_key`. */
const body = (content: string, extra: Record<string, unknown> = {}) => ({
  request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 10 },
  api_key: stack.apiKey!,
  ...extra,
});

const admin = () => ({ key: stack.adminKey! });

async function newTeamKey(id: string, settings: Record<string, unknown> = {}): Promise<string> {
  assert.equal((await call(stack.baseUrl, '/v1/admin/teams', { ...admin(), json: { id, ...settings } })).status, 201);
  const created = await call(stack.baseUrl, `/v1/admin/teams/${id}/keys`, { ...admin(), json: {} });
  assert.equal(created.status, 201);
  return created.body.key as string;
}

async function drain(queue: QueueClient, want: number): Promise<any[]> {
  const got: any[] = [];
  await eventually(`${want} message(s) on ${queue.name}`, async () => {
    await queue.createIfNotExists();
    const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 32 });
    for (const m of receivedMessageItems) {
      got.push(JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')));
      await queue.deleteMessage(m.messageId, m.popReceipt);
    }
    return got.length >= want;
  }, 30_000);
  return got;
}

test('a base64 message with client_id and reply_to becomes one job, and its completion is posted', async () => {
  const submit = service.getQueueClient('sluice-submit');
  const ingestKey = await newTeamKey('ingest');
  const msg = body('hello from a producer', { client_id: 'order-1', reply_to: 'producer-replies', api_key: ingestKey });
  await submit.sendMessage(b64(msg));
  await submit.sendMessage(b64(msg)); // same client_id: no second job
  const [reply, ...more] = await drain(service.getQueueClient('producer-replies'), 1);
  assert.equal(reply.status, 'succeeded');
  assert.equal(reply.client_id, 'order-1');
  assert.match(reply.id, /^job_/);
  // The producer's key decides the team: the job is team ingest's, so only ingest's key (or an admin's) reads it.
  assert.equal((await call(stack.baseUrl, `/v1/jobs/${reply.id}`, { key: ingestKey })).status, 200);
  assert.equal((await call(stack.baseUrl, `/v1/jobs/${reply.id}`)).status, 404, "not the default team's job");
  // Both submissions handled and no model call in flight: a second run or reply would have happened by now.
  await queuesDrained(stack.connectionString, (q) => q === 'sluice-submit');
  await modelCallsSettled();
  const late = more.length + (await service.getQueueClient('producer-replies').receiveMessages({ numberOfMessages: 32 })).receivedMessageItems.length;
  assert.equal(late, 0, 'one job, one reply');
  const calls = stack.sim!.requests().filter((r) => r.jobId === reply.id).length;
  assert.equal(calls, 1);
});

test('a plain-JSON message (not base64) is still accepted via the poison drain', async () => {
  const submit = service.getQueueClient('sluice-submit');
  await submit.sendMessage(JSON.stringify(body('plain json', { client_id: 'plain-1', reply_to: 'plain-replies' })));
  const [reply] = await drain(service.getQueueClient('plain-replies'), 1);
  assert.equal(reply.client_id, 'plain-1');
  assert.equal(reply.status, 'succeeded');
});

test('invalid messages go to the dead-letter queue with the reason', async () => {
  const submit = service.getQueueClient('sluice-submit');
  await submit.sendMessage(b64({ request: { model: 'gpt-4o-mini', messages: [] }, api_key: stack.apiKey! }));
  await submit.sendMessage(b64(body('x', { client_id: 'order-2' })));
  await submit.sendMessage(b64(body('a different body', { client_id: 'order-2' })));
  await submit.sendMessage(b64(body('y', { reply_to: 'Not A Queue' })));
  await submit.sendMessage(b64({ request: { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }, api_key: stack.apiKey! }));
  await submit.sendMessage('this is neither json nor base64 {');
  const dead = await drain(service.getQueueClient('sluice-submit-deadletter'), 5);
  const codes = dead.map((d) => d.reason.code).sort();
  assert.deepEqual(codes, ['idempotency_key_reused', 'invalid_json', 'invalid_request', 'invalid_request', 'model_not_found']);
  const empty = dead.find((d) => d.reason.param === 'request.messages');
  assert.match(empty.reason.message, /at least one message/);
  assert.deepEqual(empty.message.request.messages, []);
  assert.ok(dead.every((d) => d.source_queue === 'sluice-submit' && d.dead_lettered_at));
  assert.ok(dead.every((d) => !JSON.stringify(d).includes(stack.apiKey!)), 'dead-letter copies never carry the key');
  // Nothing left behind anywhere.
  const health = await call(stack.baseUrl, '/v1/health');
  assert.equal(health.status, 200);
  const poison = await service.getQueueClient('sluice-submit-poison').getProperties();
  assert.equal(poison.approximateMessagesCount, 0);
});

test('a producer bills only the team its key belongs to, whatever metadata.team says', async () => {
  const submit = service.getQueueClient('sluice-submit');
  const ownKey = await newTeamKey('producer-a');
  const victimKey = await newTeamKey('victim');
  await submit.sendMessage(b64(body('bill someone else', { api_key: ownKey, metadata: { team: 'victim' }, reply_to: 'billing-replies' })));
  const [reply] = await drain(service.getQueueClient('billing-replies'), 1);
  assert.equal(reply.status, 'succeeded');
  assert.equal((await call(stack.baseUrl, `/v1/jobs/${reply.id}`, { key: ownKey })).status, 200, "the producer's own team owns the job");
  assert.equal((await call(stack.baseUrl, `/v1/jobs/${reply.id}`, { key: victimKey })).status, 404, 'the named team does not');
});

test('no key, an unknown key, a disabled or stopped team and a reply_to naming a Sluice queue are dead-lettered with the reason', async () => {
  const submit = service.getQueueClient('sluice-submit');
  const disabledKey = await newTeamKey('retired');
  assert.equal((await call(stack.baseUrl, '/v1/admin/teams/retired', { ...admin(), method: 'PATCH', json: { disabled: true } })).status, 200);
  const stoppedKey = await newTeamKey('broke', { monthly_budget_usd: 1, budget_action: 'stop' });
  const now = Date.now();
  await getTelemetryServices().rollup.upsert(ROLLUP_PARTITIONS.monthToDate(monthOf(now)), scopeKey({ kind: 'team', team: 'broke' }), {
    scope: 'team', name: 'broke', costUsd: 3, unpricedJobs: 0, hourly: '{}', firstAt: now,
  });
  await refreshTeamSpend('broke');
  const unknownKey = `slk_${'0'.repeat(16)}_${'A'.repeat(43)}`;
  const { api_key: _none, ...unsigned } = body('no key at all');
  await submit.sendMessage(b64(unsigned));
  await submit.sendMessage(b64(body('made-up key', { api_key: unknownKey })));
  await submit.sendMessage(b64(body('disabled team', { api_key: disabledKey })));
  await submit.sendMessage(b64(body('stopped team', { api_key: stoppedKey })));
  const own = ['sluice-jobs', 'sluice-jobs-l1-batch', 'sluice-jobs-poison', 'sluice-batches', 'sluice-submit', 'sluice-submit-poison', 'sluice-submit-deadletter'];
  for (const q of own) await submit.sendMessage(b64(body(`reply to ${q}`, { reply_to: q })));
  await submit.sendMessage(`not json, with a key inside: ${stoppedKey}`);
  const dead = await drain(service.getQueueClient('sluice-submit-deadletter'), 5 + own.length);
  const codes = dead.map((d) => d.reason.code);
  const count = (code: string) => codes.filter((c) => c === code).length;
  assert.deepEqual(
    [count('missing_credentials'), count('invalid_api_key'), count('team_disabled'), count('team_budget_exceeded'), count('reply_to_reserved'), count('invalid_json')],
    [1, 1, 1, 1, own.length, 1],
    JSON.stringify(codes),
  );
  assert.ok(dead.filter((d) => d.reason.code === 'reply_to_reserved').every((d) => d.reason.param === 'reply_to'));
  for (const secret of [disabledKey, stoppedKey, unknownKey, stack.apiKey!]) {
    assert.ok(!JSON.stringify(dead).includes(secret), 'no dead-letter copy carries a key');
  }
});
