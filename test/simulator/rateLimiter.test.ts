// Limiter arithmetic on a fake clock: exact admissions and exact retry-after values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlidingWindowRateLimiter, shortWindowRequestLimit, type AdmissionResult } from '../../local/simulator/rateLimiter';
import { defaultRpmForTpm } from '../../local/simulator/config';

function fakeClock(start = 1_700_000_000_000) {
  let nowMs = start;
  return {
    now: () => nowMs,
    advance: (ms: number) => {
      nowMs += ms;
    },
  };
}

function rejected(result: AdmissionResult): Extract<AdmissionResult, { admitted: false }> {
  assert.equal(result.admitted, false, 'expected a rejection');
  return result as Extract<AdmissionResult, { admitted: false }>;
}

describe('SlidingWindowRateLimiter', () => {
  it('derives RPM as 6 per 1,000 TPM and the 10 s limit as ceil(RPM / 6)', () => {
    assert.equal(defaultRpmForTpm(30_000), 180);
    assert.equal(shortWindowRequestLimit(180), 30);
    assert.equal(shortWindowRequestLimit(7), 2);
  });

  it('refuses a burst of RPM/6 + 1 within 10 s, but admits the same number spread over the minute', () => {
    const rpm = 60; // 10 per 10 s
    const burstClock = fakeClock();
    const burst = new SlidingWindowRateLimiter({ tpm: 1_000_000, rpm }, { now: burstClock.now });
    const burstResults = Array.from({ length: 11 }, () => {
      burstClock.advance(100);
      return burst.tryAdmit(1);
    });
    assert.deepEqual(burstResults.map((result) => result.admitted), [...Array<boolean>(10).fill(true), false]);
    const refusal = rejected(burstResults[10]!);
    assert.equal(refusal.limitKind, 'requests');
    // The first admission (at +100 ms) leaves the 10 s window at +10,100 ms; now is +1,100 ms.
    assert.equal(refusal.retryAfterMs, 9_000);

    const spreadClock = fakeClock();
    const spread = new SlidingWindowRateLimiter({ tpm: 1_000_000, rpm }, { now: spreadClock.now });
    const spreadResults = Array.from({ length: 11 }, () => {
      spreadClock.advance(5_000);
      return spread.tryAdmit(1);
    });
    assert.ok(spreadResults.every((result) => result.admitted));
  });

  it('caps requests per sliding 60 s at RPM even when every 10 s window is fine', () => {
    const clock = fakeClock();
    // RPM 7 allows 2 per 10 s, so six 10 s windows could hold 12: the 60 s cap is what binds.
    const limiter = new SlidingWindowRateLimiter({ tpm: 1_000_000, rpm: 7 }, { now: clock.now });
    const admittedAt: number[] = [];
    for (let i = 0; i < 7; i++) {
      assert.equal(limiter.tryAdmit(1).admitted, true, `request ${i}`);
      admittedAt.push(clock.now());
      clock.advance(5_000);
    }
    // 8th at +35 s: 1 request in the last 10 s, but 7 in the last 60 s.
    const refusal = rejected(limiter.tryAdmit(1));
    assert.equal(refusal.limitKind, 'requests');
    assert.equal(refusal.retryAfterMs, admittedAt[0]! + 60_000 - clock.now());
    assert.equal(refusal.retryAfterMs, 25_000);
    clock.advance(refusal.retryAfterMs - 1);
    assert.equal(limiter.tryAdmit(1).admitted, false, 'one ms early is still refused');
    clock.advance(1);
    assert.equal(limiter.tryAdmit(1).admitted, true, 'admitted exactly at retry-after');
  });

  it('admits while charges in the last 60 s + charge <= TPM, and gives the exact wait otherwise', () => {
    const clock = fakeClock();
    const limiter = new SlidingWindowRateLimiter({ tpm: 1_000, rpm: 1_000 }, { now: clock.now });
    assert.equal(limiter.tryAdmit(400).admitted, true); // t = 0
    clock.advance(10_000);
    assert.equal(limiter.tryAdmit(300).admitted, true); // t = 10 s
    clock.advance(5_000);
    assert.equal(limiter.tryAdmit(300).admitted, true); // t = 15 s, exactly 1,000 used
    clock.advance(1_000);
    // t = 16 s, 1,000 used. 400 fits once the t=0 charge leaves (t = 60 s); 500 also needs the
    // t=10 s charge gone (t = 70 s); 800 needs the t=15 s one gone too (t = 75 s).
    assert.equal(rejected(limiter.tryAdmit(400)).retryAfterMs, 60_000 - 16_000);
    assert.equal(rejected(limiter.tryAdmit(800)).retryAfterMs, 75_000 - 16_000);
    const refusal = rejected(limiter.tryAdmit(500));
    assert.equal(refusal.limitKind, 'tokens');
    assert.equal(refusal.retryAfterMs, 70_000 - 16_000);
    assert.equal(refusal.remainingTokens, 0);
    clock.advance(refusal.retryAfterMs - 1);
    assert.equal(limiter.tryAdmit(500).admitted, false);
    clock.advance(1);
    const admitted = limiter.tryAdmit(500);
    assert.equal(admitted.admitted, true);
    assert.equal(admitted.remainingTokens, 1_000 - 300 - 500); // only the t=15 s charge remains
  });

  it('does not charge rejected requests', () => {
    const clock = fakeClock();
    const limiter = new SlidingWindowRateLimiter({ tpm: 1_000, rpm: 600 }, { now: clock.now });
    assert.equal(limiter.tryAdmit(900).admitted, true);
    for (let i = 0; i < 5; i++) assert.equal(limiter.tryAdmit(200).admitted, false);
    assert.equal(limiter.snapshot().tokensUsed60s, 900);
    assert.equal(limiter.snapshot().requests60s, 1);
    assert.equal(limiter.tryAdmit(100).admitted, true, 'a request that fits is still admitted');
  });

  it('refuses a single request larger than TPM with retry-after 60 s', () => {
    const limiter = new SlidingWindowRateLimiter({ tpm: 1_000, rpm: 6 }, { now: fakeClock().now });
    const refusal = rejected(limiter.tryAdmit(1_001));
    assert.equal(refusal.limitKind, 'tokens');
    assert.equal(refusal.retryAfterMs, 60_000);
    assert.equal(limiter.tryAdmit(1_000).admitted, true);
  });

  it('reports the slower constraint when both tokens and requests are exhausted', () => {
    const clock = fakeClock();
    const limiter = new SlidingWindowRateLimiter({ tpm: 100, rpm: 6 }, { now: clock.now }); // 1 per 10 s
    assert.equal(limiter.tryAdmit(100).admitted, true);
    clock.advance(1_000);
    const refusal = rejected(limiter.tryAdmit(1));
    assert.equal(refusal.limitKind, 'tokens');
    assert.equal(refusal.retryAfterMs, 59_000);
  });

  it('keeps window contents when limits change, and empties them on reset', () => {
    const clock = fakeClock();
    const limiter = new SlidingWindowRateLimiter({ tpm: 1_000, rpm: 600 }, { now: clock.now });
    assert.equal(limiter.tryAdmit(600).admitted, true);
    limiter.setLimits({ tpm: 500 });
    assert.equal(limiter.tryAdmit(1).admitted, false);
    limiter.reset();
    assert.equal(limiter.tryAdmit(500).admitted, true);
  });

  it('stays exact over many thousands of requests (compaction keeps order)', () => {
    const clock = fakeClock();
    const limiter = new SlidingWindowRateLimiter({ tpm: 60_000, rpm: 60_000 }, { now: clock.now });
    let admitted = 0;
    for (let i = 0; i < 50_000; i++) {
      clock.advance(10); // 6,000 requests/min offered, 1 token each
      if (limiter.tryAdmit(1).admitted) admitted++;
    }
    assert.equal(admitted, 50_000);
    const snapshot = limiter.snapshot();
    assert.equal(snapshot.requests60s, 6_000);
    assert.equal(snapshot.requests10s, 1_000);
    assert.equal(snapshot.tokensUsed60s, 6_000);
  });
});
