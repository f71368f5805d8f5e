/** The Table breaker store against real Azurite: conditional writes, ETag races, and EndpointHealth on top. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { storageClients } from '../../src/azure/storage';
import { createTableBreakerStore, TableBreakerStore } from '../../src/azure/breakerTable';
import { closedState, DEFAULT_BREAKER_POLICY as P, recordFailure } from '../../src/core/breaker';
import { SharedEndpointHealth } from '../../src/core/breaker/health';
import type { DeploymentRef } from '../../src/core/budget/gate';

const T0 = 1_700_000_000_000;
let azurite: RunningAzurite;
let tableSeq = 0;

before(async () => {
  azurite = await startAzurite({ inMemory: true });
});
after(async () => {
  await azurite?.stop();
});

function freshStore(): TableBreakerStore {
  return createTableBreakerStore(storageClients({ connectionString: azurite.connectionString }), `breakers${++tableSeq}${Date.now() % 100000}`);
}

function ref(n: number): DeploymentRef {
  // A URL key: '/', ':' and '|' must survive the row-key encoding.
  return { key: `http://127.0.0.1:${8400 + n}/|gpt-4o-mini`, region: `r${n}`, deployment: 'gpt-4o-mini', tpm: 30_000, rpm: 180 };
}

test('insert-if-absent and update-if-ETag-matches; the state round-trips', async () => {
  const store = freshStore();
  const key = ref(1).key;
  assert.equal(await store.read(key), undefined);
  const opened = recordFailure(closedState(), { kind: 'connection', message: 'ECONNREFUSED 127.0.0.1' }, T0);
  const etag1 = await store.write(key, opened, undefined);
  assert.ok(etag1);
  assert.equal(await store.write(key, opened, undefined), undefined, 'a second insert loses (409)');
  const back = await store.read(key);
  assert.deepEqual(back?.state, opened);
  assert.equal(back?.etag, etag1);

  const etag2 = await store.write(key, closedState(), etag1);
  assert.ok(etag2 && etag2 !== etag1);
  assert.equal(await store.write(key, opened, etag1), undefined, 'a stale ETag loses (412), never "*"');
  assert.deepEqual((await store.read(key))?.state, closedState());
  assert.deepEqual(
    (await store.list()).map((r) => r.key),
    [key],
  );
  assert.equal(store.stats.conflicts, 2);
});

test('two writers racing on one ETag: exactly one wins', async () => {
  const store = freshStore();
  const key = ref(2).key;
  const etag = await store.write(key, recordFailure(closedState(), { kind: 'timeout' }, T0), undefined);
  const results = await Promise.all(
    ['a', 'b', 'c', 'd'].map((owner) => store.write(key, { ...closedState(), state: 'half-open', probeOwner: owner, until: T0 + 1 }, etag)),
  );
  assert.equal(results.filter((r) => r !== undefined).length, 1);
});

test('instances sharing the table: one opens, all see it, exactly one wins the probe, its success closes for all', async () => {
  const store = freshStore();
  const east = ref(3);
  const fleet = ['w0', 'w1', 'w2', 'w3'].map((id) => new SharedEndpointHealth({ store, instanceId: id, refs: [east] }));
  for (const h of fleet) assert.equal(await h.check(east, T0), 'closed');
  await fleet[0]!.report(east, { ok: false, kind: 'connection', message: 'ECONNREFUSED' }, T0 + 10);
  for (const h of fleet.slice(1)) assert.equal(await h.check(east, T0 + 1_010), 'open');

  const at = T0 + 10 + P.cooldownMs;
  const answers = await Promise.all(fleet.map((h) => h.check(east, at)));
  assert.equal(answers.filter((a) => a === 'probe').length, 1, `answers: ${answers.join(',')}`);
  const prober = fleet[answers.indexOf('probe')]!;
  await prober.report(east, { ok: true }, at + 40);
  for (const h of fleet) assert.equal(await h.check(east, at + 1_100), 'closed');

  const snap = await fleet[1]!.snapshot();
  assert.equal(snap[0]?.state, 'closed');
  assert.equal(snap[0]?.region, 'r3');
});

test('many instances racing for the probe through Azurite, repeatedly: never two winners', async () => {
  const store = freshStore();
  const east = ref(4);
  const fleet = Array.from({ length: 8 }, (_, i) => new SharedEndpointHealth({ store, instanceId: `w${i}`, cacheMs: 0 }));
  let now = T0;
  for (let round = 0; round < 5; round += 1) {
    await fleet[round % 8]!.report(east, { ok: false, kind: 'connection', message: 'down' }, now);
    now += P.cooldownMs;
    const answers = await Promise.all(fleet.map((h) => h.check(east, now)));
    assert.equal(answers.filter((a) => a === 'probe').length, 1, `round ${round}: ${answers.join(',')}`);
    const prober = fleet[answers.indexOf('probe')]!;
    await prober.report(east, { ok: false, kind: 'connection', message: 'still down' }, now + 5);
    assert.equal(await fleet[(round + 1) % 8]!.check(east, now + 6), 'open');
    now += 10;
  }
});
