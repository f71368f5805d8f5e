import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALONE_JOBS, ALONE_MAX_MS, ALONE_QUIET_MS, sizeLease } from '../../src/core/budget/leaseSizing';
import { newDeploymentState } from '../../src/core/budget/deploymentState';
import { DEFAULT_PRIORITY } from '../../src/core/budget/lease';
import { DEFAULT_BUDGET_POLICY, emptyRow, limitsFor, slotOf } from '../../src/core/budget/window';
import { SharedBudgetGate } from '../../src/core/budget/sharedBudget';
import { transactions } from '../../src/core/budget/store';
import { MemoryBudgetRowStore } from '../support/memoryStores';
import { deployment, maxWindow, runFleet, utilisation, type FleetOptions } from './fleetSim';

const T0 = 1_700_000_000_000;

test('fleet property: 4 instances, random jobs, 4 simulated minutes: no window over quota, ≥ 0.97 used, ≤ 0.2 tx/job', async () => {
  for (const seed of [1, 2]) {
    const ref = deployment(300_000, 1_800);
    const minutes = 4;
    const r = await runFleet({
      ref,
      instances: 4,
      concurrency: 16,
      durationMs: minutes * 60_000,
      seed,
      charge: (rnd) => Math.round(50 + rnd() * 1_950) + Math.round(50 + rnd() * 450),
    });
    assert.equal(r.rejected, 0, 'the simulator limiter never refuses a call the budget admitted');
    assert.ok(maxWindow(r.sends, 60_000, (s) => s.tokens) <= ref.tpm * 0.99);
    assert.ok(maxWindow(r.sends, 10_000, () => 1) <= Math.ceil(ref.rpm / 6));
    assert.ok(maxWindow(r.sends, 60_000, () => 1) <= ref.rpm);
    const u = utilisation(r.sends, ref.tpm, r.t0 + 60_000, r.t0 + minutes * 60_000);
    assert.ok(u >= 0.97, `seed ${seed}: steady-state utilisation ${u.toFixed(4)}`);
    const tx = transactions(r.store.stats) / r.sends.length;
    assert.ok(tx <= 0.2, `seed ${seed}: ${tx.toFixed(3)} budget transactions per job`);
  }
});

test('calls that are a large part of the pacing window still pass at the pace: a small deployment is not held to one call per window', async () => {
  // 10,000 TPM: the 10 s pacing window holds about 1,815 tokens at its burst, fewer than two 1,000-token calls.
  // Held to its burst, one call would pass per 10 s: 0.6 of the TPM.
  const ref = deployment(10_000, 6_000);
  const r = await runFleet({ ref, instances: 1, concurrency: 24, durationMs: 240_000, seed: 7, charge: (rnd) => Math.round(1_000 * (0.9 + rnd() * 0.2)), latency: (rnd) => 300 + rnd() * 1_000, timers: true });
  assert.equal(r.rejected, 0);
  assert.ok(maxWindow(r.sends, 60_000, (s) => s.tokens) <= ref.tpm * 0.99);
  const u = utilisation(r.sends, ref.tpm, r.t0 + 60_000, r.t0 + 240_000);
  // Whole 1,000-token calls fit the 60 s window nine or ten times: about 0.94 at most.
  assert.ok(u >= 0.9, `utilisation ${u.toFixed(3)}`);
});

test('request-bound fleet (tiny jobs): every 10 s window stays ≤ RPM/6 and 60 s ≤ RPM', async () => {
  const ref = deployment(300_000, 600);
  const r = await runFleet({ ref, instances: 3, concurrency: 8, durationMs: 2 * 60_000, seed: 3, charge: (rnd) => 20 + Math.round(rnd() * 80) });
  assert.equal(r.rejected, 0);
  assert.ok(maxWindow(r.sends, 10_000, () => 1) <= 100);
  assert.ok(maxWindow(r.sends, 60_000, () => 1) <= 600);
  assert.ok(r.sends.length >= 0.85 * 600 * 2 * (59 / 60), `sent ${r.sends.length} calls in 2 minutes`);
});

