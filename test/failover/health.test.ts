/** EndpointHealth over a shared in-memory store: several instances, a fake clock, transaction counts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DeploymentRef } from '../../src/core/budget/gate';
import { DEFAULT_BREAKER_POLICY as P } from '../../src/core/breaker';
import { alwaysClosed, SharedEndpointHealth, type CallOutcome } from '../../src/core/breaker/health';
import type { BreakerStore } from '../../src/core/breaker/store';
import { MemoryBreakerStore } from '../support/memoryStores';

const T0 = 1_700_000_000_000;
const east: DeploymentRef = { key: 'http://127.0.0.1:8401|gpt-4o-mini', region: 'sim-eastus', deployment: 'gpt-4o-mini', tpm: 30_000, rpm: 180 };
const west: DeploymentRef = { key: 'http://127.0.0.1:8402|gpt-4o-mini', region: 'sim-westus', deployment: 'gpt-4o-mini', tpm: 30_000, rpm: 180 };
const refused: CallOutcome = { ok: false, kind: 'connection', message: 'ECONNREFUSED' };
const ok: CallOutcome = { ok: true };

function fleet(n: number, store: BreakerStore = new MemoryBreakerStore()) {
  return Array.from({ length: n }, (_, i) => new SharedEndpointHealth({ store, instanceId: `i${i}`, refs: [east, west] }));
}

test('one instance opening the breaker is seen by the others once their 1 s cache runs out', async () => {
  const store = new MemoryBreakerStore();
  const [a, b] = fleet(2, store);
  assert.equal(await a.check(east, T0), 'closed');
  assert.equal(await b.check(east, T0), 'closed');
  await a.report(east, refused, T0 + 100);
  assert.equal(await a.check(east, T0 + 100), 'open', 'the reporter knows at once');
  assert.equal(await b.check(east, T0 + 999), 'closed', 'b trusts its read for up to 1 s');
  assert.equal(await b.check(east, T0 + 1_000), 'open');
  assert.equal(b.retryAt(east), T0 + 100 + P.cooldownMs);
  assert.equal(await b.check(west, T0 + 1_000), 'closed', 'other deployments are unaffected');
});

test('a single 5xx does not open; three from different instances within the window do', async () => {
  const store = new MemoryBreakerStore();
  const [a, b, c] = fleet(3, store);
  const e503: CallOutcome = { ok: false, kind: '5xx', message: 'HTTP 503' };
  await a.report(east, e503, T0);
  assert.equal(await c.check(east, T0 + 2_000), 'closed');
  await b.report(east, e503, T0 + 2_000);
  assert.equal(await c.check(east, T0 + 4_000), 'closed');
  await c.report(east, e503, T0 + 4_000);
  assert.equal(await c.check(east, T0 + 4_000), 'open');
  assert.equal(await a.check(east, T0 + 5_000), 'open');
});

test('a short 429 leaves the breaker closed and writes nothing; Retry-After 86400 s opens it', async () => {
  const store = new MemoryBreakerStore();
  const [a, b] = fleet(2, store);
  await a.report(east, { ok: false, kind: '429', retryAfterMs: 2_000, message: 'rate limit' }, T0);
  assert.equal(store.stats.writes, 0);
  assert.equal(await a.check(east, T0), 'closed');
  await a.report(east, { ok: false, kind: '429', retryAfterMs: 86_400_000, message: 'retry after 86400 seconds' }, T0 + 10);
  assert.equal(await b.check(east, T0 + 10), 'open');
  assert.equal(b.retryAt(east), T0 + 10 + P.cooldownMs, 'a day is never waited out');
});

test('after the cool-down exactly one of several instances gets the probe', async () => {
  const store = new MemoryBreakerStore();
  const instances = fleet(5, store);
  await instances[0]!.report(east, refused, T0);
  const at = T0 + P.cooldownMs;
  const answers = await Promise.all(instances.flatMap((h) => [h.check(east, at), h.check(east, at)]));
  assert.equal(answers.filter((a) => a === 'probe').length, 1, `answers: ${answers.join(',')}`);
  assert.equal(answers.filter((a) => a === 'open').length, 9);
});

test('probe success closes the breaker for everyone; failure re-opens it', async () => {
  const store = new MemoryBreakerStore();
  const [a, b] = fleet(2, store);
  await a.report(east, refused, T0);
  let at = T0 + P.cooldownMs;
  const first = await Promise.all([a.check(east, at), b.check(east, at)]);
  const prober = first[0] === 'probe' ? a : b;
  const other = prober === a ? b : a;
  await prober.report(east, { ok: false, kind: 'connection', message: 'still refused' }, at + 20);
  assert.equal(await other.check(east, at + 1_100), 'open');
  assert.equal((await other.snapshot()).find((s) => s.key === east.key)?.lastError, 'connection: still refused');

  at = at + 20 + P.cooldownMs;
  assert.equal(await other.check(east, at), 'probe');
  assert.equal(await prober.check(east, at), 'open');
  await other.report(east, ok, at + 30);
  assert.equal(await other.check(east, at + 30), 'closed');
  assert.equal(await prober.check(east, at + 1_030), 'closed');
});

test('late answers from calls that started before the breaker opened are ignored', async () => {
  const store = new MemoryBreakerStore();
  const [a, b] = fleet(2, store);
  await a.check(east, T0);
  await b.check(east, T0);
  await a.report(east, refused, T0 + 10);
  await b.report(east, ok, T0 + 20); // b's call was in flight
  assert.equal(await b.check(east, T0 + 1_100), 'open');
  const writes = store.stats.writes;
  await b.report(east, refused, T0 + 1_200); // already open: nothing to write
  assert.equal(store.stats.writes, writes);
});

test('a probe holder that dies loses the probe after the lease', async () => {
  const store = new MemoryBreakerStore();
  const [a, b] = fleet(2, store);
  await a.report(east, refused, T0);
  const at = T0 + P.cooldownMs;
  assert.equal(await a.check(east, at), 'probe');
  assert.equal(await b.check(east, at + P.probeLeaseMs - 1), 'open');
  assert.equal(await b.check(east, at + P.probeLeaseMs), 'probe');
  await a.report(east, ok, at + P.probeLeaseMs + 5); // a comes back too late: ignored
  assert.equal(await a.check(east, at + P.probeLeaseMs + 2_000), 'open');
});

test('steady healthy traffic: one read per second per instance per deployment, no writes', async () => {
  const store = new MemoryBreakerStore();
  const instances = fleet(3, store);
  // 10 jobs/s for 60 s spread over 3 instances, each checking and reporting success.
  for (let i = 0; i < 600; i += 1) {
    const now = T0 + i * 100;
    const h = instances[i % 3]!;
    assert.equal(await h.check(east, now), 'closed');
    await h.report(east, ok, now + 50);
  }
  assert.equal(store.stats.writes, 0);
  assert.ok(store.stats.reads <= 3 * 61, `reads ${store.stats.reads}`);
  assert.ok(store.stats.reads / 600 < 0.35, 'well under one transaction per job');
});

test('an instance stops sending the moment it sees the failure, before the shared write lands', async () => {
  const store = new MemoryBreakerStore();
  const [a] = fleet(1, store);
  assert.equal(await a!.check(east, T0), 'closed');
  const reporting = a!.report(east, refused, T0 + 5);
  assert.equal(await a!.check(east, T0 + 6), 'open', 'a concurrent job on this instance skips the endpoint');
  await reporting;
  assert.equal(await a!.check(east, T0 + 7), 'open');
  assert.equal(store.stats.writes, 1);
});

test('a slow read that started before the breaker opened cannot bring back "closed"', async () => {
  const inner = new MemoryBreakerStore();
  let gate: Promise<void> | undefined;
  let release = () => {};
  let stalled = () => {};
  const slow: BreakerStore = {
    read: async (key) => {
      const result = await inner.read(key);
      if (gate) {
        stalled();
        await gate;
      }
      return result;
    },
    write: (key, state, etag) => inner.write(key, state, etag),
    list: () => inner.list(),
  };
  const a = new SharedEndpointHealth({ store: inner, instanceId: 'a' });
  const b = new SharedEndpointHealth({ store: slow, instanceId: 'b' });
  assert.equal(await b.check(east, T0), 'closed');
  gate = new Promise((resolve) => (release = resolve));
  const reachedGate = new Promise<void>((resolve) => (stalled = resolve));
  const stale = b.check(east, T0 + 1_000); // reads "closed", then stalls
  await reachedGate;
  gate = undefined;
  await a.report(east, refused, T0 + 1_001);
  await b.report(east, refused, T0 + 1_002); // b's own call fails; b learns "open" from the store
  release();
  assert.equal(await stale, 'open', 'the stale read yields to the newer knowledge');
  assert.equal(await b.check(east, T0 + 1_003), 'open');
});

test('concurrent checks in one instance share one read', async () => {
  const store = new MemoryBreakerStore();
  const [a] = fleet(1, store);
  await Promise.all(Array.from({ length: 20 }, () => a!.check(east, T0)));
  assert.equal(store.stats.reads, 1);
});

test('the local cache is bounded in size and in age', async () => {
  const store = new MemoryBreakerStore();
  const h = new SharedEndpointHealth({ store, instanceId: 'x', maxCached: 10, cacheMs: 1_000 });
  for (let i = 0; i < 50; i += 1) await h.check({ ...east, key: `k${i}` }, T0);
  assert.equal(h.cachedCount, 10);
  const reads = store.stats.reads;
  await h.check({ ...east, key: 'k49' }, T0 + 999);
  assert.equal(store.stats.reads, reads, 'fresh entry served from cache');
  await h.check({ ...east, key: 'k49' }, T0 + 1_000);
  assert.equal(store.stats.reads, reads + 1, 'an entry is never trusted for 1 s or more');
});

test('store failures never stop traffic', async () => {
  const errors: unknown[] = [];
  const broken: BreakerStore = {
    read: async () => Promise.reject(new Error('storage down')),
    write: async () => Promise.reject(new Error('storage down')),
    list: async () => [],
  };
  const h = new SharedEndpointHealth({ store: broken, onError: (err) => errors.push(err) });
  assert.equal(await h.check(east, T0), 'closed');
  await h.report(east, refused, T0);
  assert.ok(errors.length >= 2);
});

test('snapshot lists configured deployments, closed ones too', async () => {
  const store = new MemoryBreakerStore();
  const [a] = fleet(1, store);
  await a!.report(east, { ok: false, kind: 'timeout', message: 'no answer in 120000 ms' }, T0);
  const snap = await a!.snapshot();
  assert.deepEqual(
    snap.map((s) => [s.region, s.state]),
    [
      ['sim-eastus', 'open'],
      ['sim-westus', 'closed'],
    ],
  );
  assert.equal(snap[0]!.openedAt, T0);
  assert.equal(snap[0]!.until, T0 + P.cooldownMs);
  assert.equal(snap[0]!.lastError, 'timeout: no answer in 120000 ms');
});

test('alwaysClosed (breaker disabled) lets everything through', async () => {
  assert.equal(await alwaysClosed.check(east, T0), 'closed');
  await alwaysClosed.report(east, refused, T0);
  assert.equal(await alwaysClosed.check(east, T0), 'closed');
});
