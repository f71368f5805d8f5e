/**
 * Seats: a deployment's budget is held by at most `seats` instances, however many the platform runs. Fleets of 64 and
 * 200 instances on one deployment (fake clock) stay under the quota, use it, and keep the row small and its writes
 * few; an instance beyond the seats costs a row read per back-off and no write.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SharedBudgetGate } from '../../src/core/budget/sharedBudget';
import { DEFAULT_BUDGET_POLICY, LEASES_MAX_CHARS, limitsFor, type LeaseRecord } from '../../src/core/budget/window';
import { fitRecord, seatsFor } from '../../src/core/budget/seats';
import { MemoryBudgetRowStore } from '../support/memoryStores';
import { deployment, runFleet, utilisation } from './fleetSim';

const MINUTE = 60_000;

for (const instances of [64, 200]) {
  test(`${instances} instances on one 300k TPM deployment: no 429, ≥ 0.94 of the TPM, at most its seats hold leases, the row stays small`, async () => {
    const ref = deployment(300_000);
    const durationMs = 4 * MINUTE;
    const r = await runFleet({
      ref,
      instances,
      concurrency: 24,
      fetch: { batch: 16, threshold: 8 },
      durationMs,
      seed: 11,
      timers: true,
      holdMs: 30_000,
      charge: (rnd) => 1_320 + Math.round(rnd() * 300),
    });
    const lim = limitsFor(ref, DEFAULT_BUDGET_POLICY);
    assert.equal(r.rejected, 0, 'the simulator rejected admitted calls');
    const used = utilisation(r.sends, ref.tpm, r.t0 + MINUTE, r.t0 + durationMs);
    assert.ok(used >= 0.94, `utilisation ${used.toFixed(3)}`);
    assert.ok(r.store.maxHolders <= lim.seats, `${r.store.maxHolders} holders for ${lim.seats} seats`);
    assert.ok(r.store.maxLeaseChars <= LEASES_MAX_CHARS, `leases JSON ${r.store.maxLeaseChars} chars`);
    // Writes come from the seat holders only: bounded by the seats, not by the fleet.
    const writesPerSecond = r.store.stats.writes / (durationMs / 1_000);
    assert.ok(writesPerSecond <= 2, `${writesPerSecond.toFixed(2)} row writes/s`);
  });
}

test('an instance beyond the seats is told to come back, reads the row once per back-off and never writes', async () => {
  const ref = deployment(60_000); // 2 seats
  assert.equal(limitsFor(ref, DEFAULT_BUDGET_POLICY).seats, 2);
  const store = new MemoryBudgetRowStore();
  const t0 = 1_700_000_000_000;
  const holders = [0, 1].map((i) => new SharedBudgetGate({ store, owner: `h${i}`, random: () => 0.5 }));
  for (const g of holders) assert.equal((await g.admit(ref, 100, 'batch', t0, { jobId: `${g.owner}-1`, team: 't' })).granted, true);
  const late = new SharedBudgetGate({ store, owner: 'late', random: () => 0.5 });
  const before = { ...store.stats };
  const first = await late.admit(ref, 100, 'batch', t0 + 10, { jobId: 'late-1', team: 't' });
  assert.deepEqual(first.granted ? 'granted' : first.reason, 'seat');
  assert.equal(store.stats.writes, before.writes, 'a seatless instance wrote the row');
  assert.equal(store.stats.reads, before.reads + 1);
  assert.ok(!first.granted && first.retryAt > t0 + 10);
  // Until its back-off ends, more jobs cost nothing.
  for (let k = 0; k < 20; k++) {
    const a = await late.admit(ref, 100, 'batch', t0 + 20 + k, { jobId: `late-${k + 2}`, team: 't' });
    assert.equal(a.granted, false);
  }
  assert.equal(store.stats.reads, before.reads + 1, 'asked the row again during its back-off');
  assert.equal(late.heldLease(ref.key), undefined);
});

test('a seat freed by a holder that leaves goes to an instance that waited for one', async () => {
  const ref = deployment(60_000);
  const store = new MemoryBudgetRowStore();
  const t0 = 1_700_000_000_000;
  const holders = [0, 1].map((i) => new SharedBudgetGate({ store, owner: `h${i}`, random: () => 0.5 }));
  for (const g of holders) await g.admit(ref, 100, 'batch', t0, { jobId: `${g.owner}-1`, team: 't' });
  const late = new SharedBudgetGate({ store, owner: 'late', random: () => 0.5 });
  const refused = await late.admit(ref, 100, 'batch', t0 + 10, { jobId: 'late-1', team: 't' });
  assert.equal(refused.granted, false);
  await holders[0]!.close(t0 + 100);
  const retryAt = (refused as { retryAt: number }).retryAt;
  const again = await late.admit(ref, 100, 'batch', retryAt, { jobId: 'late-1', team: 't' });
  assert.notEqual(late.heldLease(ref.key), undefined, 'no lease after the seat came free');
  assert.ok(again.granted || again.reason !== 'seat');
});

test('the largest record a seat can write fits its part of the row, for every seat count', () => {
  const longTeam = (k: number) => `${'t'.repeat(60)}-${String(k).padStart(2, '0')}`;
  for (const tpm of [10_000, 60_000, 300_000, 2_000_000, 10_000_000]) {
    const lim = limitsFor({ tpm, rpm: tpm }, DEFAULT_BUDGET_POLICY);
    const slots = lim.maxLeaseSlots;
    const record: LeaseRecord = {
      id: `${'o'.repeat(36)}.${Number.MAX_SAFE_INTEGER}`,
      owner: 'o'.repeat(36),
      from: 9_999_999_999,
      until: 9_999_999_999_999,
      tokens: Array.from({ length: slots }, () => 999_999),
      requests: Array.from({ length: slots }, () => 999.999),
      weight: 512,
      teams: Object.fromEntries(Array.from({ length: 8 }, (_, k) => [longTeam(k), Number.MAX_SAFE_INTEGER])),
      solo: Object.fromEntries(Array.from({ length: 8 }, (_, k) => [longTeam(k), Number.MAX_SAFE_INTEGER])),
      tail: true,
    };
    fitRecord(record, lim.recordMaxChars, lim.slotMs);
    const chars = JSON.stringify(record).length;
    assert.ok(chars <= lim.recordMaxChars, `${tpm} TPM: ${chars} > ${lim.recordMaxChars}`);
    assert.equal(record.tokens.length, slots, `${tpm} TPM: slices were cut to fit`);
    assert.ok(lim.seats * (lim.recordMaxChars + 1) + 1 <= LEASES_MAX_CHARS + 1);
  }
});

test('an interactive job at an instance without a seat takes a one-job lease for its charge, and only while one is free', async () => {
  const ref = deployment(60_000); // 2 seats
  const store = new MemoryBudgetRowStore();
  const t0 = 1_700_000_000_000;
  const holders = [0, 1].map((i) => new SharedBudgetGate({ store, owner: `h${i}`, random: () => 0.5 }));
  for (const g of holders) await g.admit(ref, 100, 'batch', t0, { jobId: `${g.owner}-1`, team: 't' });
  const lim = limitsFor(ref, DEFAULT_BUDGET_POLICY);
  const outsiders = Array.from({ length: lim.oneJobSeats + 1 }, (_, i) => new SharedBudgetGate({ store, owner: `o${i}`, random: () => 0.5 }));
  const answers = [];
  for (const [i, g] of outsiders.entries()) answers.push(await g.admit(ref, 500, 'interactive', t0 + 100 + i, { jobId: `o${i}-live`, team: 't' }));
  assert.deepEqual(
    answers.map((a) => a.granted),
    [...Array.from({ length: lim.oneJobSeats }, () => true), false],
  );
  const row = store.peek(ref.key)!;
  assert.equal(row.leases.filter((l) => l.oneJob).length, lim.oneJobSeats);
  assert.ok(row.leases.filter((l) => l.oneJob).every((l) => l.tokens[0]! >= 500 && l.tokens.slice(1).every((t) => t === 0)));
  // A batch job at a seatless instance still waits for a seat.
  const batch = await new SharedBudgetGate({ store, owner: 'late', random: () => 0.5 }).admit(ref, 100, 'batch', t0 + 200, { jobId: 'late-1', team: 't' });
  assert.equal(batch.granted ? 'granted' : batch.reason, 'seat');
});

test('seats for a job size: a small deployment with large jobs has one seat, so that its holder accrues whole jobs', () => {
  const small = limitsFor({ tpm: 10_000, rpm: 60 }, DEFAULT_BUDGET_POLICY);
  assert.equal(seatsFor(small, 1_500, 10_000), 1);
  const big = limitsFor({ tpm: 300_000, rpm: 1_800 }, DEFAULT_BUDGET_POLICY);
  assert.equal(big.seats, 5);
  assert.equal(seatsFor(big, 1_500, 10_000), 5);
  assert.equal(seatsFor(big, 20_000, 10_000), 1);
});
