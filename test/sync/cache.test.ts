/**
 * The exact cache's rules over an in-memory store and a fake clock: canonical keys, team isolation, expiry, outage →
 * miss with one warning a minute, the size bound, and the policy from header and team setting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValidationError } from '../../src/core/errors';
import {
  cacheKey,
  cachePolicy,
  canonicalJson,
  ExactCache,
  MAX_CACHED_BODY_BYTES,
  parseCacheHeader,
  type CachedAnswer,
  type CacheEntry,
  type CacheStore,
} from '../../src/core/sync/cache';
import type { TeamCacheSetting } from '../../src/core/teams/model';

class MemoryCacheStore implements CacheStore {
  readonly entries = new Map<string, CacheEntry>();
  failing: Error | undefined;
  /** A call that never settles (a hung connection). */
  hanging = false;
  sweeps: Array<{ partition: string; now: number }> = [];

  private async gate(): Promise<void> {
    if (this.hanging) await new Promise(() => {});
    if (this.failing) throw this.failing;
  }
  async get(partition: string, row: string) {
    await this.gate();
    return this.entries.get(`${partition}/${row}`);
  }
  async put(entry: CacheEntry) {
    await this.gate();
    this.entries.set(`${entry.partition}/${entry.row}`, structuredClone(entry));
  }
  async delete(partition: string, row: string) {
    await this.gate();
    this.entries.delete(`${partition}/${row}`);
  }
  async sweep(partition: string, now: number) {
    this.sweeps.push({ partition, now });
    return 0;
  }
}

const SETTINGS = { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000, timeoutMs: 50 };
const answer = (body = '{"id":"chatcmpl-1"}'): CachedAnswer => ({ body, promptTokens: 12, completionTokens: 3, costUsd: 0.0001, modelVersion: 'gpt-4o-mini-2024-07-18', storedAt: 1_000 });
const chat = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, temperature: 0 };

function harness(settings: Record<string, TeamCacheSetting> = {}) {
  const store = new MemoryCacheStore();
  const warnings: string[] = [];
  const timers: Array<() => void> = [];
  const cache = new ExactCache({
    store,
    settingOf: async (team) => settings[team],
    settings: SETTINGS,
    warn: (m) => warnings.push(m),
    // Timeouts fire only when the test says so: no waiting on the wall clock.
    schedule: (fn) => (timers.push(fn), () => {}),
  });
  return { store, cache, warnings, fireTimeouts: () => timers.splice(0).forEach((fn) => fn()) };
}

const headers = (value?: string) => ({ get: (name: string) => (name === 'x-sluice-cache' && value !== undefined ? value : null) });

test('field order and whitespace do not change the key; content, model, version, kind and team do', () => {
  const a = JSON.parse('{"messages":[{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0}');
  const b = JSON.parse('{ "temperature" : 0,\n "max_tokens": 5, "messages": [ { "content": "hi", "role": "user" } ] }');
  assert.equal(canonicalJson(a), canonicalJson(b));
  assert.equal(canonicalJson(a), '{"max_tokens":5,"messages":[{"content":"hi","role":"user"}],"temperature":0}');
  const key = cacheKey('alpha', 'gpt-4o-mini', 'v1', 'chat', a);
  assert.deepEqual(cacheKey('alpha', 'gpt-4o-mini', 'v1', 'chat', b), key);
  assert.match(key.row, /^[0-9a-f]{64}$/);
  assert.equal(key.partition, `alpha~${key.row.slice(0, 2)}`);
  // The body's model and stream flags are left out; everything else counts.
  assert.deepEqual(cacheKey('alpha', 'gpt-4o-mini', 'v1', 'chat', { ...a, model: 'gpt-4o-mini', stream: false }), key);
  for (const other of [
    cacheKey('beta', 'gpt-4o-mini', 'v1', 'chat', a),
    cacheKey('alpha', 'gpt-4o', 'v1', 'chat', a),
    cacheKey('alpha', 'gpt-4o-mini', 'v2', 'chat', a),
    cacheKey('alpha', 'gpt-4o-mini', 'v1', 'embeddings', a),
    cacheKey('alpha', 'gpt-4o-mini', 'v1', 'chat', { ...a, temperature: 1 }),
    cacheKey('alpha', 'gpt-4o-mini', 'v1', 'chat', { ...a, user: 'someone' }),
    cacheKey('alpha', 'gpt-4o-mini', 'v1', 'chat', { ...a, messages: [...a.messages].reverse().concat(a.messages) }),
  ]) assert.notEqual(other.row, key.row);
});