test('a crashed instance: its lease expires by itself, the survivors take over and never over-admit', async () => {
  const ref = deployment(120_000, 720);
  const r = await runFleet({
    ref,
    instances: 3,
    concurrency: 8,
    durationMs: 3 * 60_000,
    seed: 4,
    charge: (rnd) => 200 + Math.round(rnd() * 1_500),
    crashAt: (i) => (i === 0 ? 45_000 : undefined),
  });
  assert.equal(r.rejected, 0);
  assert.ok(maxWindow(r.sends, 60_000, (s) => s.tokens) <= ref.tpm * 0.99);
  assert.ok(r.sends.some((s) => s.instance === 0));
  assert.ok(!r.sends.some((s) => s.instance === 0 && s.at > r.t0 + 45_000 + 250));
  const u = utilisation(r.sends, ref.tpm, r.t0 + 120_000, r.t0 + 180_000);
  assert.ok(u >= 0.9, `survivors use the quota after the crash: ${u.toFixed(3)}`);
  const row = r.store.peek(ref.key)!;
  assert.ok(!row.leases.some((l) => l.owner === 'i0'), 'the dead lease was settled');
});

test('a 429 with Retry-After pauses the deployment for every instance, through the shared row', async () => {
  const store = new MemoryBudgetRowStore();
  const ref = deployment(60_000, 360);
  const a = new SharedBudgetGate({ store, owner: 'a' });
  const b = new SharedBudgetGate({ store, owner: 'b' });
  assert.deepEqual(await a.admit(ref, 500, 'batch', T0), { granted: true });
  await a.observe(ref, { status: 429, retryAfterMs: 7_000 }, T0 + 100);
  assert.equal(store.peek(ref.key)!.pauseUntil, T0 + 7_100);
  const seen = await b.admit(ref, 500, 'batch', T0 + 200);
  assert.deepEqual(seen, { granted: false, retryAt: T0 + 7_100, reason: 'paused' });
  assert.equal((await a.admit(ref, 500, 'interactive', T0 + 300)).granted, false);
  assert.equal((await b.admit(ref, 500, 'batch', T0 + 7_200)).granted, true);
});

test('remaining-tokens headers correct drift: a foreign consumer shrinks what the fleet is given', async () => {
  const store = new MemoryBudgetRowStore();
  const ref = deployment(60_000, 360);
  const gate = new SharedBudgetGate({ store, owner: 'a', minLeaseMs: 2_000 });
  assert.equal((await gate.admit(ref, 100, 'batch', T0)).granted, true);
  // The service says 50,000 of the 60,000 are gone (someone else shares the deployment).
  await gate.observe(ref, { status: 200, remainingTokens: 10_000, remainingRequests: 300 }, T0 + 500);
  let granted = 100;
  for (let t = T0 + 2_000; t < T0 + 40_000; t += 50) {
    if ((await gate.admit(ref, 100, 'batch', t)).granted) granted += 100;
  }
  assert.ok(granted <= 60_000 * 0.99 - 50_000 + 100, `granted ${granted} within the 60 s after the drift`);
  assert.ok(granted >= 5_000, `still admits what is left: ${granted}`);
});

test('no budget: the answer is a retryAt in the future, never an exception, never a grant', async () => {
  const store = new MemoryBudgetRowStore();
  const ref = deployment(6_000, 36);
  const gate = new SharedBudgetGate({ store, owner: 'a' });
  const results = [];
  for (let i = 0; i < 20; i++) results.push(await gate.admit(ref, 1_000, 'batch', T0 + i));
  const denied = results.filter((r) => !r.granted);
  assert.ok(denied.length >= 15);
  for (const r of denied) assert.ok(!r.granted && r.retryAt > T0 + 19);
  // A call above the whole TPM can never run: Azure's answer is "in 60 s" too.
  assert.deepEqual(await gate.admit(ref, 7_000, 'batch', T0 + 30), { granted: false, retryAt: T0 + 60_030, reason: 'tokens' });
});

