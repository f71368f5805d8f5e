// The local host against a real Azurite: HTTP routing, queue delivery, retries → poison queue, timers.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { QueueServiceClient } from '@azure/storage-queue';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { startFunctionsHost, type RunningFunctionsHost } from '../../local/host';
import { seen } from './fixtures/functions';

const FIXTURES = join(__dirname, 'fixtures', 'functions.js');
const PROJECT_ROOT = join(__dirname, '..', '..', '..');
const DEADLINE_MS = 30_000;
const FUNCTIONS_KEY = 'test-functions-key';

let azurite: RunningAzurite;
let host: RunningFunctionsHost;
let queues: QueueServiceClient;
const logLines: string[] = [];

async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${logLines.slice(-30).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  azurite = await startAzurite({ rootDir: PROJECT_ROOT, inMemory: true });
  Object.assign(process.env, {
    FixtureStorage: azurite.connectionString,
    FIXTURE_QUEUE: 'fixture-items',
    FIXTURE_FAILING_QUEUE: 'fixture-failing',
    FIXTURE_SCHEDULE: '*/1 * * * * *',
    SLUICE_LOCAL_FUNCTIONS_KEY: FUNCTIONS_KEY,
  });
  queues = QueueServiceClient.fromConnectionString(azurite.connectionString);
  host = await startFunctionsHost({
    rootDir: mkdtempSync(join(tmpdir(), 'sluice-host-test-')), // no host.json / local.settings.json: defaults + override
    port: 0,
    functionFiles: [FIXTURES],
    log: (line) => logLines.push(line),
    hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.500', visibilityTimeout: '00:00:01', maxDequeueCount: 3 } } },
  });
});

after(async () => {
  await host?.close();
  await azurite?.stop();
});

test('registers the fixture functions', () => {
  assert.deepEqual([...host.functions].sort(), ['fixtureBoom', 'fixtureEcho', 'fixtureFailing', 'fixtureGetItem', 'fixtureQueue', 'fixtureSecret', 'fixtureTimer']);
  assert.match(host.url, /^http:\/\/127\.0\.0\.1:\d+$/);
});

test('HTTP: route params, query, JSON body, function logs', async () => {
  const res = await fetch(`${host.url}/api/items/42?q=hello`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.deepEqual(await res.json(), { id: '42', q: 'hello', functionName: 'fixtureGetItem' });
  assert.ok(logLines.some((l) => /^\[[^\]]+\] fixtureGetItem INFO: item 42$/.test(l)), 'context.log line carries the time and the function name');
});

test('HTTP: catch-all, request body, status, headers and cookies', async () => {
  const res = await fetch(`${host.url}/api/echo/a/b`, { method: 'PUT', body: 'payload' });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get('x-echo'), 'PUT');
  assert.match(res.headers.get('set-cookie') ?? '', /^session=abc; HttpOnly/);
  assert.equal(await res.text(), 'a/b|payload');
});

test('HTTP: 404 for unknown routes and constraint mismatches, 405 for the wrong method', async () => {
  const notFound = await fetch(`${host.url}/api/items/not-a-number`);
  assert.equal(notFound.status, 404);
  assert.equal(((await notFound.json()) as { error: { code: string } }).error.code, 'not_found');
  const wrongMethod = await fetch(`${host.url}/api/items/1`, { method: 'DELETE' });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get('allow'), 'GET');
  await wrongMethod.text();
});

test('HTTP: function-level auth needs the key when SLUICE_LOCAL_FUNCTIONS_KEY is set', async () => {
  assert.equal((await fetch(`${host.url}/api/secret`)).status, 401);
  const withHeader = await fetch(`${host.url}/api/secret`, { headers: { 'x-functions-key': FUNCTIONS_KEY } });
  assert.equal(await withHeader.text(), 'secret ok');
  assert.equal((await fetch(`${host.url}/api/secret?code=${FUNCTIONS_KEY}`)).status, 200);
});

test('HTTP: a throwing handler answers 500', async () => {
  const res = await fetch(`${host.url}/api/boom`);
  assert.equal(res.status, 500);
  await res.text();
});

test('queue: base64 message decoded and parsed, trigger metadata visible', async () => {
  const queue = queues.getQueueClient('fixture-items');
  await queue.createIfNotExists();
  const sent = await queue.sendMessage(Buffer.from(JSON.stringify({ id: 'job-1' })).toString('base64'));
  const delivery = await eventually('queue delivery', () => seen.queue.find((d) => d.id === sent.messageId));
  assert.deepEqual(delivery.message, { id: 'job-1' });
  assert.equal(delivery.dequeueCount, 1);
  await eventually('message deleted after success', async () => {
    const props = await queue.getProperties();
    return props.approximateMessagesCount === 0 ? true : undefined;
  });
});

test('queue: a failing message is retried, then moved to <queue>-poison after maxDequeueCount', async () => {
  const queue = queues.getQueueClient('fixture-failing');
  await queue.createIfNotExists();
  const text = Buffer.from('{"id":"poison-me"}').toString('base64');
  await queue.sendMessage(text);
  const poison = queues.getQueueClient('fixture-failing-poison');
  const poisoned = await eventually('poison message', async () => {
    if (!(await poison.exists())) return undefined;
    const peeked = await poison.peekMessages();
    return peeked.peekedMessageItems[0];
  });
  assert.equal(poisoned.messageText, text, 'the poison queue gets the original (encoded) text');
  assert.deepEqual(seen.failingDeliveries, [1, 2, 3]);
  assert.equal((await queue.getProperties()).approximateMessagesCount, 0);
  // At the default levels the failures and the poison move show; the host's per-message lines do not.
  // The poison move is logged once the original is deleted, a moment after the copy appears.
  await eventually('the poison move line', () => logLines.find((l) => /fixtureFailing WARN: message \S+ has reached MaxDequeueCount of 3; moved to 'fixture-failing-poison'/.test(l)));
  assert.equal(logLines.filter((l) => /Executed 'Functions\.fixtureFailing' \(Failed/.test(l)).length, 3);
  assert.ok(!logLines.some((l) => /Executing 'Functions\./.test(l)), 'no Executing lines');
});

test('timer: fires with the timer info', async () => {
  const timer = await eventually('timer run', () => seen.timers[0]);
  assert.equal(typeof timer.isPastDue, 'boolean');
  assert.equal(timer.schedule.adjustForDST, true);
  assert.ok(timer.scheduleStatus && !Number.isNaN(Date.parse(timer.scheduleStatus.next)));
});

test('queue: polling survives a storage outage (Azurite restarted on the same ports)', async () => {
  await azurite.stop();
  await new Promise((r) => setTimeout(r, 1000)); // let the listener meet the outage
  await azurite.start();
  const queue = queues.getQueueClient('fixture-items');
  await queue.createIfNotExists(); // in-memory Azurite lost the queue
  const sent = await queue.sendMessage(Buffer.from('"after-outage"').toString('base64'));
  const delivery = await eventually('delivery after the outage', () => seen.queue.find((d) => d.id === sent.messageId));
  assert.equal(delivery.message, 'after-outage');
});
