// Fleet-wide fair share: fair-share gates on several instances, each in front of its own shared-budget
// gate on one budget row, with a fake clock. The instances learn what the others granted each team from the lease
// records in the row (src/core/budget/teamLedger.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FairShareGate, type Claimant } from '../../src/core/fairshare/gate';
import { SharedBudgetGate } from '../../src/core/budget/sharedBudget';
import { MemoryBudgetRowStore } from '../support/memoryStores';
import { TeamLedger, type PeerGrant } from '../../src/core/budget/teamLedger';
import type { LeaseRecord } from '../../src/core/budget/window';
import type { JobPriority } from '../../src/core/jobs';
import { deployment } from '../budget/fleetSim';

const T0 = 1_700_000_000_000;

interface Job {
  id: string;
  team: string;
  priority: JobPriority;
  next: number;
  queuedAt: number;
}

/**
 * `layout[i]` says which teams' jobs instance i holds and how many of each (replaced as they are granted, as a worker
 * takes the next message). Returns tokens granted per team after `warmupMs`, and each granted job's wait.
 */
type Layout = Array<Record<string, { inFlight: number; priority?: JobPriority }>>;

async function runInstances(
  layout: Layout,
  durationMs: number,
  warmupMs: number,
  opts: { peers: boolean },
) {
  const ref = deployment(120_000, 6_000);
  const store = new MemoryBudgetRowStore();
  const gates = layout.map((_, i) => {
    const shared = new SharedBudgetGate({ store, owner: `i${i}` });
    // Without peers: the same gate with the row's team counters hidden from the fair-share gate (per-instance order).
    const inner = opts.peers ? shared : Object.assign(Object.create(shared) as SharedBudgetGate, { takePeerGrants: () => undefined });
    return new FairShareGate(inner, { tickMs: 50 });
  });
  const granted: Record<string, number> = {};
  const waits: Record<string, number[]> = {};
  /** Tokens granted per team in each 10 s after the warm-up. */
  const bins: Array<Record<string, number>> = [];
  let seq = 0;
  const held = layout.map(() => [] as Job[]);
  const tokens = 1_000;
  for (let t = T0; t < T0 + durationMs; t += 10) {
    for (let i = 0; i < gates.length; i++) {
      for (const [team, spec] of Object.entries(layout[i]!)) {
        const have = held[i]!.filter((j) => j.team === team).length;
        for (let k = have; k < spec.inFlight; k++) held[i]!.push({ id: `${team}-${seq++}`, team, priority: spec.priority ?? 'batch', next: t, queuedAt: t });
      }
      for (const job of [...held[i]!]) {
        if (job.next > t) continue;
        const a = await gates[i]!.admit(ref, tokens, job.priority, t, { jobId: job.id, team: job.team, model: 'gpt-4o-mini' });
        if (!a.granted) {
          job.next = a.retryAt;
          continue;
        }
        held[i]!.splice(held[i]!.indexOf(job), 1);
        if (t < T0 + warmupMs) continue;
        granted[job.team] = (granted[job.team] ?? 0) + tokens;
        const bin = (bins[Math.floor((t - T0 - warmupMs) / 10_000)] ??= {});
        bin[job.team] = (bin[job.team] ?? 0) + tokens;
        (waits[job.team] ??= []).push(t - job.queuedAt);
      }
    }
  }
  return { granted, waits, bins };
}

const share = (g: Record<string, number>, team: string) => (g[team] ?? 0) / Object.values(g).reduce((a, b) => a + b, 0);

test('fleet-wide: a team whose jobs sit at one instance of two still gets half the deployment', async () => {
  // Instance 0 holds only team a's jobs; instance 1 holds both teams'. Each instance alone would give a everything
  // at 0 and half at 1: a three-quarters of the fleet. Counting the fleet's grants, instance 1 favours b.
  const layout: Layout = [{ a: { inFlight: 20 } }, { a: { inFlight: 20 }, b: { inFlight: 20 } }];
  const fleet = await runInstances(layout, 180_000, 60_000, { peers: true });
  const local = await runInstances(layout, 180_000, 60_000, { peers: false });
  assert.ok(Math.abs(share(fleet.granted, 'b') - 0.5) <= 0.07, `with the fleet's counters b got ${share(fleet.granted, 'b').toFixed(3)}`);
  assert.ok(share(local.granted, 'b') < share(fleet.granted, 'b') - 0.1, `per instance b got ${share(local.granted, 'b').toFixed(3)}, fleet-wide ${share(fleet.granted, 'b').toFixed(3)}`);
});

