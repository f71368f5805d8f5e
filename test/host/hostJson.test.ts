import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { mergeJson, parseDuration, parseHostJson, readHostJson } from '../../local/host/hostJson';
import { loadLocalSettings, resolveAppSettings, storageConnectionString } from '../../local/host/settings';
import { parseSchedule } from '../../local/host/timerListener';
import { decodeMessageText } from '../../local/host/queueListener';

test('durations', () => {
  assert.equal(parseDuration('00:00:02', 'x'), 2000);
  assert.equal(parseDuration('01:02:03', 'x'), 3_723_000);
  assert.equal(parseDuration('1.00:00:00', 'x'), 86_400_000);
  assert.equal(parseDuration('00:00:00.250', 'x'), 250);
  assert.equal(parseDuration(1500, 'x'), 1500);
  assert.throws(() => parseDuration('2s', 'extensions.queues.visibilityTimeout'), /visibilityTimeout/);
});

test('defaults match the Functions host', () => {
  const settings = parseHostJson({});
  assert.equal(settings.routePrefix, 'api');
  assert.deepEqual(settings.queues, {
    batchSize: 16,
    newBatchThreshold: 8,
    maxPollingIntervalMs: 60_000,
    visibilityTimeoutMs: 0,
    maxDequeueCount: 5,
    messageEncoding: 'base64',
  });
  assert.equal(settings.functionTimeoutMs, undefined);
});

test('values are read and validated', () => {
  const settings = parseHostJson({
    extensions: { http: { routePrefix: '/v2/' }, queues: { batchSize: 4, maxPollingInterval: '00:00:05', visibilityTimeout: '00:00:30', maxDequeueCount: 2, messageEncoding: 'none' } },
    functionTimeout: '00:10:00',
  });
  assert.equal(settings.routePrefix, 'v2');
  assert.deepEqual(settings.queues, { batchSize: 4, newBatchThreshold: 2, maxPollingIntervalMs: 5000, visibilityTimeoutMs: 30_000, maxDequeueCount: 2, messageEncoding: 'none' });
  assert.equal(settings.functionTimeoutMs, 600_000);
  assert.equal(parseHostJson({ extensions: { http: { routePrefix: '' } } }).routePrefix, '');
  assert.throws(() => parseHostJson({ extensions: { queues: { batchSize: 64 } } }), /batchSize/);
  assert.throws(() => parseHostJson({ extensions: { queues: { messageEncoding: 'utf8' } } }), /messageEncoding/);
});

test('override merges over the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hostjson-'));
  writeFileSync(join(dir, 'host.json'), JSON.stringify({ extensions: { queues: { batchSize: 8, maxDequeueCount: 3 } } }));
  const settings = readHostJson(dir, { extensions: { queues: { maxDequeueCount: 1 } } });
  assert.equal(settings.queues.batchSize, 8);
  assert.equal(settings.queues.maxDequeueCount, 1);
  assert.deepEqual(mergeJson({ a: { b: 1, c: [1] } }, { a: { c: [2] } }), { a: { b: 1, c: [2] } });
  assert.equal(readHostJson(join(dir, 'missing')).routePrefix, 'api');
});

test('local.settings.json never overrides the environment', () => {
  const dir = mkdtempSync(join(tmpdir(), 'localsettings-'));
  writeFileSync(join(dir, 'local.settings.json'), JSON.stringify({ IsEncrypted: false, Values: { A: 'file', B: 'file', N: 3 }, Host: { LocalHttpPort: 7072 } }));
  const env: Record<string, string | undefined> = { A: 'env' };
  const result = loadLocalSettings(dir, env);
  assert.deepEqual(env, { A: 'env', B: 'file', N: '3' });
  assert.deepEqual(result, { applied: ['B', 'N'], localHttpPort: 7072 });
  assert.deepEqual(loadLocalSettings(join(dir, 'none'), env), { applied: [], localHttpPort: undefined });
});

test('app setting expressions and connections', () => {
  const env = { Q: 'jobs', AzureWebJobsStorage: 'UseDevelopmentStorage=true', AzureWebJobsOther: 'AccountName=x' };
  assert.equal(resolveAppSettings('%Q%-poison', env), 'jobs-poison');
  assert.throws(() => resolveAppSettings('%MISSING%', env), /MISSING/);
  assert.match(storageConnectionString(undefined, env), /QueueEndpoint=http:\/\/127\.0\.0\.1:10001\/devstoreaccount1/);
  assert.equal(storageConnectionString('Other', env), 'AccountName=x');
  assert.throws(() => storageConnectionString('Nope', env), /Nope/);
});

test('timer schedules: NCRONTAB with seconds and TimeSpan intervals', () => {
  const everyFiveSeconds = parseSchedule('*/5 * * * * *', 'UTC');
  assert.equal(everyFiveSeconds(new Date('2024-01-01T00:00:01Z')).toISOString(), '2024-01-01T00:00:05.000Z');
  const daily = parseSchedule('0 30 9 * * *', 'UTC');
  assert.equal(daily(new Date('2024-01-01T10:00:00Z')).toISOString(), '2024-01-02T09:30:00.000Z');
  const interval = parseSchedule('00:01:00');
  assert.equal(interval(new Date('2024-01-01T00:00:00Z')).toISOString(), '2024-01-01T00:01:00.000Z');
  assert.throws(() => parseSchedule('* *'), /NCRONTAB/);
});

test('queue message decoding', () => {
  assert.equal(decodeMessageText(Buffer.from('{"id":"x"}').toString('base64'), 'base64'), '{"id":"x"}');
  assert.equal(decodeMessageText('plain text', 'none'), 'plain text');
  assert.throws(() => decodeMessageText('not base64!', 'base64'), /base64/);
});
