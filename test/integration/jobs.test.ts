/**
 * The vertical slice through real things: HTTP → Table Storage + Storage Queue (Azurite) → worker → the Azure
 * OpenAI simulator → storage → HTTP.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { TableClient } from '@azure/data-tables';
import { startStack, type RunningStack } from '../../local/stack';
import { DEFAULT_SIMULATOR_CONFIG, type SimulatorConfig } from '../../local/simulator';
import { encodeJobMessage } from '../../src/azure/jobQueue';
import { call, chatJob, eventually, waitForJob } from '../support/api';
import { getServices } from '../../src/runtime/services';
import { getConfig } from '../../src/config';
import { parseSubmitBody, prepareJob } from '../../src/core/submit';
import { lineJobId } from '../../src/core/batch/validate';

const simConfig: SimulatorConfig = {
  ...DEFAULT_SIMULATOR_CONFIG,
  latency: { firstTokenMs: 0, perTokenMs: 0 },
  regions: DEFAULT_SIMULATOR_CONFIG.regions.map((r) => ({ ...r, port: 0, deployments: r.deployments.map((d) => ({ ...d, tpm: 1_000_000 })) })),
  adminPort: 0,
};

let stack: RunningStack;
let baseUrl: string;

before(async () => {
  stack = await startStack({
    simulator: simConfig,
    // Short host timings so the crash-loop test reaches the poison queue quickly.
    hostJson: { extensions: { queues: { visibilityTimeout: '00:00:01', maxPollingInterval: '00:00:00.500', maxDequeueCount: 3 } } },
  });
  baseUrl = stack.baseUrl;
});

after(async () => {
  await stack?.stop();
});

/** Model calls the simulator saw for one job (the worker tags each call with x-sluice-job-id). */
function modelCalls(jobId: string) {
  return stack.sim!.requests().filter((r) => r.jobId === jobId);
}

function queue(name: string) {
  return new QueueClient(stack.connectionString, name);
}

/** Messages (visible or not) in every jobs-queue lane, poison queues excluded. */
async function jobQueueDepth(): Promise<number> {
  const service = QueueServiceClient.fromConnectionString(stack.connectionString);
  let n = 0;
  for await (const q of service.listQueues({ prefix: 'sluice-jobs' })) {
    if (q.name.endsWith('-poison')) continue;
    n += (await service.getQueueClient(q.name).getProperties()).approximateMessagesCount ?? 0;
  }
  return n;
}

test('submit → queued → succeeded with the chat.completion, usage, region and latency', async () => {
  const res = await call(baseUrl, '/v1/jobs', { json: chatJob('Say hello') });
  assert.equal(res.status, 202);
  assert.match(res.body.id, /^job_[0-9a-f]{32}$/);
  assert.equal(res.body.status, 'queued');
  assert.equal(res.headers.get('location'), `/api/v1/jobs/${res.body.id}`);

  const job = await waitForJob(baseUrl, res.body.id);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.equal(job.response.object, 'chat.completion');
  assert.ok(job.response.choices[0].message.content.length > 0);
  assert.equal(job.usage.total_tokens, job.usage.prompt_tokens + job.usage.completion_tokens);
  assert.equal(job.region, 'sim-eastus');
  assert.equal(job.attempts, 1);
  assert.ok(job.latency_ms >= 0);
  assert.ok(job.started_at && job.completed_at);
  assert.equal(modelCalls(job.id).length, 1);

  // The finished job left one usage row (tokens and cost) for the rollup.
  const usage = TableClient.fromConnectionString(stack.connectionString, 'sluiceusage', { allowInsecureConnection: true });
  const rows = await eventually('the usage row', async () => {
    const found = [];
    for await (const e of usage.listEntities({ queryOptions: { filter: `RowKey eq '${job.id}'` } })) found.push(e);
    return found.length ? found : undefined;
  });
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.completionTokens ?? rows[0]!.completion_tokens, job.usage.completion_tokens);
});

test('the same Idempotency-Key returns the same job, which runs once; a different body is 422', async () => {
  const headers = { 'idempotency-key': `idem-${Date.now()}` };
  const first = await call(baseUrl, '/v1/jobs', { json: chatJob('Once only'), headers });
  const second = await call(baseUrl, '/v1/jobs', { json: chatJob('Once only'), headers });
  assert.equal(first.status, 202);
  assert.equal(second.status, 202);
  assert.equal(second.body.id, first.body.id);
  assert.equal(second.headers.get('idempotent-replayed'), 'true');
  await waitForJob(baseUrl, first.body.id);
  const third = await call(baseUrl, '/v1/jobs', { json: chatJob('Once only'), headers });
  assert.equal(third.body.id, first.body.id);
  assert.equal(modelCalls(first.body.id).length, 1, 'one job, one model call');
  // The replay of the still-queued job sent a replay message; once the job is past queued it is dropped, not deferred
  // for the claim's length, so the job queues empty again.
  await eventually('the job queues to be empty', async () => ((await jobQueueDepth()) === 0 ? true : undefined));

  const reused = await call(baseUrl, '/v1/jobs', { json: chatJob('Something else'), headers });
  assert.equal(reused.status, 422);
  assert.equal(reused.body.error.code, 'idempotency_key_reused');
});