test('fleet-wide: instances that each hold both teams\' jobs divide the deployment evenly from one 10 s to the next', async () => {
  // Every instance divides its own tokens between a and b. Correcting also for the others' grants, as counted a lease
  // late, would make all four favour the same team at once and the fleet swing between teams. Grants made while both
  // teams waited are not corrected elsewhere (teamLedger.ts).
  const layout: Layout = Array.from({ length: 4 }, () => ({ a: { inFlight: 20 }, b: { inFlight: 20 } }));
  const { granted, bins } = await runInstances(layout, 150_000, 30_000, { peers: true });
  const perBin = bins.map((g) => share(g, 'b'));
  assert.ok(perBin.length >= 10, `${perBin.length} bins`);
  for (const [i, s] of perBin.entries()) assert.ok(Math.abs(s - 0.5) <= 0.15, `b's share in the 10 s from +${30 + 10 * i} s: ${s.toFixed(2)} (all: ${perBin.map((x) => x.toFixed(2)).join(' ')})`);
  assert.ok(Math.abs(share(granted, 'b') - 0.5) <= 0.05, `b got ${share(granted, 'b').toFixed(3)} overall`);
});

/** A lease record as instance `owner` writes it at `at` (a new lease id each time), with its ledger counters. */
let leaseSeq = 0;
const record = (owner: string, at: number, teams: Record<string, number>, solo?: Record<string, number>): LeaseRecord =>
  ({ id: `${owner}.${++leaseSeq}`, owner, from: at / 250, until: at + 10_000, tokens: [], requests: [], weight: 1, teams, ...(solo ? { solo } : {}) });
const byTeam = (grants: readonly PeerGrant[] | undefined) => {
  const out: Record<string, number> = {};
  for (const g of grants ?? []) out[g.team] = (out[g.team] ?? 0) + g.tokens;
  return out;
};

test('team ledger: counters carried in lease records become what the other instances granted since last seen', () => {
  const ledger = new TeamLedger();
  // First sight of an instance sets a baseline: its past is not counted.
  ledger.absorb([record('x', 0, { a: 5_000 })], 'me', 0, 250);
  assert.equal(ledger.take(), undefined);
  // Growth is counted, a new team in full; a renewal missed in between loses nothing (counters are cumulative).
  const x1 = record('x', 1_000, { a: 9_000, b: 1_000 });
  ledger.absorb([x1, record('me', 1_000, { a: 1e9 })], 'me', 1_000, 250);
  ledger.absorb([x1], 'me', 2_000, 250); // the same record read again adds nothing
  ledger.absorb([record('x', 5_000, { a: 12_000, b: 1_000 })], 'me', 5_000, 250);
  const taken = ledger.take()!;
  assert.deepEqual(byTeam(taken), { a: 7_000, b: 1_000 });
  // Each part carries the renewals between which it was granted.
  assert.deepEqual(taken.map((g) => [g.team, g.tokens, g.from, g.to]), [['a', 4_000, 0, 1_000], ['b', 1_000, 0, 1_000], ['a', 3_000, 1_000, 5_000]]);
  assert.equal(ledger.take(), undefined, 'taken once');
  // What this instance publishes: its own counters, most recent teams first, at most eight.
  for (let i = 0; i < 10; i++) ledger.record(`t${i}`, 100 * (i + 1), 10_000 + i);
  ledger.record('t0', 50, 10_100);
  const published = ledger.publish(10_200).teams!;
  assert.equal(Object.keys(published).length, 8);
  assert.equal(published.t0, 150);
  assert.equal(published.t1, undefined, 'the least recent teams are left out');
});