test('priority: when both wait, interactive is admitted first', async () => {
  const store = new MemoryBudgetRowStore();
  const ref = deployment(120_000, 720);
  const gate = new SharedBudgetGate({ store, owner: 'a' });
  // Interactive demand is present; then a batch and an interactive job of the same size both have to wait.
  assert.equal((await gate.admit(ref, 100, 'interactive', T0)).granted, true);
  const t = T0 + 10;
  const b = await gate.admit(ref, 1_500, 'batch', t);
  const i = await gate.admit(ref, 1_500, 'interactive', t);
  assert.ok(!i.granted && !b.granted);
  assert.ok(i.retryAt <= b.retryAt, `interactive retryAt ${i.retryAt - t} ms, batch ${b.retryAt - t} ms`);
  // At interactive's retryAt, batch (asking first) is still refused and interactive gets in.
  assert.equal((await gate.admit(ref, 1_500, 'batch', i.retryAt)).granted, false);
  assert.equal((await gate.admit(ref, 1_500, 'interactive', i.retryAt)).granted, true);
});

test('priority: interactive that always asks first cannot starve batch (aging floor)', async () => {
  const store = new MemoryBudgetRowStore();
  const ref = deployment(60_000, 360);
  const gate = new SharedBudgetGate({ store, owner: 'a' });
  const granted = { interactive: 0, batch: 0 };
  for (let t = T0; t < T0 + 120_000; t += 50) {
    // Interactive demand without end, served first at every instant...
    while ((await gate.admit(ref, 400, 'interactive', t)).granted) granted.interactive += 400;
    // ...then one batch job asks.
    if ((await gate.admit(ref, 400, 'batch', t)).granted) granted.batch += 400;
  }
  const total = granted.interactive + granted.batch;
  assert.ok(granted.batch >= 0.1 * total, `batch got ${granted.batch} of ${total} tokens`);
  assert.ok(granted.interactive > granted.batch, `interactive ${granted.interactive}, batch ${granted.batch}`);
});

test('close() reports the lease: its unused slices are freed for the others', async () => {
  const store = new MemoryBudgetRowStore();
  const ref = deployment(60_000, 360);
  const gate = new SharedBudgetGate({ store, owner: 'a' });
  assert.equal((await gate.admit(ref, 800, 'batch', T0)).granted, true);
  assert.equal(store.peek(ref.key)!.leases.length, 1);
  await gate.close(T0 + 100);
  const row = store.peek(ref.key)!;
  assert.equal(row.leases.length, 0);
  assert.equal(row.tokens.reduce((s, v) => s + v, 0), 800);
});

test('an idle holder reports its lease when it ends, so nobody settles it as fully spent', async () => {
  const store = new MemoryBudgetRowStore();
  const ref = deployment(60_000, 360);
  const timers: Array<{ fn: () => void; ms: number }> = [];
  let now = T0;
  const gate = new SharedBudgetGate({ store, owner: 'a', now: () => now, schedule: (fn, ms) => void timers.push({ fn, ms }) });
  assert.equal((await gate.admit(ref, 800, 'batch', T0)).granted, true);
  const lease = store.peek(ref.key)!.leases[0]!;
  assert.equal(timers.length, 1);
  assert.ok(timers[0]!.ms > lease.until - T0, 'the check comes after the lease ends');
  now = T0 + timers[0]!.ms;
  timers[0]!.fn();
  await gate.close(now); // waits for the release write in flight; nothing left to report
  const row = store.peek(ref.key)!;
  assert.equal(row.leases.length, 0, 'reported, not left for settlement');
  assert.equal(row.tokens.reduce((s, v) => s + v, 0), 800, 'only what was spent counts');

  // A holder that renewed meanwhile keeps its new lease: the old lease's check does nothing.
  timers.length = 0;
  const gate2 = new SharedBudgetGate({ store: new MemoryBudgetRowStore(), owner: 'b', minLeaseMs: 2_000, leaseMs: 2_000, now: () => now, schedule: (fn, ms) => void timers.push({ fn, ms }) });
  now = T0;
  await gate2.admit(ref, 800, 'batch', T0);
  now = T0 + 5_000;
  await gate2.admit(ref, 100, 'batch', now); // after the first lease's end: renewed
  timers[0]!.fn();
  assert.ok(gate2.heldLease(ref.key), 'the renewed lease is still held');
});