test('a job row left queued with no message (send and cleanup both failed) runs when the client retries with its Idempotency-Key', async () => {
  const key = `stranded-${Date.now()}`;
  const body = chatJob('Stranded');
  // What a submit leaves behind when storage fails between the row and the message: the row only.
  // The client retries after the 503's Retry-After (a second or so): however soon, the replay must send its message.
  const stranded = prepareJob(parseSubmitBody(body), { models: getConfig().models, now: Date.now(), idempotencyKey: key, team: 'default' });
  assert.equal(await getServices().jobs.create(stranded), true);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await call(baseUrl, `/v1/jobs/${stranded.id}`)).body.status, 'queued', 'nothing runs it on its own');

  const replay = await call(baseUrl, '/v1/jobs', { json: body, headers: { 'idempotency-key': key } });
  assert.equal(replay.status, 202);
  assert.equal(replay.body.id, stranded.id);
  const job = await waitForJob(baseUrl, stranded.id);
  assert.equal(job.status, 'succeeded');
  assert.equal(modelCalls(stranded.id).length, 1);
});

test('transient 429 and 503 are retried until success without spending dequeue attempts', async () => {
  stack.sim!.setFault('sim-eastus', { errorRate: { '429': 1 }, retryAfterSeconds: 2 });
  stack.sim!.setFault('sim-westus', { down: '503' });
  try {
    const res = await call(baseUrl, '/v1/jobs', { json: chatJob('Retry me') });
    await eventually('both regions to refuse the job', async () => modelCalls(res.body.id).length >= 2);
    const waiting = await call(baseUrl, `/v1/jobs/${res.body.id}`);
    assert.ok(['waiting', 'running', 'queued'].includes(waiting.body.status), waiting.body.status);
  } finally {
    stack.sim!.setFault('sim-eastus', {});
    stack.sim!.setFault('sim-westus', {});
  }
  const jobs = stack.sim!.requests().map((r) => r.jobId).filter(Boolean);
  const id = jobs[jobs.length - 1]!;
  const job = await waitForJob(baseUrl, id);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.ok(job.attempts >= 3, `attempts ${job.attempts}`);
  const outcomes = job.regions_tried.map((r: { outcome: string }) => r.outcome);
  assert.ok(outcomes.includes('rate_limited') && outcomes.includes('upstream_503') && outcomes.at(-1) === 'ok', outcomes.join(','));
  assert.equal(job.dequeue_count, 1, 'the message that finished the job was a fresh one, not a redelivery');
});

test('a final 400 (content filter) fails the job with the code at once, without retries', async () => {
  const res = await call(baseUrl, '/v1/jobs', { json: chatJob('Please SLUICE_TRIGGER_CONTENT_FILTER now') });
  const job = await waitForJob(baseUrl, res.body.id);
  assert.equal(job.status, 'failed');
  assert.equal(job.error.code, 'content_filter');
  assert.equal(job.attempts, 1);
  assert.equal(modelCalls(job.id).length, 1);
});

test('a redelivered message for a finished job makes no second model call', async () => {
  const res = await call(baseUrl, '/v1/jobs', { json: chatJob('Only once please') });
  const job = await waitForJob(baseUrl, res.body.id);
  assert.equal(modelCalls(job.id).length, 1);
  const jobsQueue = queue(stack.env.SLUICE_JOBS_QUEUE ?? 'sluice-jobs');
  await jobsQueue.sendMessage(encodeJobMessage({ id: job.id }));
  await jobsQueue.sendMessage(encodeJobMessage({ id: job.id }));
  await eventually('the redelivered messages to be consumed', async () => {
    const props = await jobsQueue.getProperties();
    return props.approximateMessagesCount === 0;
  });
  // A second job submitted after the duplicates is finished only once they have been dequeued too.
  const marker = await call(baseUrl, '/v1/jobs', { json: chatJob('marker') });
  await waitForJob(baseUrl, marker.body.id);
  assert.equal(modelCalls(job.id).length, 1, 'redelivery must not call the model again');
});