test('team ledger: only uncontested grants count elsewhere, split between the instances that divide tokens themselves', () => {
  // What an instance publishes: every grant in `teams`, those made while no other team waited there in `solo`.
  const own = new TeamLedger();
  own.record('a', 1_000, 0, false);
  own.record('a', 500, 1, true);
  own.record('b', 700, 2, true);
  assert.deepEqual(own.publish(10), { teams: { b: 700, a: 1_500 }, solo: { b: 0, a: 1_000 } });

  const ledger = new TeamLedger();
  ledger.absorb([record('x', 0, { a: 0 }, { a: 0 }), record('y', 0, { a: 0, b: 0 }, { a: 0, b: 0 })], 'me', 0, 250);
  // x granted a 4,000 alone; y granted a and b 3,000 each while both waited (an arbiter, like this instance).
  ledger.absorb([record('x', 1_000, { a: 4_000 }, { a: 4_000 }), record('y', 1_000, { a: 3_000, b: 3_000 }, { a: 0, b: 0 })], 'me', 1_000, 250);
  assert.deepEqual(byTeam(ledger.take()), { a: 2_000 }, "half of x's grants: y makes up the other half");
  // y stops dividing (only a waits there now): its grants count, and this instance is the only arbiter left.
  ledger.absorb([record('x', 2_000, { a: 6_000 }, { a: 6_000 }), record('y', 2_000, { a: 5_000, b: 3_000 }, { a: 2_000, b: 0 })], 'me', 2_000, 250);
  assert.deepEqual(byTeam(ledger.take()), { a: 4_000 });
  // A record without `solo` (an older version) counts in full.
  ledger.absorb([record('z', 3_000, { a: 100 })], 'me', 3_000, 250);
  ledger.absorb([record('z', 4_000, { a: 600 })], 'me', 4_000, 250);
  assert.deepEqual(byTeam(ledger.take()), { a: 500 });
});

test('tokens granted elsewhere before a team started waiting here are no debt to it; those granted after are', async () => {
  for (const [label, from, to, expected] of [
    ['before b joined', 0, 8_000, ['a3', 'b1', 'a4', 'b2']],
    ['after b joined', 10_000, 11_000, ['b1', 'b2']],
  ] as const) {
    const { state, ask } = switchableBudget();
    await ask('a1', 0);
    await ask('a2', 1);
    state.allow = false;
    await ask('a3', 9_000); // a waits for budget
    await ask('a4', 9_000);
    await ask('b1', 10_000); // b starts waiting here, level with a
    await ask('b2', 10_000);
    // Another instance reports 10,000 tokens it granted a, uncontested.
    state.peers = [{ team: 'a', tokens: 10_000, from, to }];
    state.allow = true;
    const granted: string[] = [];
    for (const id of ['a3', 'b1', 'a4', 'b2']) if (await ask(id, 11_100)) granted.push(id);
    assert.deepEqual(granted, expected, label);
  }
});

test("between teams level with each other, one team's interactive job goes before the other's batch jobs", async () => {
  // A one-slot inner gate: exactly one grant per 100 ms.
  let freeAt = 0;
  const inner = {
    async admit(_r: unknown, _t: number, _p: JobPriority, now: number) {
      if (now >= freeAt) {
        freeAt = now + 100;
        return { granted: true as const };
      }
      return { granted: false as const, retryAt: freeAt, reason: 'tokens' as const };
    },
    async observe() {},
  };
  const gate = new FairShareGate(inner, { tickMs: 10 });
  const ref = deployment(60_000);
  // a has batch jobs waiting and has been granted some; b arrives (level with a) with one interactive job.
  for (let i = 0; i < 5; i++) await gate.admit(ref, 500, 'batch', i * 100, { jobId: `a${i}`, team: 'a' });
  for (let i = 5; i < 10; i++) await gate.admit(ref, 500, 'batch', 450, { jobId: `a${i}`, team: 'a' });
  // At 500 the slot frees: a's batch jobs ask first (in this order), then b's interactive job.
  const order: string[] = [];
  for (const id of ['a5', 'a6', 'b-live']) {
    const a = await gate.admit(ref, 500, id === 'b-live' ? 'interactive' : 'batch', 500, { jobId: id, team: id === 'b-live' ? 'b' : 'a' });
    if (a.granted) order.push(id);
  }
  // b's job was not granted at its first ask (a5 went first: b was not yet waiting), but from then on a is held back.
  const second: string[] = [];
  for (const id of ['a6', 'a7', 'b-live']) {
    const a = await gate.admit(ref, 500, id === 'b-live' ? 'interactive' : 'batch', 600, { jobId: id, team: id === 'b-live' ? 'b' : 'a' });
    if (a.granted) second.push(id);
  }
  assert.deepEqual(order, ['a5']);
  assert.deepEqual(second, ['b-live']);
});