/**
 * Two instances on one row: a has 20 jobs of 2,000 tokens waiting, b one small batch job at a time. Both ask at T0
 * and again at T0 + 2.5 s, after their first leases (2 s) ended, so both hold renewed leases.
 */
async function busyAndQuiet() {
  const ref = deployment(60_000, 600);
  const store = new MemoryBudgetRowStore();
  const a = new SharedBudgetGate({ store, owner: 'a' });
  const b = new SharedBudgetGate({ store, owner: 'b' });
  const askA = async (t: number) => {
    for (let i = 0; i < 20; i += 1) await a.admit(ref, 2_000, 'batch', t, { jobId: `a${i}`, team: 't' });
  };
  await b.admit(ref, 300, 'batch', T0, { jobId: 'b1', team: 't' });
  await askA(T0);
  await askA(T0 + 2_500);
  await b.admit(ref, 300, 'batch', T0 + 2_500, { jobId: 'b2', team: 't' });
  return { ref, a, b };
}

test('a lease weighs the work waiting at its instance: many waiting tokens, a larger share of the unreserved slots', async () => {
  const { ref, a, b } = await busyAndQuiet();
  const la = a.heldLease(ref.key);
  const lb = b.heldLease(ref.key);
  assert.ok(la && lb);
  assert.equal(lb.weight, 1, 'nothing waits at b');
  assert.ok(la.weight >= 20, `a has ~19 jobs of 2,000 tokens waiting: weight ${la.weight}`);
  // Without job ids (no claimant) the gate cannot tell waiting work apart: every lease weighs 1.
  const c = new SharedBudgetGate({ store: new MemoryBudgetRowStore(), owner: 'c' });
  for (let i = 0; i < 20; i += 1) await c.admit(ref, 2_000, 'batch', T0);
  for (let i = 0; i < 20; i += 1) await c.admit(ref, 2_000, 'batch', T0 + 2_500);
  assert.equal(c.heldLease(ref.key)?.weight, 1);
});

test("jobs of a team behind the fleet's fair share (owed) weigh double in the lease weight", async () => {
  const ref = deployment(300_000);
  const weightWith = async (owed: boolean) => {
    const gate = new SharedBudgetGate({ store: new MemoryBudgetRowStore(), owner: 'x' });
    // 5 jobs of 3,000 tokens waiting here (held back by the fair-share gate), then a renewal.
    for (let i = 0; i < 5; i += 1) gate.noteWaiting(ref, { jobId: `j${i}`, team: 'b', owed }, 3_000, T0 + 500, 'batch', T0);
    await gate.admit(ref, 1_000, 'batch', T0, { jobId: 'k', team: 'b', owed });
    return gate.heldLease(ref.key)!.weight;
  };
  assert.equal(await weightWith(false), 15);
  assert.equal(await weightWith(true), 30);
});

