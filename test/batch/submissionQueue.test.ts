// The submission queue through Azurite and the real functions: base64 and plain JSON messages, client_id
// idempotency, reply_to completion messages and the dead-letter path.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import type { RunningStack } from '../../local/stack';
import { call, eventually } from '../support/api';
import { modelCallsSettled } from '../support/modelCalls';
import { queuesDrained } from '../support/queues';
import { startBatchStack } from './support';

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
const body = (content: string, extra: Record<string, unknown> = {}) => ({
  request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 10 },
  ...extra,
});

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
  const msg = body('hello from a producer', { client_id: 'order-1', reply_to: 'producer-replies', metadata: { team: 'ingest' } });
  await submit.sendMessage(b64(msg));
  await submit.sendMessage(b64(msg)); // same client_id: no second job
  const [reply, ...more] = await drain(service.getQueueClient('producer-replies'), 1);
  assert.equal(reply.status, 'succeeded');
  assert.equal(reply.client_id, 'order-1');
  assert.match(reply.id, /^job_/);
  // Queue producers name their team (RBAC on the queue authorises them): the job is team ingest's, so only an
  // admin key (or ingest's) can read it.
  const job = (await call(stack.baseUrl, `/v1/jobs/${reply.id}`, { key: stack.adminKey! })).body;
  assert.equal(job.metadata.team, 'ingest');
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
  await submit.sendMessage(b64({ request: { model: 'gpt-4o-mini', messages: [] } }));
  await submit.sendMessage(b64(body('x', { client_id: 'order-2' })));
  await submit.sendMessage(b64(body('a different body', { client_id: 'order-2' })));
  await submit.sendMessage(b64(body('y', { reply_to: 'Not A Queue' })));
  await submit.sendMessage(b64({ request: { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] } }));
  await submit.sendMessage('this is neither json nor base64 {');
  const dead = await drain(service.getQueueClient('sluice-submit-deadletter'), 5);
  const codes = dead.map((d) => d.reason.code).sort();
  assert.deepEqual(codes, ['idempotency_key_reused', 'invalid_json', 'invalid_request', 'invalid_request', 'model_not_found']);
  const empty = dead.find((d) => d.reason.param === 'request.messages');
  assert.match(empty.reason.message, /at least one message/);
  assert.deepEqual(empty.message.request.messages, []);
  assert.ok(dead.every((d) => d.source_queue === 'sluice-submit' && d.dead_lettered_at));
  // Nothing left behind anywhere.
  const health = await call(stack.baseUrl, '/v1/health');
  assert.equal(health.status, 200);
  const poison = await service.getQueueClient('sluice-submit-poison').getProperties();
  assert.equal(poison.approximateMessagesCount, 0);
});
