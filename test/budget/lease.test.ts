// The held lease's priority rule between interactive and batch jobs, with a fake clock (lease.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_PRIORITY, HeldLease, type DemandState } from '../../src/core/budget/lease';

const SLOT = 250;

/** A 10 s lease of 250 tokens per 250 ms slot (1,000 tokens/s) from slot 0, plenty of requests. */
function lease(): HeldLease {
  const slots = 40;
  return new HeldLease({ id: 'l', owner: 'a', from: 0, until: slots * SLOT, tokens: new Array(slots).fill(250), requests: new Array(slots).fill(5), weight: 1 }, SLOT);
}

/** Batch jobs of `size` ask every slot for `ms`; returns the tokens batch spent. */
function drainBatch(l: HeldLease, demand: DemandState, size: number, ms: number): number {
  let spent = 0;
  for (let t = 0; t < ms; t += SLOT) {
    while (l.fits(t, size, 'batch', demand, DEFAULT_PRIORITY)) {
      l.spend(t, size, 'batch');
      spent += size;
    }
  }
  return spent;
}

test('with interactive demand around, batch spends what accrues beyond the interactive reserve, not a fixed share of it', () => {
  // One interactive call a moment ago (its team's calls are 2,000 tokens), then only batch asks for 8 s.
  const l = lease();
  const demand: DemandState = { lastInteractiveAt: 0, lastInteractiveTokens: 2_000 };
  l.spend(0, 200, 'interactive');
  const spent = drainBatch(l, demand, 200, 8_000);
  const accrued = l.allowance(8_000 - SLOT).tokens;
  // batchShare 0.5 of each refill would be ≈ 3,900 of ≈ 7,800; batch gets all but the reserve: what interactive spent
  // in the last 2 s plus its next call, at most (1 − 0.5) × 5 s of accrual (≈ 2,500 tokens).
  assert.ok(spent >= accrued - 200 - 2_500 - 200, `batch spent ${spent} of ${accrued} accrued`);
  const reserve = accrued - 200 - spent;
  assert.ok(reserve >= 2_000, `kept for interactive: ${reserve}`);
  // The reserve is there for an interactive job at once.
  assert.ok(l.fits(8_000 - SLOT, 2_000, 'interactive', demand, DEFAULT_PRIORITY), 'an interactive job fits in the reserve');
});

test('a steady trickle of small interactive calls keeps only what they use, not half of every refill', () => {
  const l = lease();
  const demand: DemandState = { lastInteractiveAt: 0, lastInteractiveTokens: 70 };
  let batch = 0;
  for (let t = 0; t < 8_000; t += SLOT) {
    if (l.fits(t, 70, 'interactive', demand, DEFAULT_PRIORITY)) {
      l.spend(t, 70, 'interactive');
      demand.lastInteractiveAt = t;
    }
    while (l.fits(t, 200, 'batch', demand, DEFAULT_PRIORITY)) {
      l.spend(t, 200, 'batch');
      batch += 200;
    }
  }
  const accrued = l.allowance(8_000 - SLOT).tokens;
  const unspent = accrued - l.spentTokens;
  // Interactive spends 70 a slot (560 in 2 s): the reserve is that plus one call, far under half a refill.
  assert.ok(unspent <= 560 + 70 + 200, `left unspent ${unspent} of ${accrued} (batch ${batch})`);
});

test('without interactive demand, batch spends everything that accrued', () => {
  const l = lease();
  const demand: DemandState = { lastInteractiveAt: Number.NEGATIVE_INFINITY };
  const spent = drainBatch(l, demand, 250, 8_000);
  assert.equal(spent, l.allowance(8_000 - SLOT).tokens);
});