test('an interactive job that would wait on a lease sized before it came renews that lease at once, weighted for it', async () => {
  // a has much more work waiting, so b's lease is a small share, and b spends it on a batch job.
  const { ref, b } = await busyAndQuiet();
  const before = b.heldLease(ref.key)!;
  assert.equal(before.weight, 1);
  // An interactive job of 4,000 tokens arrives at b 1.1 s later: b's small lease cannot take it for a while.
  const answer = await b.admit(ref, 4_000, 'interactive', T0 + 3_600, { jobId: 'b-live', team: 't' });
  const after = b.heldLease(ref.key)!;
  assert.notEqual(after.id, before.id, 'renewed at once');
  assert.ok(after.weight >= 2 * 4, `weighted for the interactive job (×2, 4,000 tokens): ${after.weight}`);
  // At most once per 2 s: another interactive job right after does not renew again, but it is told to come back when
  // an early renewal is allowed again, not when this small lease would have accrued its tokens.
  if (!answer.granted) await b.admit(ref, 4_000, 'interactive', T0 + 3_700, { jobId: 'b-live-1', team: 't' });
  const second = await b.admit(ref, 4_000, 'interactive', T0 + 3_800, { jobId: 'b-live-2', team: 't' });
  assert.equal(b.heldLease(ref.key)!.id, after.id);
  assert.equal(second.granted, false);
  if (!second.granted) assert.ok(second.retryAt <= T0 + 3_600 + 2_000, `back at +${second.retryAt - T0} ms, the early renewal is allowed again at +5,600`);
});

/**
 * Keeps 8 jobs of 2,000 tokens asking at `gate` every 20 ms from `from` to `to` (a deployment of 300,000 TPM runs
 * them at 2.5 jobs/s). Returns the jobs admitted and each lease held, by id, with when it was first seen and its length.
 */
async function runAtPace(gate: SharedBudgetGate, ref: ReturnType<typeof deployment>, from: number, to: number) {
  let seq = 0;
  const inFlight = Array.from({ length: 8 }, () => `a${seq++}`);
  const leases = new Map<string, { grantedAt: number; length: number }>();
  for (let t = from; t < to; t += 20) {
    for (let k = 0; k < inFlight.length; k++) {
      if ((await gate.admit(ref, 2_000, 'batch', t, { jobId: inFlight[k]!, team: 'x' })).granted) inFlight[k] = `a${seq++}`;
    }
    const held = gate.heldLease(ref.key);
    if (held && !leases.has(held.id)) leases.set(held.id, { grantedAt: t, length: held.until - held.from * 250 });
  }
  return { admitted: seq - inFlight.length, leases };
}

test('alone on the row a lease stays short (an instance that starts meanwhile is not shut out for a long lease)', async () => {
  const ref = deployment(300_000, 3_000);
  const gate = new SharedBudgetGate({ store: new MemoryBudgetRowStore(), owner: 'a' });
  // 2.5 jobs/s: a lease sized for 24 jobs at this pace would run ~10 s.
  const { admitted } = await runAtPace(gate, ref, T0, T0 + 30_000);
  const lease = gate.heldLease(ref.key)!;
  assert.ok(admitted > 60, `jobs were admitted (${admitted})`);
  // ALONE_JOBS (10) jobs at 2.5 jobs/s is 4 s: within ALONE_MAX_MS, and longer than minLeaseMs (2 s), so the holder
  // writes once per several jobs.
  const length = lease.until - lease.from * 250;
  assert.ok(length <= ALONE_MAX_MS + 250, `a lease alone runs ${length} ms`);
  assert.ok(length >= ALONE_MAX_MS - 500, `a lease alone runs only ${length} ms`);
  assert.ok(ALONE_JOBS / 2.5 > ALONE_MAX_MS / 1_000);
});

