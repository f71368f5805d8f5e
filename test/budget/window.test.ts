import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_BUDGET_POLICY,
  emptyRow,
  grantLease,
  limitsFor,
  pruneRow,
  reportLease,
  SETTLE_GRACE_MS,
  slotOf,
  sum,
  windowTotals,
} from '../../src/core/budget/window';
import { reconcile } from '../../src/core/budget/reconcile';

const T0 = 1_700_000_000_000;
const d = { tpm: 60_000, rpm: 360 };
const lim = limitsFor(d, DEFAULT_BUDGET_POLICY);
const hungry = { firstTokens: 0, firstRequests: 0, tokensPerRequest: 100, tokensPerSlot: Infinity, requestsPerSlot: Infinity };

test('limits: windows cover 60 s + transit, tokens carry the safety factor, requests ceil(rpm/6) per 10 s', () => {
  assert.equal(lim.w60, Math.ceil(60_500 / 250) + 1);
  assert.equal(lim.tokens60, 59_400);
  assert.equal(lim.requests10, 60);
});

test('pacing: a lone lease gets at most the even pace (× burst) per slot, not the minute at once', () => {
  const row = emptyRow(T0, lim.slotMs);
  const lease = grantLease(row, { id: 'a', owner: 'a', now: T0, until: T0 + 5_000, weight: 1, want: hungry }, lim);
  assert.equal(lease.tokens.length, 21);
  for (const t of lease.tokens) assert.ok(t <= lim.tokensPerSlot * (1 + lim.paceBurst) + 1e-9, `slice ${t}`);
  const total = sum(lease.tokens);
  assert.ok(total >= 0.95 * (d.tpm / 60) * 5, `total ${total} should be about 5 s of TPM`);
});

test('no window is over-reserved even when the window is already nearly full', () => {
  const row = emptyRow(T0, lim.slotMs);
  // 58,000 tokens spent 30 s ago: only ~1,400 remain until they leave the window.
  const past = slotOf(T0 - 30_000, lim.slotMs);
  row.base = past;
  row.tokens = [58_000];
  row.requests = [1];
  const lease = grantLease(row, { id: 'a', owner: 'a', now: T0, until: T0 + 5_000, weight: 1, want: hungry }, lim);
  assert.ok(sum(lease.tokens) <= lim.tokens60 - 58_000, `granted ${sum(lease.tokens)}`);
  const totals = windowTotals(row, 'tokens', lim.w60, slotOf(T0, lim.slotMs), slotOf(T0, lim.slotMs) + 300, lim.slotMs, true);
  assert.ok(Math.max(...totals) <= lim.tokens60);
});

test('fair share: a second instance gets slices for slots the first has not reached', () => {
  const row = emptyRow(T0, lim.slotMs);
  grantLease(row, { id: 'a', owner: 'a', now: T0, until: T0 + 4_000, weight: 1, want: hungry }, lim);
  const b = grantLease(row, { id: 'b', owner: 'b', now: T0 + 1_000, until: T0 + 5_000, weight: 1, want: hungry }, lim);
  const beyondA = b.tokens.slice(b.tokens.length - 3);
  assert.ok(beyondA.every((t) => t > 0), `b gets slots past a's lease: ${beyondA}`);
  assert.ok(sum(b.tokens) > 0);
});

test('outstanding slices count in every window up to until + 60 s; a crashed lease is settled at its until', () => {
  const row = emptyRow(T0, lim.slotMs);
  const a = grantLease(row, { id: 'a', owner: 'a', now: T0, until: T0 + 4_000, weight: 1, want: hungry }, lim);
  const untilSlot = slotOf(T0 + 4_000, lim.slotMs);
  // A window that starts after the first slice but before until still holds the whole lease.
  const k = slotOf(T0, lim.slotMs) + lim.w60 + 4;
  const [w] = windowTotals(row, 'tokens', lim.w60, k, k, lim.slotMs, true);
  assert.equal(w, sum(a.tokens));
  // Still there within the grace period (the holder may report late), settled after it.
  pruneRow(row, T0 + 4_000 + SETTLE_GRACE_MS - 1, lim);
  assert.equal(row.leases.length, 1);
  pruneRow(row, T0 + 4_000 + SETTLE_GRACE_MS + 1, lim);
  assert.equal(row.leases.length, 0);
  assert.equal(row.tokens[untilSlot - row.base], sum(a.tokens));
});

test('report: spends land in their slots and unused slices are freed', () => {
  const row = emptyRow(T0, lim.slotMs);
  grantLease(row, { id: 'a', owner: 'a', now: T0, until: T0 + 4_000, weight: 1, want: hungry }, lim);
  const s = slotOf(T0 + 1_000, lim.slotMs);
  assert.equal(reportLease(row, 'a', [{ slot: s, tokens: 700, requests: 2 }]), true);
  assert.equal(row.leases.length, 0);
  assert.equal(sum(row.tokens), 700);
  assert.equal(reportLease(row, 'a', []), false);
});

test('reconcile: the service counting more than the row adds the difference; counting less changes nothing', () => {
  const row = emptyRow(T0, lim.slotMs);
  const added = reconcile(row, { at: T0 + 1_000, remainingTokens: d.tpm - 10_000 }, d, lim);
  assert.equal(added.tokens, 10_000);
  const again = reconcile(row, { at: T0 + 1_500, remainingTokens: d.tpm - 10_000 }, d, lim);
  assert.equal(again.tokens, 0, 'a second instance reading the same header adds nothing');
  const less = reconcile(row, { at: T0 + 2_000, remainingTokens: d.tpm }, d, lim);
  assert.equal(less.tokens, 0);
  assert.equal(sum(row.tokens), 10_000);
});