test('jobs the fair-share gate holds back still count as work waiting at the instance (the lease weight)', async () => {
  const noted: string[] = [];
  let freeAt = 0;
  const inner = {
    async admit(_r: unknown, _t: number, _p: JobPriority, now: number) {
      if (now >= freeAt) return (freeAt = now + 1_000), { granted: true as const };
      return { granted: false as const, retryAt: freeAt, reason: 'tokens' as const };
    },
    async observe() {},
    noteWaiting(_r: unknown, c: { jobId: string }) {
      noted.push(c.jobId);
    },
  };
  const gate = new FairShareGate(inner, { tickMs: 10 });
  const ref = deployment(60_000);
  await gate.admit(ref, 500, 'batch', 0, { jobId: 'a0', team: 'a' }); // granted: a is now ahead
  await gate.admit(ref, 500, 'batch', 10, { jobId: 'b0', team: 'b' }); // b asks (refused by the inner gate)
  await gate.admit(ref, 500, 'batch', 20, { jobId: 'a1', team: 'a' }); // a is held back by the fair-share gate
  assert.deepEqual(noted, ['a1']);
});

/** A budget that grants while `allow` is set, else says "in 1 s", and records which jobs asked it. */
function switchableBudget() {
  const state = { allow: true, retryIn: 1_000, asked: [] as string[], owed: [] as Array<[string, boolean | undefined]>, peers: undefined as PeerGrant[] | undefined };
  const inner = {
    async admit(_r: unknown, _t: number, _p: JobPriority, now: number, c?: Claimant) {
      state.asked.push(c!.jobId);
      state.owed.push([c!.jobId, c!.owed]);
      return state.allow ? { granted: true as const } : { granted: false as const, retryAt: now + state.retryIn, reason: 'tokens' as const };
    },
    async observe() {},
    /** What other instances granted, as the shared budget would hand it over: once. */
    takePeerGrants() {
      const out = state.peers;
      state.peers = undefined;
      return out;
    },
  };
  const gate = new FairShareGate(inner, { tickMs: 10 });
  const ref = deployment(60_000);
  /** A batch job of 1,000 tokens of the team its id starts with asks at `now`; granted or not. */
  const ask = async (id: string, now: number) => (await gate.admit(ref, 1_000, 'batch', now, { jobId: id, team: id[0]! })).granted;
  return { state, gate, ask };
}

test("an interactive job one job ahead of another team is not held behind that team's jobs waiting for budget", async () => {
  const { state, gate } = switchableBudget();
  const ref = deployment(60_000);
  await gate.admit(ref, 500, 'batch', 0, { jobId: 'a1', team: 'a' });
  state.allow = false;
  await gate.admit(ref, 500, 'batch', 10, { jobId: 'a2', team: 'a' }); // a waits for budget
  state.allow = true;
  await gate.admit(ref, 500, 'batch', 15, { jobId: 'b1', team: 'b' }); // b joins level with a, is granted: one job ahead
  state.allow = false;
  state.asked.length = 0;
  await gate.admit(ref, 500, 'interactive', 20, { jobId: 'b-live', team: 'b' });
  await gate.admit(ref, 500, 'batch', 30, { jobId: 'b2', team: 'b' });
  assert.deepEqual(state.asked, ['b-live'], "b's interactive job asks the budget; its batch job waits for a's turn");
});