test('alone on the row a lease stays at the shortest while other instances come and go, or just after start', () => {
  // sizeLease itself: an instance admitting 2.5 jobs/s, alone on the row (a lapsed lease of another owner is there).
  const ref = deployment(300_000, 3_000);
  const lim = limitsFor(ref, DEFAULT_BUDGET_POLICY, 2_000);
  const sizing = { owner: 'a', prio: DEFAULT_PRIORITY, leaseMs: 10_000, minLeaseMs: 2_000, jobsPerLease: 24 };
  const now = T0 + 60_000;
  const lengthWith = (stateMadeAt: number, othersSeenAt: number, otherUntil: number) => {
    const st = newDeploymentState(ref.key, stateMadeAt);
    st.othersSeenAt = othersSeenAt;
    for (let t = now - 20_000; t < now; t += 400) st.admitted.push([t, 2_000]);
    const row = emptyRow(now - 30_000, lim.slotMs);
    row.leases.push({ id: 'b.1', owner: 'b', from: slotOf(otherUntil - 2_000, lim.slotMs), until: otherUntil, weight: 1, tokens: [100], requests: [1] });
    const req = sizeLease(st, row, lim, now, { pendingTokens: 2_000, wantAll: false, interactive: false }, sizing, 'a.1');
    return req.until - now;
  };
  // The row has been a's alone for longer than ALONE_QUIET_MS: the time of ALONE_JOBS jobs, capped at ALONE_MAX_MS.
  assert.equal(lengthWith(T0, now - ALONE_QUIET_MS - 1, now - 1_000), ALONE_MAX_MS);
  // Another instance's live lease was seen 5 s ago (its holder ran dry and gave it back): 2 s.
  assert.equal(lengthWith(T0, now - 5_000, now - 1_000), 2_000);
  // Started 5 s ago, nothing seen yet: 2 s.
  assert.equal(lengthWith(now - 5_000, now - 5_000, now - 1_000), 2_000);
  // Not alone (the other lease is live): sized for jobsPerLease jobs, 24 / 2.5 per s ≈ 9.6 s.
  assert.ok(lengthWith(T0, now, now + 1_000) > ALONE_MAX_MS);
});

test("a row read counts another instance as seen only by its live lease (a stopped instance's lapsed one does not)", async () => {
  const ref = deployment(300_000, 3_000);
  const store = new MemoryBudgetRowStore();
  const a = new SharedBudgetGate({ store, owner: 'a' });
  const b = new SharedBudgetGate({ store, owner: 'b' });
  await b.admit(ref, 2_000, 'batch', T0, { jobId: 'b0', team: 'y' });
  const bUntil = b.heldLease(ref.key)!.until;
  // b stops without a word; a starts 1 s after b's lease ends and runs 2.5 jobs/s. Its first 10 s are short by the
  // start rule; b's lapsed lease, still on the row until it is settled, must not keep them short beyond that.
  const start = bUntil + 1_000;
  const { leases } = await runAtPace(a, ref, start, start + 30_000);
  const early = [...leases.values()].filter((l) => l.grantedAt < start + ALONE_QUIET_MS - 250);
  const later = [...leases.values()].filter((l) => l.grantedAt >= start + ALONE_QUIET_MS + 250);
  assert.ok(early.length >= 2 && later.length >= 2, `${early.length} and ${later.length} leases`);
  for (const l of early) assert.ok(l.length <= 2_000 + 250, `just after start, a lease runs ${l.length} ms`);
  for (const l of later) assert.ok(l.length >= ALONE_MAX_MS - 500, `with only a lapsed lease of b's on the row, a lease runs ${l.length} ms`);
});

test("an instance's first lease takes only its share of each slot, even of slots the others' leases already cover", async () => {
  // On an idle deployment the windows have a minute of room: without this, b's first lease would reserve a whole
  // pace per slot on top of a's, and the first leases of a starting fleet would spend the pacing window between them.
  const ref = deployment(300_000, 3_000);
  const store = new MemoryBudgetRowStore();
  const a = new SharedBudgetGate({ store, owner: 'a' });
  const b = new SharedBudgetGate({ store, owner: 'b' });
  await a.admit(ref, 1_000, 'batch', T0, { jobId: 'a1', team: 't' });
  await b.admit(ref, 1_000, 'batch', T0 + 100, { jobId: 'b1', team: 't' });
  const la = a.heldLease(ref.key)!;
  const lb = b.heldLease(ref.key)!;
  const pacePerSlot = (ref.tpm * 0.99 * 250) / 60_000;
  // Slots both leases cover, after b's first slot (which may carry the asking job's charge).
  const covered = lb.tokens.slice(1).filter((_, k) => lb.from + 1 + k <= la.from + la.tokens.length - 1);
  assert.ok(covered.length > 0);
  const share = lb.weight / (la.weight + lb.weight);
  for (const t of covered) assert.ok(t <= share * pacePerSlot + 1, `b took ${t} of a slot's ${pacePerSlot.toFixed(0)} (share ${share.toFixed(2)})`);
});