test('a message the worker crashes on ends in the poison queue and its job is failed', async () => {
  // A job whose request payload is missing from Blob Storage: every delivery throws while loading it.
  const id = `job_${'d'.repeat(32)}`;
  const table = TableClient.fromConnectionString(stack.connectionString, stack.env.SLUICE_JOBS_TABLE ?? 'sluicejobs', { allowInsecureConnection: true });
  await table.createTable();
  await table.createEntity({
    partitionKey: id, rowKey: '', status: 'queued', priority: 'interactive', model: 'gpt-4o-mini', team: 'default', createdAt: Date.now(),
    attempts: 0, promptTokens: 5, maxOutputTokens: 5, throttles: 0, metadataJson: '{}', regionsTriedJson: '[]', requestBlob: 'requests/missing.json',
  });
  const jobsQueue = stack.env.SLUICE_JOBS_QUEUE ?? 'sluice-jobs';
  await queue(jobsQueue).sendMessage(encodeJobMessage({ id }));
  const job = await waitForJob(baseUrl, id, ['failed'], 90_000);
  assert.equal(job.error.code, 'worker_crashed');
  assert.match(job.error.message, /poison queue/);
  assert.equal(modelCalls(id).length, 0);
  const poison = await queue(`${jobsQueue}-poison`).peekMessages({ numberOfMessages: 32 });
  assert.equal(poison.peekedMessageItems.length, 0, 'the poison handler consumed the message');
});

test('a group message (batch fan-out) runs each of its jobs once; a poisoned group is sent again, not failed', async () => {
  const config = getConfig();
  const made = (i: number) => {
    const job = prepareJob(parseSubmitBody(chatJob(`grouped ${i}`)), { models: config.models, now: Date.now(), team: 'default' });
    return { ...job, id: lineJobId({ id: `batch_grouptest${Date.now()}`, team: 'default', jobIds: 2 }, `req-${i}`, i + 1) };
  };
  const jobs = [0, 1, 2, 3, 4].map(made);
  assert.deepEqual(await getServices().jobs.createMany(jobs), [true, true, true, true, true]);
  const jobsQueue = stack.env.SLUICE_JOBS_QUEUE ?? 'sluice-jobs';
  await queue(jobsQueue).sendMessage(encodeJobMessage({ ids: jobs.slice(0, 3).map((j) => j.id) }));
  // As if sending the group's ids had failed on every delivery: the poison handler sends them again.
  await queue(`${jobsQueue}-poison`).createIfNotExists();
  await queue(`${jobsQueue}-poison`).sendMessage(encodeJobMessage({ ids: jobs.slice(3).map((j) => j.id) }));
  for (const job of jobs) {
    const done = await waitForJob(baseUrl, job.id); // through the API: grouped ids are job ids
    assert.equal(done.status, 'succeeded', `${job.id}: ${JSON.stringify(done.error)}`);
    assert.equal(modelCalls(job.id).length, 1);
  }
});

test('malformed bodies are refused with 400 naming the field, and nothing is enqueued', async () => {
  const jobsQueue = queue(stack.env.SLUICE_JOBS_QUEUE ?? 'sluice-jobs');
  await eventually('the jobs queue to drain', async () => (await jobsQueue.getProperties()).approximateMessagesCount === 0);
  const before = stack.sim!.requests().length;
  const cases: Array<[unknown, string]> = [
    [{ request: { model: 'gpt-4o-mini', messages: [] } }, 'request.messages'],
    [{ request: { model: 'gpt-4o-mini', messages: [{ role: 'robot', content: 'x' }] } }, 'request.messages[0].role'],
    [{ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: -1 } }, 'request.max_tokens'],
    [{ request: { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] } }, 'request.model'],
    [{ request: { messages: [{ role: 'user', content: 'x' }] } }, 'request.model'],
    [{ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, priority: 'now' }, 'priority'],
  ];
  for (const [body, param] of cases) {
    const res = await call(baseUrl, '/v1/jobs', { json: body });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.param, param);
    assert.ok(res.body.error.message.includes(param), res.body.error.message);
  }
  const notJson = await call(baseUrl, '/v1/jobs', { method: 'POST', body: '{"request":', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.status, 400);
  assert.equal(notJson.body.error.code, 'invalid_json');
  const tooBig = await call(baseUrl, '/v1/jobs', { json: chatJob('x'.repeat(2 * 1024 * 1024)) });
  assert.equal(tooBig.status, 413);
  const overContext = await call(baseUrl, '/v1/jobs', { json: { request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello '.repeat(130_000) }], max_tokens: 100 } } });
  assert.ok([400, 413].includes(overContext.status));

  const depth = (await jobsQueue.getProperties()).approximateMessagesCount;
  assert.equal(depth, 0, 'nothing enqueued');
  assert.equal(stack.sim!.requests().length, before, 'no model call');
});

test('unknown job ids are 404; health reports storage, queues and endpoints without keys', async () => {
  const missing = await call(baseUrl, `/v1/jobs/job_${'0'.repeat(32)}`);
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'job_not_found');
  const garbage = await call(baseUrl, '/v1/jobs/not-a-job');
  assert.equal(garbage.status, 404);

  const health = await call(baseUrl, '/v1/health', { key: stack.adminKey! });
  assert.equal(health.status, 200);
  assert.equal(health.body.storage.ok, true);
  // A chat and an embeddings deployment in each of the two regions.
  assert.equal(health.body.endpoints.length, 4);
  assert.ok(!JSON.stringify(health.body).includes('local-simulator-key'), 'no key material in health');
});

test('health shows anonymous callers and members liveness only; a wrong key is 401', async () => {
  const hosts = stack.sim!.regions.map((r) => new URL(r.baseUrl).host);
  for (const key of [null, undefined]) {
    const res = await call(baseUrl, '/v1/health', { key });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'ok' }, `key ${key === null ? 'none' : 'member'}`);
    assert.ok(!hosts.some((h) => JSON.stringify(res.body).includes(h)));
  }
  const wrong = await call(baseUrl, '/v1/health', { key: 'slk_not_a_real_key' });
  assert.equal(wrong.status, 401);
  assert.ok(!JSON.stringify(wrong.body).includes('endpoints'));
});

