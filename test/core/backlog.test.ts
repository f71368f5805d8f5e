import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admitJob, type AdmissionInput } from '../../src/core/admission';
import { BACKLOG_BUCKET_MS, BACKLOG_HORIZON_MS, BacklogCounter, countsAsBacklog, type BacklogRow, type BacklogStore } from '../../src/core/backlog';
import { fairBacklogPart, teamBacklogVerdict } from '../../src/core/backpressure';
import { newJob } from '../support/fakes';

const counts = (entries: Record<string, number>) => new Map(Object.entries(entries));

test('fair part: the limit shared among the teams with work, the asking team included, by weight', () => {
  assert.equal(fairBacklogPart('a', counts({}), 10), 10);
  assert.equal(fairBacklogPart('b', counts({ a: 10 }), 10), 5);
  assert.equal(fairBacklogPart('a', counts({ a: 10, b: 3 }), 10), 5);
  assert.equal(fairBacklogPart('c', counts({ a: 10, b: 0 }), 10), 5, 'a team at 0 has no work');
  const weights: Record<string, number> = { a: 3, b: 1 };
  assert.equal(fairBacklogPart('a', counts({ a: 1, b: 1 }), 100, (t) => weights[t] ?? 1), 75);
  assert.equal(fairBacklogPart('b', counts({ a: 1, b: 1 }), 100, (t) => weights[t] ?? 1), 25);
});

test('fleet backlog over the limit: only a team at or over its fair part is refused', () => {
  const flood = counts({ flood: 10 });
  assert.equal(teamBacklogVerdict('flood', flood, 10, 100, 6000).accept, false);
  assert.equal(teamBacklogVerdict('quiet', flood, 10, 100, 6000).accept, true, 'another team is admitted');
  const both = counts({ flood: 20, quiet: 4 });
  assert.equal(teamBacklogVerdict('quiet', both, 10, 100, 6000).accept, true, 'under its part (5)');
  assert.equal(teamBacklogVerdict('quiet', counts({ flood: 20, quiet: 5 }), 10, 100, 6000).accept, false, 'at its part');
  assert.equal(teamBacklogVerdict('flood', counts({ flood: 9 }), 10, 100, 6000).accept, true, 'fleet under the limit');
  assert.equal(teamBacklogVerdict('flood', counts({ flood: 1_000 }), 0, 100, 6000).accept, true, 'no limit');
  const many = counts(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`t${i}`, 1])));
  assert.equal(teamBacklogVerdict('new', many, 10, 100, 6000).accept, true, 'a team with nothing waiting gets at least one job in');
  const refused = teamBacklogVerdict('flood', counts({ flood: 30, quiet: 1 }), 10, 100, 6000);
  assert.ok(!refused.accept && refused.retryAfterS >= 1);
});

const team = { id: 'quiet', monthlyBudgetUsd: 0, budgetAction: 'warn' as const, maxBacklog: 3, disabled: false };
const input = (over: Partial<AdmissionInput> = {}): AdmissionInput => ({
  job: newJob(), team, monthToDateUsd: 0, backlogs: new Map(), deploymentTpms: [6000], maxBacklog: 10, safety: 1, ...over,
});

test('admission: a team limit counts the team own jobs only; another team flood refuses that team, not this one', () => {
  assert.equal(admitJob(input({ backlogs: counts({ flood: 500 }) })), undefined);
  assert.equal(admitJob(input({ backlogs: counts({ flood: 500, quiet: 2 }) })), undefined);
  assert.equal(admitJob(input({ backlogs: counts({ flood: 500, quiet: 3 }) }))?.code, 'team_backlog_full');
  const flood = { ...team, id: 'flood', maxBacklog: 0 };
  assert.equal(admitJob(input({ team: flood, backlogs: counts({ flood: 500, quiet: 2 }) }))?.code, 'backlog_full');
});

