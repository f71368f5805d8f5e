/**
 * The Table row store against a real Azurite: several gates contend on one row in real time; the simulator's
 * limiter replays what they admitted. No over-admission, conditional writes hold, few transactions per job.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { SlidingWindowRateLimiter } from '../../local/simulator/rateLimiter';
import { budgetStoreFromConnectionString } from '../support/storage';
import { SharedBudgetGate } from '../../src/core/budget/sharedBudget';
import { transactions } from '../../src/core/budget/store';
import { DEFAULT_BUDGET_POLICY, emptyRow, LEASES_MAX_CHARS, limitsFor, type LeaseRecord } from '../../src/core/budget/window';
import { fitRecord } from '../../src/core/budget/seats';
import { deployment } from './fleetSim';

let azurite: RunningAzurite;
before(async () => {
  azurite = await startAzurite({ inMemory: true });
});
after(async () => {
  await azurite?.stop();
});

test('conditional writes: a stale ETag is refused, create refuses an existing row, rows round-trip', async () => {
  const store = budgetStoreFromConnectionString(azurite.connectionString, 'budgetetag');
  const row = { ...emptyRow(Date.now(), 250), tokens: [5, 0, 1_234_567], requests: [1, 0, 3], pauseUntil: Date.now() + 5 };
  const etag = await store.create('https://x.test/|dep', row);
  assert.ok(etag);
  assert.equal(await store.create('https://x.test/|dep', row), undefined);
  const read = await store.read('https://x.test/|dep');
  assert.deepEqual(read!.row, row);
  const next = await store.replace('https://x.test/|dep', { ...row, pauseUntil: 1 }, etag!);
  assert.ok(next);
  assert.equal(await store.replace('https://x.test/|dep', row, etag!), undefined, 'the old ETag no longer matches');
  assert.equal(store.stats.conflicts, 2);
});

test('4 gates contending on one Azurite row for 30 s: never over the quota, ≤ 0.2 transactions per admitted job once warm', async () => {
  const ref = deployment(120_000, 3_000);
  const stores = Array.from({ length: 4 }, () => budgetStoreFromConnectionString(azurite.connectionString, 'budgetcontend'));
  const gates = stores.map((store, i) => new SharedBudgetGate({ store, owner: `g${i}` }));
  const admitted: Array<{ at: number; tokens: number }> = [];
  const start = Date.now();
  const end = start + 30_000;
  let warm: { tx: number; jobs: number } | undefined;
  const txNow = () => stores.reduce((s, st) => s + transactions(st.stats), 0);
  const warmTimer = setTimeout(() => (warm = { tx: txNow(), jobs: admitted.length }), 10_000);
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  // 4 instances × 6 concurrent jobs of 50–250 tokens, each waiting as the gate says.
  const worker = async (gate: SharedBudgetGate) => {
    while (Date.now() < end) {
      const tokens = 50 + Math.floor(rand() * 200);
      for (;;) {
        const now = Date.now();
        if (now >= end) return;
        const a = await gate.admit(ref, tokens, 'batch', now);
        if (a.granted) {
          admitted.push({ at: Date.now(), tokens });
          await new Promise((r) => setTimeout(r, 50));
          break;
        }
        await new Promise((r) => setTimeout(r, Math.max(1, a.retryAt - Date.now())));
      }
    }
  };
  await Promise.all(gates.flatMap((g) => Array.from({ length: 6 }, () => worker(g))));
  clearTimeout(warmTimer);
  const steady = { tx: txNow() - warm!.tx, jobs: admitted.length - warm!.jobs };
  await Promise.all(gates.map((g) => g.close()));

  admitted.sort((a, b) => a.at - b.at);
  let now = 0;
  const limiter = new SlidingWindowRateLimiter({ tpm: ref.tpm, rpm: ref.rpm }, { now: () => now });
  let refused = 0;
  for (const a of admitted) {
    now = a.at;
    if (!limiter.tryAdmit(a.tokens).admitted) refused += 1;
  }
  assert.equal(refused, 0, 'the service would have refused none of the admitted calls');
  const total = admitted.reduce((s, a) => s + a.tokens, 0);
  assert.ok(total >= 0.85 * (ref.tpm / 2), `admitted ${total} tokens: about 30 s of TPM`);
  assert.ok(steady.tx / steady.jobs <= 0.2, `after warm-up: ${steady.tx} transactions for ${steady.jobs} jobs`);
  const row = await stores[0]!.read(ref.key);
  assert.equal(row!.row.leases.length, 0, 'close() gave every lease back');
});

test('the largest row the budget can write (every seat at its worst-case record, a full settled minute) round-trips through Table Storage', async () => {
  const store = budgetStoreFromConnectionString(azurite.connectionString, 'budgetlargest');
  const longTeam = (k: number) => `${'t'.repeat(60)}-${String(k).padStart(2, '0')}`;
  for (const tpm of [10_000, 300_000, 2_000_000]) {
    const lim = limitsFor({ tpm, rpm: tpm }, DEFAULT_BUDGET_POLICY);
    const leases: LeaseRecord[] = Array.from({ length: lim.seats }, (_, i) => {
      const record: LeaseRecord = {
        id: `${String(i).padStart(36, 'o')}.${Number.MAX_SAFE_INTEGER}`,
        owner: String(i).padStart(36, 'o'),
        from: 9_999_999_999,
        until: 9_999_999_999_999,
        tokens: Array.from({ length: lim.maxLeaseSlots }, () => 999_999),
        requests: Array.from({ length: lim.maxLeaseSlots }, () => 999.999),
        weight: 512,
        teams: Object.fromEntries(Array.from({ length: 8 }, (_, k) => [longTeam(k), Number.MAX_SAFE_INTEGER])),
        solo: Object.fromEntries(Array.from({ length: 8 }, (_, k) => [longTeam(k), Number.MAX_SAFE_INTEGER])),
        tail: true,
      };
      fitRecord(record, lim.recordMaxChars, lim.slotMs);
      return record;
    });
    assert.ok(JSON.stringify(leases).length <= LEASES_MAX_CHARS);
    // Settled slots: what pruneRow keeps (a window and the observation horizon back, a crashed lease's end ahead),
    // each at the largest count.
    const settled = lim.w60 + 60 + lim.maxLeaseSlots + 1;
    const row = { ...emptyRow(Date.now(), lim.slotMs), tokens: Array.from({ length: settled }, () => lim.tokens60), requests: Array.from({ length: settled }, () => lim.requests60), leases };
    const key = `https://largest.test/|dep-${tpm}`;
    assert.ok(await store.create(key, row), `${tpm} TPM: the largest row was refused`);
    const read = await store.read(key);
    assert.deepEqual(read!.row, row);
  }
});
