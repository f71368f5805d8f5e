// Fair-share admission with a fake clock: many concurrent pollers of several teams against an inner
// token-bucket budget, as worker jobs poll the gate in one instance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FairShareGate, type FairShareOptions } from '../../src/core/fairshare/gate';
import type { Admission, BudgetGate, DeploymentRef } from '../../src/core/budget/gate';
import type { JobPriority } from '../../src/core/jobs';

const REF: DeploymentRef = { key: 'sim|gpt', region: 'sim', deployment: 'gpt', tpm: 60_000, rpm: 10_000 };

/** Continuous refill at `tpm`, holding at most one second's worth: the shared budget's behaviour, simplified. */
class TokenBucket implements BudgetGate {
  private level = 0;
  private at = 0;
  calls = 0;
  constructor(private readonly tpm: number) {}
  async admit(_t: DeploymentRef, tokens: number, _p: JobPriority, now: number): Promise<Admission> {
    this.calls += 1;
    const perMs = this.tpm / 60_000;
    this.level = Math.min(this.tpm / 60, this.level + (now - this.at) * perMs);
    this.at = now;
    if (this.level >= tokens) {
      this.level -= tokens;
      return { granted: true };
    }
    return { granted: false, retryAt: now + Math.ceil((tokens - this.level) / perMs), reason: 'tokens' };
  }
  async observe(): Promise<void> {}
}

interface Poller {
  team: string;
  id: string;
  priority: JobPriority;
  next: number;
  tokens: number;
}

/**
 * Runs `ms` of simulated time in 5 ms steps. `load` gives, per team, how many jobs it keeps waiting (its backlog
 * in flight), their priority and size; a granted job is replaced by a new one while the team is loaded.
 */
async function simulate(
  gate: FairShareGate,
  span: number | [number, number],
  load: (now: number) => Record<string, { inFlight: number; tokens?: number; priority?: JobPriority }>,
  onGrant?: (p: Poller, now: number) => void,
) {
  const granted: Record<string, number> = {};
  const firstGrantAt: Record<string, number> = {};
  let pollers: Poller[] = [];
  let seq = 0;
  const [from, to] = typeof span === 'number' ? [0, span] : span;
  for (let now = from; now < to; now += 5) {
    const want = load(now);
    for (const [team, spec] of Object.entries(want)) {
      const have = pollers.filter((p) => p.team === team).length;
      for (let i = have; i < spec.inFlight; i += 1) pollers.push({ team, id: `${team}-${seq++}`, priority: spec.priority ?? 'batch', next: now, tokens: spec.tokens ?? 500 });
    }
    // Teams that stopped submitting leave (their jobs drain away).
    pollers = pollers.filter((p) => (want[p.team]?.inFlight ?? 0) > 0);
    for (const p of [...pollers]) {
      if (p.next > now) continue;
      const a = await gate.admit(REF, p.tokens, p.priority, now, { jobId: p.id, team: p.team, model: 'gpt' });
      if (a.granted) {
        granted[p.team] = (granted[p.team] ?? 0) + p.tokens;
        firstGrantAt[p.team] ??= now;
        onGrant?.(p, now);
        pollers.splice(pollers.indexOf(p), 1);
      } else {
        p.next = a.retryAt;
      }
    }
  }
  return { granted, firstGrantAt };
}

const share = (g: Record<string, number>, team: string) => (g[team] ?? 0) / Object.values(g).reduce((a, b) => a + b, 0);

function gateWith(opts: FairShareOptions = {}, tpm = 600_000) {
  const inner = new TokenBucket(tpm);
  return { gate: new FairShareGate(inner, { tickMs: 50, ...opts }), inner };
}

test('equal weights: two backlogged teams get half each, however many jobs each has in flight', async () => {
  const { gate } = gateWith();
  const { granted } = await simulate(gate, 60_000, () => ({ a: { inFlight: 200 }, b: { inFlight: 4 } }));
  assert.ok(Math.abs(share(granted, 'a') - 0.5) <= 0.05, `a got ${share(granted, 'a')}`);
});

test('without the gate the team with more jobs in flight takes almost everything (the problem it solves)', async () => {
  const inner = new TokenBucket(600_000);
  let a = 0;
  let b = 0;
  const pollers = [...Array.from({ length: 200 }, () => 'a'), ...Array.from({ length: 4 }, () => 'b')];
  for (let now = 0; now < 30_000; now += 5) {
    for (const team of pollers) {
      if ((await inner.admit(REF, 500, 'batch', now)).granted) team === 'a' ? (a += 500) : (b += 500);
    }
  }
  assert.ok(b / (a + b) < 0.2, `b got ${b / (a + b)}`);
});