class MemoryBacklog implements BacklogStore {
  entries = new Map<string, BacklogRow>();
  reads = 0;
  writes = 0;
  failWrites = 0;
  async add(team: string, bucket: number, delta: number) {
    if (this.failWrites > 0) {
      this.failWrites -= 1;
      throw new Error('table down');
    }
    this.writes += 1;
    const key = `${team}/${bucket}`;
    const row = this.entries.get(key) ?? { team, bucket, count: 0 };
    this.entries.set(key, { ...row, count: row.count + delta });
  }
  async rows(since: number) {
    this.reads += 1;
    return [...this.entries.values()].filter((r) => r.bucket >= since).map((r) => ({ ...r }));
  }
  async prune(team: string, before: number) {
    for (const [k, r] of this.entries) if (r.team === team && r.bucket < before) this.entries.delete(k);
  }
}

function counter(store: MemoryBacklog, clock: { t: number }, timers: Array<() => void>) {
  return new BacklogCounter(store, { now: () => clock.t, flushMs: 1_000, schedule: (fn) => void timers.push(fn), onError: () => undefined });
}

async function runTimers(timers: Array<() => void>): Promise<void> {
  while (timers.length > 0) timers.shift()!();
  for (let i = 0; i < 5; i += 1) await new Promise((r) => setImmediate(r));
}

test('counter: submits cost no storage call of their own; two processes see each other after a flush; finished jobs leave', async () => {
  const store = new MemoryBacklog();
  const clock = { t: 10 * BACKLOG_HORIZON_MS };
  const timersA: Array<() => void> = [];
  const timersB: Array<() => void> = [];
  const a = counter(store, clock, timersA);
  const b = counter(store, clock, timersB);
  assert.deepEqual([...(await a.counts(2_000))], []);
  for (let i = 0; i < 50; i += 1) a.add('flood', clock.t, 1);
  assert.equal((await a.counts(2_000)).get('flood'), 50, 'its own additions count at once');
  assert.equal(store.writes, 0);
  assert.equal(timersA.length, 1, 'one flush scheduled for all of them');
  await runTimers(timersA);
  assert.equal(store.writes, 1, 'fifty additions, one write');
  assert.equal((await b.counts(2_000)).get('flood'), 50);
  for (let i = 0; i < 20; i += 1) b.add('flood', clock.t, -1);
  await runTimers(timersB);
  clock.t += 2_001;
  await a.counts(2_000); // stale: answered at once, re-read in the background
  await runTimers(timersA);
  assert.equal((await a.counts(2_000)).get('flood'), 30);
});

test('counter: a failed write is kept and retried; a lost decrement stops counting once its bucket ages out', async () => {
  const store = new MemoryBacklog();
  const clock = { t: 10 * BACKLOG_HORIZON_MS };
  const timers: Array<() => void> = [];
  const c = counter(store, clock, timers);
  await c.counts(2_000);
  c.add('t', clock.t, 5);
  store.failWrites = 1;
  await runTimers(timers);
  assert.equal(store.writes, 0);
  assert.equal((await c.counts(2_000)).get('t'), 5, 'still counted while unwritten');
  c.add('t', clock.t, 0);
  await runTimers(timers);
  assert.equal(store.writes, 1);
  assert.equal([...store.entries.values()][0]!.count, 5);
  // The five never finish (a worker died after ending them): they count until their bucket leaves the horizon.
  clock.t += BACKLOG_HORIZON_MS - BACKLOG_BUCKET_MS;
  assert.equal((await c.counts(0)).get('t'), 5);
  clock.t += 2 * BACKLOG_BUCKET_MS;
  await c.counts(0);
  await runTimers(timers);
  assert.equal((await c.counts(60_000)).get('t'), undefined);
  c.add('t', clock.t, 1);
  await runTimers(timers);
  assert.equal(store.entries.size, 1, 'rows past the horizon are pruned when a team opens a new bucket');
});

test('jobs from submit and the submission queue are counted, batch lines not', () => {
  assert.equal(countsAsBacklog(newJob()), true);
  assert.equal(countsAsBacklog(newJob({ clientId: 'c1' })), true);
  assert.equal(countsAsBacklog(newJob({ batchId: 'batch_1' })), false);
});

test('counter: a bucket that went below zero hides no job counted in another bucket', async () => {
  const store = new MemoryBacklog();
  const clock = { t: 10 * BACKLOG_HORIZON_MS };
  const c = counter(store, clock, []);
  c.add('t', clock.t - BACKLOG_BUCKET_MS, -4);
  c.add('t', clock.t, 3);
  assert.equal((await c.counts(2_000)).get('t'), 3);
});