test('a saved answer is a hit for the same request of the same team only', async () => {
  const { cache } = harness();
  await cache.save('alpha', 'gpt-4o-mini', 'v1', 'chat', chat, answer(), 60_000, 1_000);
  assert.deepEqual(await cache.lookup('alpha', 'gpt-4o-mini', 'v1', 'chat', { ...chat }, 2_000), answer());
  assert.equal(await cache.lookup('beta', 'gpt-4o-mini', 'v1', 'chat', chat, 2_000), undefined);
  assert.equal(await cache.lookup('alpha', 'gpt-4o-mini', 'v2', 'chat', chat, 2_000), undefined);
});

test('an entry read back under another team is not served', async () => {
  const { cache, store } = harness();
  await cache.save('alpha', 'm', 'v', 'chat', chat, answer(), 60_000, 0);
  // Move alpha's entry to where beta's key points: the team recorded in the entry still decides.
  const [entry] = [...store.entries.values()];
  const beta = cacheKey('beta', 'm', 'v', 'chat', chat);
  store.entries.set(`${beta.partition}/${beta.row}`, { ...entry!, ...beta });
  assert.equal(await cache.lookup('beta', 'm', 'v', 'chat', chat, 1), undefined);
});

test('an expired entry is a miss and is deleted', async () => {
  const { cache, store } = harness();
  await cache.save('alpha', 'm', 'v', 'embeddings', { input: 'x' }, answer(), 10_000, 1_000);
  assert.ok(await cache.lookup('alpha', 'm', 'v', 'embeddings', { input: 'x' }, 10_999));
  assert.equal(await cache.lookup('alpha', 'm', 'v', 'embeddings', { input: 'x' }, 11_000), undefined);
  await new Promise((r) => setImmediate(r));
  assert.equal(store.entries.size, 0);
});

test('saving sweeps the partition it wrote at most once a minute', async () => {
  const { cache, store } = harness();
  await cache.save('alpha', 'm', 'v', 'chat', { n: 1 }, answer(), 1_000, 0);
  await cache.save('alpha', 'm', 'v', 'chat', { n: 2 }, answer(), 1_000, 59_999);
  await cache.save('alpha', 'm', 'v', 'chat', { n: 3 }, answer(), 1_000, 60_000);
  assert.deepEqual(store.sweeps.map((s) => s.now), [0, 60_000]);
  assert.equal(store.sweeps[0]!.partition, cacheKey('alpha', 'm', 'v', 'chat', { n: 1 }).partition);
});

test('answers over the size bound and non-positive TTLs are not cached', async () => {
  const { cache, store } = harness();
  await cache.save('alpha', 'm', 'v', 'chat', chat, answer('x'.repeat(MAX_CACHED_BODY_BYTES + 1)), 60_000, 0);
  await cache.save('alpha', 'm', 'v', 'chat', chat, answer('€'.repeat(MAX_CACHED_BODY_BYTES / 2)), 60_000, 0);
  await cache.save('alpha', 'm', 'v', 'chat', chat, answer(), 0, 0);
  assert.equal(store.entries.size, 0);
  await cache.save('alpha', 'm', 'v', 'chat', chat, answer('x'.repeat(MAX_CACHED_BODY_BYTES)), 60_000, 0);
  assert.equal(store.entries.size, 1);
});