test('weights 3:1 divide tokens 75/25', async () => {
  const { gate } = gateWith({ weightOf: (t) => (t === 'a' ? 3 : 1) });
  const { granted } = await simulate(gate, 60_000, () => ({ a: { inFlight: 20 }, b: { inFlight: 20 } }));
  assert.ok(Math.abs(share(granted, 'a') - 0.75) <= 0.05, `a got ${share(granted, 'a')}`);
});

test('work-conserving: a team alone gets the whole deployment; an idle team banks no credit', async () => {
  const { gate } = gateWith();
  // b is idle for the first 30 s, then both are backlogged for 30 s.
  const first = await simulate(gate, 30_000, () => ({ a: { inFlight: 20 } }));
  assert.ok(first.granted.a! >= 0.95 * 10_000 * 30, `a alone got ${first.granted.a} of ${10_000 * 30} tokens`);
  const both = await simulate(gate, [30_000, 60_000], () => ({ a: { inFlight: 20 }, b: { inFlight: 20 } }));
  assert.ok(Math.abs(share(both.granted, 'b') - 0.5) <= 0.05, `after idling, b got ${share(both.granted, 'b')} (no catch-up burst)`);
});

test("a new team's first job is admitted within a few ticks while another team has hundreds waiting", async () => {
  const { gate } = gateWith();
  const { firstGrantAt } = await simulate(gate, 20_000, (now) => ({ a: { inFlight: 300 }, ...(now >= 10_000 ? { b: { inFlight: 1, priority: 'interactive' as const } } : {}) }));
  assert.ok(firstGrantAt.b !== undefined && firstGrantAt.b - 10_000 <= 1_000, `b's first grant after ${firstGrantAt.b! - 10_000} ms`);
});

test("within a team, interactive jobs go before its own batch jobs", async () => {
  const order: JobPriority[] = [];
  // One team with 30 batch and 5 interactive jobs waiting: the first five grants are the interactive ones.
  const mixed = new FairShareGate(new TokenBucket(600_000), { tickMs: 50 });
  const waiting: Array<{ id: string; priority: JobPriority; next: number }> = [
    ...Array.from({ length: 30 }, (_, i) => ({ id: `b${i}`, priority: 'batch' as const, next: 0 })),
    ...Array.from({ length: 5 }, (_, i) => ({ id: `i${i}`, priority: 'interactive' as const, next: 0 })),
  ];
  for (let now = 0; now < 5_000 && order.length < 10; now += 5) {
    for (const w of [...waiting]) {
      if (w.next > now) continue;
      const a = await mixed.admit(REF, 500, w.priority, now, { jobId: w.id, team: 'a' });
      if (a.granted) {
        order.push(w.priority);
        waiting.splice(waiting.indexOf(w), 1);
      } else w.next = a.retryAt;
    }
  }
  assert.deepEqual(order.slice(0, 5), ['interactive', 'interactive', 'interactive', 'interactive', 'interactive']);
  assert.equal(order[5], 'batch');
});

test('a waiter that stops asking (parked, or its worker died) no longer holds its team back nor others', async () => {
  const { gate } = gateWith({ expiryMs: 500 });
  // b's only job asks once (and is refused: too big) and disappears; a must still get everything afterwards.
  await gate.admit(REF, 500_000, 'batch', 0, { jobId: 'b-gone', team: 'b' });
  const { granted } = await simulate(gate, 10_000, () => ({ a: { inFlight: 10 } }));
  assert.ok(granted.a! >= 0.9 * 10_000 * 10, `a got ${granted.a}`);
});

test('a team under its guaranteed TPM goes first', async () => {
  // b has weight 1 of 10 but a guarantee of 300,000 TPM (half the deployment).
  const { gate } = gateWith({ weightOf: (t) => (t === 'a' ? 9 : 1), guaranteedTpmOf: (t) => (t === 'b' ? 300_000 : undefined) });
  const { granted } = await simulate(gate, 120_000, () => ({ a: { inFlight: 20 }, b: { inFlight: 20 } }));
  assert.ok(share(granted, 'b') >= 0.45, `b got ${share(granted, 'b')}`);
});

test('calls without a claimant go straight to the inner gate', async () => {
  const { gate, inner } = gateWith();
  assert.equal((await gate.admit(REF, 100, 'batch', 10_000)).granted, true);
  assert.equal(inner.calls, 1);
  assert.deepEqual(gate.shares(REF.key, 10_000), []);
});