test('with a broken SLUICE_ENDPOINTS, every route answers a generic 503 that quotes no setting value', async () => {
  const { resetServices } = await import('../../src/runtime/services.js');
  const { resetConfig } = await import('../../src/config.js');
  const secret = 'sk-7f3a9c'; // short enough that the JSON parser quotes all of it in the logged detail
  const saved = process.env.SLUICE_ENDPOINTS;
  process.env.SLUICE_ENDPOINTS = secret;
  resetConfig();
  resetServices();
  try {
    const routes: Array<[string, RequestInit & { json?: unknown; key?: string | null }]> = [
      ['/v1/jobs', { json: chatJob('x') }],
      [`/v1/jobs/job_${'0'.repeat(32)}`, {}],
      ['/v1/health', { key: null }],
      ['/v1/health', { key: stack.adminKey! }],
      ['/v1/files', {}],
      ['/v1/batches', {}],
      ['/v1/usage', {}],
      ['/v1/me', { key: null }],
      ['/v1/admin/teams', { key: stack.adminKey! }],
    ];
    for (const [path, init] of routes) {
      const res = await call(baseUrl, path, init);
      const text = JSON.stringify(res.body);
      assert.equal(res.status, 503, `${path}: ${text}`);
      assert.equal(res.body.error.code, 'service_misconfigured', path);
      assert.ok(!text.includes(secret) && !text.includes('SLUICE_ENDPOINTS'), `${path}: ${text}`);
    }
    assert.ok(stack.logs().some((l) => l.includes('SLUICE_ENDPOINTS')), 'the detail is logged');
  } finally {
    process.env.SLUICE_ENDPOINTS = saved;
    resetConfig();
    resetServices();
  }
});

test('past the backlog bound, submit answers 429 with Retry-After and writes nothing', async () => {
  // Three of a team's jobs counted as waiting (as a stalled fleet would leave them), past a bound of 3.
  const admin = { key: stack.adminKey! };
  assert.equal((await call(baseUrl, '/v1/admin/teams', { ...admin, json: { id: 'stalled' } })).status, 201);
  const key = (await call(baseUrl, '/v1/admin/teams/stalled/keys', { ...admin, json: {} })).body.key as string;
  const { resetServices } = await import('../../src/runtime/services.js');
  const { resetConfig } = await import('../../src/config.js');
  process.env.SLUICE_MAX_BACKLOG = '3';
  resetConfig();
  resetServices();
  const backlog = getServices().submit.backlog;
  backlog.add('stalled', Date.now(), 3);
  try {
    const table = TableClient.fromConnectionString(stack.connectionString, stack.env.SLUICE_JOBS_TABLE ?? 'sluicejobs', { allowInsecureConnection: true });
    const countRows = async () => {
      let n = 0;
      for await (const _ of table.listEntities({ queryOptions: { select: ['PartitionKey'] } })) n += 1;
      return n;
    };
    const rowsBefore = await countRows();
    const res = await call(baseUrl, '/v1/jobs', { key, json: chatJob('one too many') });
    assert.equal(res.status, 429);
    assert.equal(await countRows(), rowsBefore, 'no job row written');
    assert.equal(res.body.error.code, 'backlog_full');
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
  } finally {
    backlog.add('stalled', Date.now(), -3);
    await backlog.counts(0);
    delete process.env.SLUICE_MAX_BACKLOG;
    resetConfig();
    resetServices();
  }
});