/**
 * a keeps 30 batch jobs of 3,000 tokens waiting and takes the pace as its leases give it; b has a small batch job
 * each second, so its share of the pace is small. At +15 s an interactive job of 1,500 tokens arrives at b.
 * Returns how long it waited (simulated ms), asking every 50 ms.
 */
async function interactiveAtStarvedInstance(policy?: { interactiveReserve: number }): Promise<number> {
  const ref = deployment(300_000, 3_000);
  const store = new MemoryBudgetRowStore();
  const a = new SharedBudgetGate({ store, owner: 'a', policy });
  const b = new SharedBudgetGate({ store, owner: 'b', policy });
  let seq = 0;
  const waiting = Array.from({ length: 30 }, () => `a${seq++}`);
  for (let t = T0; ; t += 50) {
    for (let k = 0; k < waiting.length; k++) if ((await a.admit(ref, 3_000, 'batch', t, { jobId: waiting[k]!, team: 'A' })).granted) waiting[k] = `a${seq++}`;
    if ((t - T0) % 1_000 === 0) await b.admit(ref, 300, 'batch', t, { jobId: `b${t}`, team: 'B' });
    if (t >= T0 + 15_000 && (await b.admit(ref, 1_500, 'interactive', t, { jobId: 'live', team: 'B' })).granted) return t - (T0 + 15_000);
    if (t > T0 + 60_000) return Number.POSITIVE_INFINITY;
  }
}

test("an interactive job at an instance whose share of the pace is spent takes the pacing window's interactive reserve", async () => {
  const waited = await interactiveAtStarvedInstance();
  // The early renewal waits for the minimum gap after b's last renewal (1 s), then takes the job's tokens.
  assert.ok(waited <= 1_000, `admitted once b may renew again: waited ${waited} ms`);
  const without = await interactiveAtStarvedInstance({ interactiveReserve: 0 });
  assert.ok(without > 2_000, `without the reserve it waits for b's share to accrue: ${without} ms`);
});

test('a holder with few, large calls does not hoard the request window across renewals (carried requests follow carried tokens)', async () => {
  // 600 RPM: 100 requests per 10 s. a is token-bound (2,500-token jobs, ~1.3 calls/s), b request-bound (100-token jobs).
  const ref = deployment(300_000, 600);
  const store = new MemoryBudgetRowStore();
  const a = new SharedBudgetGate({ store, owner: 'a' });
  const b = new SharedBudgetGate({ store, owner: 'b' });
  const calls = { a: 0, b: 0 };
  let seq = 0;
  let aJob = 'a0';
  let bJob = 'b0';
  const minutes = 2;
  for (let t = T0; t < T0 + minutes * 60_000; t += 20) {
    if ((await a.admit(ref, 2_500, 'batch', t, { jobId: aJob, team: 't' })).granted) [calls.a, aJob] = [calls.a + 1, `a${++seq}`];
    while ((await b.admit(ref, 100, 'batch', t, { jobId: bJob, team: 't' })).granted) [calls.b, bJob] = [calls.b + 1, `b${++seq}`];
  }
  // Carried whole into each next lease, a's unspent request slices would leave b about half the request budget;
  // carried in proportion to the carried tokens, the two use most of it.
  const used = (calls.a + calls.b) / (ref.rpm * minutes);
  assert.ok(used >= 0.7, `the fleet sent ${calls.a} + ${calls.b} calls: ${used.toFixed(2)} of the RPM`);
  // …and a still gets its calls: 100 × 2,500 tokens is 0.42 of the token quota over the two minutes.
  assert.ok(calls.a >= 100, `a made ${calls.a} calls`);
});

