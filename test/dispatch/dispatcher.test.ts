import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher, type DispatcherOptions } from '../../src/core/dispatch/dispatcher';
import { runDispatch } from '../../src/core/dispatch/loop';
import { groupEntries, jobEntry } from '../../src/core/dispatch/teamQueue';
import type { JobPriority } from '../../src/core/jobs';
import { MemoryRunQueue, MemoryTeamQueues } from '../support/memoryTeamQueues';

const T0 = 1_800_000_000_000;
const MODEL = 'gpt-4o-mini';
const SMALL = 'gpt-4.1-small';
const TPM = 60_000;
const CHARGE = 1_000;

interface Rig {
  store: MemoryTeamQueues;
  run: MemoryRunQueue;
  dispatcher: Dispatcher;
  clock: { now: number };
  /** Ticks for `ms` of fake time, 250 ms apart. */
  runFor(ms: number): Promise<void>;
  submit(team: string, n: number, priority?: JobPriority): Promise<string[]>;
  sentBy(team: string, from?: number): number;
}

let seq = 0;
function rig(weights: Record<string, number> = {}, opts: Partial<DispatcherOptions> = {}): Rig {
  const store = new MemoryTeamQueues();
  const run = new MemoryRunQueue();
  const clock = { now: T0 };
  const dispatcher = new Dispatcher({
    store,
    run,
    now: () => clock.now,
    quotaOf: (model) => (model === MODEL ? { tpm: TPM, rpm: 600 } : model === SMALL ? { tpm: TPM / 10, rpm: 60 } : undefined),
    weightOf: (team) => weights[team] ?? 1,
    ...opts,
  });
  return {
    store,
    run,
    dispatcher,
    clock,
    async runFor(ms) {
      for (const end = clock.now + ms; clock.now < end; clock.now += 250) await dispatcher.tick();
    },
    async submit(team, n, priority = 'batch') {
      const ids: string[] = [];
      for (let i = 0; i < n; i += 1) {
        const id = `${team}-${priority[0]}-${(seq += 1)}`;
        ids.push(id);
        await store.add([jobEntry({ id, team, priority, createdAt: clock.now, charge: CHARGE, model: MODEL })]);
      }
      await store.bump({ team, model: MODEL });
      return ids;
    },
    sentBy(team, from = 0) {
      return run.sent.slice(from).filter((s) => s.id.startsWith(`${team}-`)).length;
    },
  };
}

test('backlogged teams are released in proportion to their weights, at the quota pace', async () => {
  const r = rig({ a: 1, b: 2, c: 3 });
  for (const t of ['a', 'b', 'c']) await r.submit(t, 400);
  await r.runFor(30_000); // the first burst and the pace settle
  const from = r.run.sent.length;
  await r.runFor(120_000);
  const counts = ['a', 'b', 'c'].map((t) => r.sentBy(t, from));
  const total = counts.reduce((x, y) => x + y, 0);
  // 1,000 tokens a second × 1.05, jobs of 1,000 tokens: about 126 jobs in 120 s.
  assert.ok(total >= 120 && total <= 132, `released ${total} jobs in 120 s at a pace of 1.05 jobs/s`);
  [1 / 6, 2 / 6, 3 / 6].forEach((share, i) => assert.ok(Math.abs(counts[i]! / total - share) <= 0.02, `team ${'abc'[i]} share ${counts[i]! / total} vs ${share}`));
});

test("one team's deep backlog does not delay another team's next job", async () => {
  const r = rig();
  await r.store.add(groupEntries('flood', r.clock.now, Array.from({ length: 5_000 }, (_, i) => ({ id: `flood-${i}`, charge: CHARGE, model: MODEL }))));
  await r.store.bump({ team: 'flood', model: MODEL });
  await r.runFor(60_000);
  const [id] = await r.submit('small', 1);
  const before = r.run.sent.length;
  await r.runFor(2_000);
  const at = r.run.sent.findIndex((s) => s.id === id);
  assert.ok(at >= before, "the small team's job was released within 2 s");
  assert.ok(r.store.waiting('flood') > 4_000, 'the flood is still waiting: only what the pace allows was released');
});

test('interactive jobs go first and may borrow a burst; batch work waits while the jobs queue is deep', async () => {
  const r = rig();
  await r.submit('a', 200);
  await r.runFor(20_000);
  r.run.depthValue = 10_000; // the workers are behind
  const before = r.run.sent.length;
  await r.runFor(5_000);
  assert.equal(r.run.sent.length, before, 'no batch job is released into a deep queue');
  const ids = await r.submit('b', 3, 'interactive');
  await r.runFor(500);
  assert.deepEqual(r.run.sent.slice(before).map((s) => s.id), ids);
  assert.ok(r.run.sent.slice(before).every((s) => s.priority === 'interactive'));
});

