/**
 * The exact cache on real Table Storage (Azurite): entries round-trip (large bodies split across properties, unknown
 * costs), the sweep removes only expired entries, an unreachable account is a miss, and the team setting round-trips
 * through the admin functions and the teams table.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { CacheTable } from '../../src/azure/cacheStore';
import { TeamStore } from '../../src/azure/teamTable';
import { ExactCache, MAX_CACHED_BODY_BYTES, type CachedAnswer } from '../../src/core/sync/cache';
import { createTeam, updateTeam } from '../../src/core/teams/admin';
import { toTeamView } from '../../src/core/teams/model';
import { ValidationError } from '../../src/core/errors';
import { tableClientFromConnectionString } from '../support/storage';

let azurite: RunningAzurite;
before(async () => {
  azurite = await startAzurite({ inMemory: true });
});
after(async () => {
  await azurite.stop();
});

const SETTINGS = { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000, timeoutMs: 5_000 };
const answer = (body: string, costUsd: number | null = 0.25): CachedAnswer => ({ body, promptTokens: 7, completionTokens: 0, costUsd, modelVersion: '1', storedAt: 1_700_000_000_123 });

test('entries round-trip, bodies up to the bound included', async () => {
  const store = new CacheTable(tableClientFromConnectionString(azurite.connectionString, 'cacheroundtrip'));
  // A body at the bound: each property must stay under 64 KiB, the entity under 1 MiB.
  const entry = { partition: 'alpha~ab', row: 'ab'.padEnd(64, '0'), team: 'alpha', expiresAt: 1_700_000_060_000, answer: answer('{"x":"'.padEnd(MAX_CACHED_BODY_BYTES - 2, 'y') + '"}') };
  await store.put(entry);
  assert.deepEqual(await store.get(entry.partition, entry.row), entry);
  // Split points never cut a surrogate pair. (Kept under 64 KiB per request: Azurite mangles multi-byte text in
  // larger request bodies, which Azure does not.)
  const emoji = { ...entry, row: 'ab'.padEnd(64, '3'), answer: answer('a' + '🚀'.repeat(15_000) + 'é') };
  await store.put(emoji);
  assert.deepEqual(await store.get(emoji.partition, emoji.row), emoji);
  const unpriced = { ...entry, row: 'ab'.padEnd(64, '1'), answer: answer('{}', null) };
  await store.put(unpriced);
  assert.deepEqual(await store.get(unpriced.partition, unpriced.row), unpriced);
  assert.equal(await store.get('alpha~ab', 'ab'.padEnd(64, '2')), undefined);
  await store.delete(unpriced.partition, unpriced.row);
  await store.delete(unpriced.partition, unpriced.row);
  assert.equal(await store.get(unpriced.partition, unpriced.row), undefined);
});

test('a sweep deletes expired entries of its partition only, at most `limit`', async () => {
  const store = new CacheTable(tableClientFromConnectionString(azurite.connectionString, 'cachesweep'));
  const put = (partition: string, n: number, expiresAt: number) => store.put({ partition, row: String(n).padStart(64, '0'), team: 'alpha', expiresAt, answer: answer('x') });
  for (let n = 0; n < 5; n += 1) await put('alpha~00', n, 1_000 + n);
  await put('alpha~00', 9, 10_000);
  await put('alpha~01', 0, 1_000);
  assert.equal(await store.sweep('alpha~00', 1_003, 100), 3);
  assert.equal(await store.sweep('alpha~00', 5_000, 1), 1);
  assert.equal(await store.sweep('alpha~00', 5_000, 100), 1);
  assert.ok(await store.get('alpha~00', '9'.padStart(64, '0')));
  assert.ok(await store.get('alpha~01', '0'.padStart(64, '0')));
});

test('the cache over the table: a hit for the same team and request, a miss for another team', async () => {
  const cache = new ExactCache({ store: new CacheTable(tableClientFromConnectionString(azurite.connectionString, 'cacheteams')), settingOf: async () => undefined, settings: SETTINGS, warn: () => {} });
  const body = { input: ['a', 'b'], dimensions: 256 };
  await cache.save('alpha', 'text-embedding-3-small', '1', 'embeddings', body, answer('{"object":"list"}'), 60_000, Date.now());
  assert.deepEqual(await cache.lookup('alpha', 'text-embedding-3-small', '1', 'embeddings', { dimensions: 256, input: ['a', 'b'] }, Date.now()), answer('{"object":"list"}'));
  assert.equal(await cache.lookup('beta', 'text-embedding-3-small', '1', 'embeddings', body, Date.now()), undefined);
});

test('an unreachable account is a miss and an unsaved answer, never an error', async () => {
  const dead = azurite.connectionString.replace(/TableEndpoint=http:\/\/127\.0\.0\.1:\d+/, 'TableEndpoint=http://127.0.0.1:1');
  const warnings: string[] = [];
  const cache = new ExactCache({ store: new CacheTable(tableClientFromConnectionString(dead, 'cachedead')), settingOf: async () => undefined, settings: { ...SETTINGS, timeoutMs: 300 }, warn: (m) => warnings.push(m) });
  assert.equal(await cache.lookup('alpha', 'm', 'v', 'chat', { messages: [] }, Date.now()), undefined);
  await cache.save('alpha', 'm', 'v', 'chat', { messages: [] }, answer('{}'), 60_000, Date.now());
  assert.equal(warnings.length, 1);
});

test('the team cache setting round-trips through the admin functions and the teams table', async () => {
  const teams = new TeamStore(tableClientFromConnectionString(azurite.connectionString, 'cacheteamsettings'));
  const created = await createTeam(teams, { id: 'alpha', cache: { mode: 'exact', ttl_seconds: 600 } }, 1, 1_000);
  assert.deepEqual(created.cache, { mode: 'exact', ttlSeconds: 600 });
  assert.deepEqual((await teams.getTeam('alpha'))!.cache, { mode: 'exact', ttlSeconds: 600 });
  assert.deepEqual(toTeamView((await teams.getTeam('alpha'))!).cache, { mode: 'exact', ttl_seconds: 600 });
  await updateTeam(teams, 'alpha', { cache: { mode: 'off' } }, 2_000);
  assert.deepEqual((await teams.getTeam('alpha'))!.cache, { mode: 'off' });
  // A team that never set it reads as off, and its view says so.
  await createTeam(teams, { id: 'beta' }, 1, 1_000);
  assert.equal((await teams.getTeam('beta'))!.cache, undefined);
  assert.deepEqual(toTeamView((await teams.getTeam('beta'))!).cache, { mode: 'off', ttl_seconds: null });
  for (const bad of [{ cache: { mode: 'fuzzy' } }, { cache: { mode: 'exact', ttl_seconds: 0 } }, { cache: { mode: 'exact', extra: 1 } }, { cache: 'exact' }]) {
    await assert.rejects(updateTeam(teams, 'alpha', bad, 3_000), (err: unknown) => err instanceof ValidationError && err.status === 400 && /team\.cache/.test(err.message));
  }
});