test('the line: small jobs that keep asking cannot starve a large one of the same team and priority (they backfill)', async () => {
  const store = new MemoryBudgetRowStore();
  const ref = deployment(60_000, 3_600);
  const gate = new SharedBudgetGate({ store, owner: 'a' });
  const big = { jobId: 'big', team: 'A' };
  const T1 = T0 + 5_000; // the large job comes while small ones are flowing
  let bigDue = T1;
  let bigAt: number | undefined;
  let small = 0;
  let smallTokens = 0;
  for (let t = T0; t < T1 + 30_000 && bigAt === undefined; t += 50) {
    if (t >= bigDue) {
      const a = await gate.admit(ref, 4_000, 'batch', t, big);
      if (a.granted) bigAt = t;
      else bigDue = a.retryAt;
    }
    // Small jobs ask every 50 ms, each taking whatever has accrued.
    for (let k = 0; k < 2; k++) {
      const s = await gate.admit(ref, 200, 'batch', t, { jobId: `s${small}`, team: 'A' });
      if (s.granted) (small += 1), (smallTokens += 200);
    }
  }
  assert.ok(bigAt !== undefined, `the 4,000-token job never got in while ${small} small jobs did`);
  // It waited about as long as its own tokens take to accrue at 1,000 tokens/s (plus the first lease's share), and
  // the small jobs still used the allowance beyond what it needed.
  assert.ok(bigAt - T1 <= 10_000, `the large job waited ${bigAt - T1} ms`);
  assert.ok(smallTokens > 0, 'the small jobs backfilled');
  // Who stands in whose line: test/budget/waitingLine.test.ts.
});

/**
 * Drains a finite backlog with 4 instances (holding jobs up to 30 s, with the gates' timers) and checks each seed's
 * last 20 s of sending against `minTail` of the quota, and its budget transactions per job against `maxTx`.
 */
async function drainEnds(seeds: number[], o: Pick<FleetOptions, 'concurrency' | 'backlog' | 'fetch' | 'latency' | 'charge'>, minTail: number, maxTx: number): Promise<void> {
  const ref = deployment(300_000);
  for (const seed of seeds) {
    const r = await runFleet({ ref, instances: 4, durationMs: 10 * 60_000, seed, timers: true, holdMs: 30_000, ...o });
    assert.equal(r.rejected, 0);
    assert.equal(r.sends.length, o.backlog);
    const tail = utilisation(r.sends, ref.tpm, r.lastSendAt - 20_000, r.lastSendAt);
    assert.ok(tail >= minTail, `seed ${seed}: the last 20 s of the drain used ${tail.toFixed(3)} of the quota`);
    const tx = transactions(r.store.stats) / r.sends.length;
    assert.ok(tx <= maxTx, `seed ${seed}: ${tx.toFixed(3)} budget transactions per job`);
  }
}

test('the end of a drain: instances left holding the last jobs take short leases and pick up what the others give back', async () => {
  // 4 instances × 20 jobs in flight, a finite backlog: once the queue is empty the 80 jobs held by the instances are
  // all the work left, and they run out one by one. With long leases the last 20 s would run well below the quota.
  await drainEnds([1, 2, 3, 4], { concurrency: 20, backlog: 1_200, latency: () => 30, charge: (rnd) => 1_000 + Math.round(rnd() * 1_000) }, 0.8, 0.4);
});

test('the end of a drain: a holder still fetching jobs takes short leases once a peer is in its tail', async () => {
  // Jobs reach the instances as the Functions host fetches them (16 at a time). The one that fetched last would hold
  // a 10 s lease sized by the others' weights while they ran dry, but for the peers' tail flag; these seeds show it.
  await drainEnds([4, 6, 7, 8], { concurrency: 24, backlog: 600, fetch: { batch: 16, threshold: 8 }, latency: () => 25, charge: (rnd) => 1_320 + Math.round(rnd() * 300) }, 0.85, 0.5);
});