test("a team's interactive jobs beyond its lead over the others wait their turn", async () => {
  const r = rig({}, { interactiveLeadMs: 5_000 });
  await r.submit('a', 300);
  await r.submit('b', 300, 'interactive');
  await r.runFor(30_000);
  const from = r.run.sent.length;
  await r.runFor(60_000);
  const a = r.sentBy('a', from);
  const b = r.sentBy('b', from);
  assert.ok(Math.abs(a / (a + b) - 0.5) <= 0.05, `an interactive flood does not take the batch team's share: a ${a}, b ${b}`);
});

test('a team back from idle starts level with the others: idleness banks no credit', async () => {
  const r = rig();
  await r.submit('a', 500);
  await r.runFor(120_000);
  await r.submit('b', 500);
  await r.runFor(10_000);
  const from = r.run.sent.length;
  await r.runFor(60_000);
  const a = r.sentBy('a', from);
  const b = r.sentBy('b', from);
  assert.ok(a > 0 && Math.abs(b / (a + b) - 0.5) <= 0.05, `shares after b joined: a ${a}, b ${b}`);
});

test("a team's jobs for a model whose quota is spent do not hold back its jobs for another model", async () => {
  const r = rig();
  // One batch, its lines alternating between a large and a small deployment (a tenth of the quota).
  const items = Array.from({ length: 2_000 }, (_, i) => ({ id: `mix-${i}`, charge: CHARGE, model: i % 2 === 0 ? MODEL : SMALL }));
  await r.store.add(groupEntries('mix', r.clock.now, items));
  for (const model of [MODEL, SMALL]) await r.store.bump({ team: 'mix', model });
  await r.runFor(30_000);
  const from = r.run.sent.length;
  await r.runFor(60_000);
  const sent = r.run.sent.slice(from).map((s) => items[Number(s.id.slice(4))]!.model);
  const large = sent.filter((m) => m === MODEL).length;
  const small = sent.filter((m) => m === SMALL).length;
  // Each at its own pace: 1.05 jobs/s and 0.105 jobs/s.
  assert.ok(large >= 60 && large <= 66, `large model: ${large} jobs in 60 s`);
  assert.ok(small >= 5 && small <= 7, `small model: ${small} jobs in 60 s`);
});

test('while the jobs queue is full, the room that frees goes to the models in proportion to their quotas', async () => {
  // The queue sits one message below its depth (16, the floor: 1 s of the pace is less), read every 5 s: one job may
  // go per 5 s, far below either pace.
  const r = rig({}, { depthEveryMs: 5_000, depthSeconds: 1 });
  r.run.depthValue = 15;
  const items = Array.from({ length: 400 }, (_, i) => ({ id: `mix-${i}`, charge: CHARGE, model: i % 2 === 0 ? MODEL : SMALL }));
  await r.store.add(groupEntries('mix', r.clock.now, items));
  for (const model of [MODEL, SMALL]) await r.store.bump({ team: 'mix', model });
  await r.runFor(200_000);
  const sent = r.run.sent.map((s) => items[Number(s.id.slice(4))]!.model);
  const large = sent.filter((m) => m === MODEL).length;
  assert.ok(sent.length >= 38 && sent.length <= 42, `${sent.length} jobs in 200 s`);
  // 10 : 1 by quota; an even split would starve the large model (jobs of the small one waiting at the workers
  // would hold the room the large one's quota needs).
  assert.ok(large / sent.length >= 0.85, `large model: ${large} of ${sent.length}`);
});

test('the end of a backlog (at most one bucket, 10 s of the pace) is released at once', async () => {
  const r = rig();
  await r.submit('a', 60);
  // A 10-job burst, then 1.05 jobs/s: 50 are out by about 38 s, and the last 10 (one bucket) go at once, where the
  // pace alone would release the 60th at about 48 s.
  await r.runFor(40_000);
  assert.equal(r.store.waiting('a'), 0, `left in the team queue: ${r.store.waiting('a')}`);
  assert.equal(r.run.sent.length, 60);
});