test('a failing store is a miss, never an error, with one warning a minute', async () => {
  const { cache, store, warnings } = harness();
  store.failing = new Error('ECONNREFUSED');
  assert.equal(await cache.lookup('alpha', 'm', 'v', 'chat', chat, 0), undefined);
  await cache.save('alpha', 'm', 'v', 'chat', chat, answer(), 60_000, 1_000);
  assert.equal(await cache.lookup('alpha', 'm', 'v', 'chat', chat, 59_999), undefined);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /ECONNREFUSED/);
  assert.equal(await cache.lookup('alpha', 'm', 'v', 'chat', chat, 60_000), undefined);
  assert.equal(warnings.length, 2);
  assert.match(warnings[1]!, /2 more since the last warning/);
});

test('a hung store is a miss once the timeout fires', async () => {
  const { cache, store, warnings, fireTimeouts } = harness();
  store.hanging = true;
  const pending = cache.lookup('alpha', 'm', 'v', 'chat', chat, 0);
  const saving = cache.save('alpha', 'm', 'v', 'chat', chat, answer(), 60_000, 0);
  await new Promise((r) => setImmediate(r));
  fireTimeouts();
  assert.equal(await pending, undefined);
  await saving;
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /took over 50 ms/);
});

test('x-sluice-cache: exact, exact; ttl=<s> and off parse; anything else is a 400', () => {
  assert.equal(parseCacheHeader(null), undefined);
  assert.equal(parseCacheHeader('  '), undefined);
  assert.deepEqual(parseCacheHeader('exact'), { mode: 'exact' });
  assert.deepEqual(parseCacheHeader(' Exact ;  TTL = 120 '), { mode: 'exact', ttlSeconds: 120 });
  assert.deepEqual(parseCacheHeader('OFF'), { mode: 'off' });
  for (const bad of ['on', 'exact; ttl=', 'exact; ttl=0', 'exact; ttl=-5', 'exact; ttl=1.5', 'exact; ttl=5; x=1', 'off; ttl=5', 'exact; max=5']) {
    assert.throws(() => parseCacheHeader(bad), (err: unknown) => err instanceof ValidationError && err.status === 400 && err.param === 'x-sluice-cache', bad);
  }
});

test('policy: the header wins, then the team setting; TTLs default and are capped', async () => {
  const p = (header: string | undefined, team?: TeamCacheSetting) => cachePolicy(parseCacheHeader(header ?? null), team, SETTINGS);
  assert.equal(p(undefined), undefined);
  assert.equal(p(undefined, { mode: 'off', ttlSeconds: 60 }), undefined);
  assert.equal(p(undefined, { mode: 'exact' }), 3_600_000);
  assert.equal(p(undefined, { mode: 'exact', ttlSeconds: 60 }), 60_000);
  assert.equal(p('exact'), 3_600_000);
  assert.equal(p('exact; ttl=30', { mode: 'exact', ttlSeconds: 60 }), 30_000);
  assert.equal(p('exact', { mode: 'off', ttlSeconds: 60 }), 60_000);
  assert.equal(p('off', { mode: 'exact', ttlSeconds: 60 }), undefined);
  assert.equal(p('exact; ttl=999999999'), 86_400_000);

  const { cache } = harness({ alpha: { mode: 'exact', ttlSeconds: 120 } });
  assert.equal(await cache.policy('alpha', headers(), 0), 120_000);
  assert.equal(await cache.policy('alpha', headers('off'), 0), undefined);
  assert.equal(await cache.policy('beta', headers(), 0), undefined);
  assert.equal(await cache.policy('beta', headers('exact; ttl=5'), 0), 5_000);
  await assert.rejects(cache.policy('beta', headers('maybe'), 0), ValidationError);
});

test('a team setting that cannot be read counts as none', async () => {
  const cache = new ExactCache({ store: new MemoryCacheStore(), settingOf: () => Promise.reject(new Error('down')), settings: SETTINGS, warn: () => {} });
  assert.equal(await cache.policy('alpha', headers(), 0), undefined);
  assert.equal(await cache.policy('alpha', headers('exact'), 0), 3_600_000);
});