test("an interactive job well ahead of another team asks the budget while that team's jobs are all refused by it (work-conserving)", async () => {
  const { state, gate } = switchableBudget();
  const ref = deployment(60_000);
  // b has had three jobs here, a none yet: b is three jobs ahead, beyond an interactive job's lead of two.
  for (const [i, t] of [0, 1, 2].entries()) await gate.admit(ref, 500, 'interactive', t, { jobId: `b${i}`, team: 'b' });
  state.allow = false;
  await gate.admit(ref, 500, 'batch', 10, { jobId: 'a1', team: 'a' }); // a joins level with b... refused by the budget
  state.asked.length = 0;
  // a's only waiter cannot use tokens before now + 1 s: b's interactive job is not held back for it.
  await gate.admit(ref, 500, 'interactive', 20, { jobId: 'b-live', team: 'b' });
  assert.deepEqual(state.asked, ['b-live']);
  // Once a's job is due back (it could take the tokens), b's interactive job waits for a's turn again.
  state.asked.length = 0;
  await gate.admit(ref, 500, 'batch', 1_015, { jobId: 'a2', team: 'a' });
  state.allow = true;
  await gate.admit(ref, 500, 'interactive', 1_016, { jobId: 'b-live', team: 'b' });
  assert.deepEqual(state.asked, ['a2'], "a2 asks; b's interactive job is held back behind a");
});

test('a team whose jobs are parked for budget keeps its place: it is backlogged, not idle', async () => {
  // b's job is told to come back in 5 s (longer than a job is held in-process: it is parked and holds nobody back).
  // Meanwhile a's jobs take whatever they can. When b's job comes back, b is owed those turns: starting it level with
  // a, as a team back from idle, would throw them away.
  const { state, ask } = switchableBudget();
  assert.equal(await ask('a1', 0), true);
  Object.assign(state, { allow: false, retryIn: 5_000 });
  assert.equal(await ask('b1', 10), false, 'b1 parked until 5,010');
  state.allow = true;
  for (const [i, t] of [100, 200, 300, 400].entries()) assert.equal(await ask(`a${i + 2}`, t), true, 'nothing holds a back meanwhile');
  Object.assign(state, { allow: false, retryIn: 10 }); // the budget has nothing for a moment
  await ask('a6', 5_005);
  state.asked.length = 0;
  await ask('b1', 5_010); // b1 is back
  await ask('a7', 5_015);
  await ask('a6', 5_016);
  assert.deepEqual(state.asked, ['b1'], 'a has had four turns since b started waiting: its jobs wait for b');
});

test('a job parked for a minute keeps its team backlogged for a lease only: no minute of credit', async () => {
  const { state, ask } = switchableBudget();
  assert.equal(await ask('a1', 0), true);
  Object.assign(state, { allow: false, retryIn: 60_000 });
  assert.equal(await ask('b1', 10), false, 'b1 parked for a minute');
  state.allow = true;
  for (let i = 0; i < 20; i++) assert.equal(await ask(`a${i + 2}`, 1_000 + i * 2_000), true, 'nothing holds a back meanwhile');
  Object.assign(state, { allow: false, retryIn: 10 });
  await ask('a30', 60_005);
  state.asked.length = 0;
  await ask('b1', 60_010); // back after a minute: idle since 12 s, it starts level with a
  await ask('a30', 60_015);
  assert.deepEqual(state.asked, ['b1', 'a30'], "level: a is not held back for b's minute away");
});

test("a team far behind the others here is owed: the budget weighs its jobs double; one level with them is not", async () => {
  const { state, ask } = switchableBudget();
  Object.assign(state, { allow: false, retryIn: 500 });
  await ask('a1', 0);
  await ask('b1', 10); // level with a
  state.peers = [{ team: 'a', tokens: 3_000, from: 100, to: 200 }]; // a got 3 jobs' worth elsewhere: b is behind, by 3 jobs
  await ask('b1', 600);
  state.peers = [{ team: 'a', tokens: 3_000, from: 600, to: 700 }]; // by 6 jobs now: owed
  await ask('b1', 1_200);
  assert.deepEqual(state.owed, [['a1', false], ['b1', false], ['b1', false], ['b1', true]]);
});