test('a batch group is released item by item and its entry records how far it got', async () => {
  const r = rig();
  const items = Array.from({ length: 150 }, (_, i) => ({ id: `g-${String(i).padStart(3, '0')}`, charge: CHARGE, model: MODEL }));
  await r.store.add(groupEntries('g', r.clock.now, items));
  await r.store.bump({ team: 'g', model: MODEL });
  await r.runFor(1_000);
  const sent = r.run.sent.length;
  assert.ok(sent > 0 && sent < 100, `the first burst released ${sent}`);
  assert.deepEqual(r.run.sent.map((s) => s.id), items.slice(0, sent).map((i) => i.id), 'in order');
  assert.equal(r.store.waiting('g'), 150 - sent, 'the stored entry records the released items');
});

test('a failed send or entry write loses no job; at worst one is released twice', async () => {
  const r = rig();
  const ids = await r.submit('a', 40);
  r.run.failOnce.add(ids[3]!);
  r.store.failures.remove = 2;
  await r.runFor(120_000);
  const sent = new Set(r.run.sent.map((s) => s.id));
  assert.deepEqual(ids.filter((id) => !sent.has(id)), [], 'every job released');
  assert.equal(r.store.waiting('a'), 0, 'every entry removed in the end');
  assert.ok(r.run.sent.length <= ids.length + 8, `duplicates bounded: ${r.run.sent.length - ids.length}`);
});

test('an entry added without a marker write is found at the next rescan', async () => {
  const r = rig({}, { rescanMs: 10_000 });
  await r.submit('a', 1);
  await r.runFor(1_000);
  await r.store.add([jobEntry({ id: 'quiet', team: 'a', priority: 'batch', createdAt: r.clock.now, charge: CHARGE, model: MODEL })]);
  await r.runFor(12_000);
  assert.ok(r.run.sent.some((s) => s.id === 'quiet'));
});

test('replayed jobs are released as replay messages; a model nothing serves is released at once', async () => {
  const r = rig();
  await r.store.add([jobEntry({ id: 'rep', team: 'a', priority: 'interactive', createdAt: r.clock.now, charge: CHARGE, model: MODEL }, true)]);
  await r.store.add([jobEntry({ id: 'nomodel', team: 'a', priority: 'batch', createdAt: r.clock.now, charge: 10 ** 9, model: 'unknown' })]);
  await r.store.bump({ team: 'a', model: MODEL });
  await r.store.bump({ team: 'a', model: 'unknown' });
  await r.runFor(250);
  assert.deepEqual(r.run.sent, [
    { id: 'rep', replay: true, priority: 'interactive', lane: 0 },
    { id: 'nomodel', priority: 'batch', lane: 0 },
  ]);
});

test("each model's jobs go to its lane, and a full lane holds back only its own models", async () => {
  const r = rig({}, { laneOf: (model) => (model === SMALL ? 1 : 0) });
  r.run.depthByLane.set(0, 10_000); // lane 0's workers are far behind
  const items = Array.from({ length: 40 }, (_, i) => ({ id: `mix-${i}`, charge: CHARGE, model: i % 2 === 0 ? MODEL : SMALL }));
  await r.store.add(groupEntries('mix', r.clock.now, items));
  for (const model of [MODEL, SMALL]) await r.store.bump({ team: 'mix', model });
  await r.runFor(30_000);
  const modelOf = (id: string) => items[Number(id.slice(4))]!.model;
  assert.ok(r.run.sent.length > 0, 'the small model, alone in lane 1, is released');
  for (const s of r.run.sent) assert.equal(s.lane, modelOf(s.id) === SMALL ? 1 : 0, `${s.id} went to lane ${s.lane}`);
  assert.equal(r.run.sent.filter((s) => modelOf(s.id) === MODEL).length, 0, 'nothing of the model whose lane is full');
  r.run.depthByLane.set(0, 0);
  await r.runFor(5_000);
  assert.ok(r.run.sent.some((s) => modelOf(s.id) === MODEL), 'its lane drained: the model is released again');
});

test('runDispatch: one dispatcher at a time; a run ends once the team queues stay empty', async () => {
  const r = rig();
  await r.submit('a', 3);
  assert.equal(await r.store.acquire('other', r.clock.now + 5_000, r.clock.now), true);
  const loop = (owner: string) =>
    runDispatch({
      dispatcher: r.dispatcher,
      lease: r.store,
      owner,
      now: () => r.clock.now,
      sleep: async (ms) => void (r.clock.now += ms),
      runMs: 60_000,
    });
  assert.deepEqual(await loop('me'), { ran: false, ticks: 0, released: 0 });
  await r.store.release('other');
  const result = await loop('me');
  assert.equal(result.ran, true);
  assert.equal(result.released, 3);
  assert.ok(result.ticks < 40, `ended after ${result.ticks} ticks once idle`);
  assert.equal(await r.store.acquire('next', r.clock.now + 1, r.clock.now), true, 'the lease was given back');
});
