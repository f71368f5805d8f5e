import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admitJob, teamRefusal, type AdmissionInput } from '../../src/core/admission';
import { enqueueJob, storeJob, type IntakeJobs } from '../../src/core/intake';
import { StaleJobError, type JobRecord } from '../../src/core/jobs';
import { TeamSpendCache } from '../../src/core/teamSpend';
import { newJob } from '../support/fakes';

const team = { id: 'gamma', monthlyBudgetUsd: 10, budgetAction: 'stop' as const, maxBacklog: 5, disabled: false };
/** Backlog counts: gamma's own, and the rest of the fleet as one other team. */
const counts = (own: number, others = 0) => new Map([['gamma', own], ['others', others]]);
const input = (over: Partial<AdmissionInput> = {}): AdmissionInput => ({
  job: newJob(), team, monthToDateUsd: 0, backlogs: new Map(), deploymentTpms: [1000, 600], maxBacklog: 100, safety: 0.9, ...over,
});

test('admission checks quota fit, the team budget, the team backlog and the fleet backlog, in that order', () => {
  assert.equal(admitJob(input()), undefined);
  const tooBig = admitJob(input({ job: newJob({ promptTokens: 500, maxOutputTokens: 500 }), monthToDateUsd: 99, backlogs: counts(99, 999) }));
  assert.deepEqual([tooBig?.status, tooBig?.code, tooBig?.param], [400, 'exceeds_deployment_quota', 'request.max_tokens']);
  assert.match(tooBig!.message, /admits per minute \(900\)/);
  const spent = admitJob(input({ monthToDateUsd: 10, backlogs: counts(99, 999) }));
  assert.deepEqual([spent?.status, spent?.code, spent?.type, spent?.retryAfterS], [429, 'team_budget_exceeded', 'insufficient_quota', undefined]);
  const teamFull = admitJob(input({ backlogs: counts(5, 999) }));
  assert.deepEqual([teamFull?.code, teamFull?.retryAfterS], ['team_backlog_full', 10]);
  const full = admitJob(input({ backlogs: counts(50, 50), team: { ...team, maxBacklog: 0 } }));
  assert.equal(full?.code, 'backlog_full');
  assert.ok(full!.retryAfterS! >= 1);
  assert.equal(admitJob(input({ monthToDateUsd: 10, team: { ...team, budgetAction: 'warn' } })), undefined, 'a "warn" team keeps submitting');
  assert.equal(admitJob(input({ backlogs: counts(4, 100), maxBacklog: 0 })), undefined, 'no fleet limit');
});

test('the team rule: a disabled team and a team stopped at its budget may start no work, whatever the path', () => {
  assert.equal(teamRefusal(team, 9.99), undefined);
  const stopped = teamRefusal(team, 10);
  assert.deepEqual([stopped?.status, stopped?.code, stopped?.type], [429, 'team_budget_exceeded', 'insufficient_quota']);
  const disabled = teamRefusal({ ...team, disabled: true }, 0);
  assert.deepEqual([disabled?.status, disabled?.code], [401, 'team_disabled']);
  assert.equal(teamRefusal({ ...team, budgetAction: 'warn' }, 50), undefined, 'a "warn" team keeps working');
  assert.equal(teamRefusal({ ...team, monthlyBudgetUsd: 0 }, 50), undefined, 'no budget, no stop');
  assert.equal(admitJob(input({ team: { ...team, disabled: true } }))?.code, 'team_disabled', 'POST /v1/jobs applies the same rule');
});

test('team spend: a submit never waits for the read; the first read fills the cache, a stale value is re-read in the background', async () => {
  let t = 0;
  const pending: Array<(usd: number) => void> = [];
  const spend = new TeamSpendCache((_team) => new Promise<number>((resolve) => pending.push(resolve)), { maxAgeMs: 1_000, now: () => t });
  assert.equal(spend.peek('gamma'), undefined, 'nothing known: admitted at once');
  assert.equal(spend.peek('gamma'), undefined);
  assert.equal(pending.length, 1, 'one read in flight per team');
  pending[0]!(4);
  await new Promise((r) => setImmediate(r));
  assert.equal(spend.peek('gamma'), 4);
  t += 1_001;
  assert.equal(spend.peek('gamma'), 4, 'a stale value is answered while it is re-read');
  assert.equal(pending.length, 2);
  // A direct refresh that finishes first wins over the older background read.
  const fresh = spend.refresh('gamma');
  pending[2]!(12);
  assert.equal(await fresh, 12);
  pending[1]!(5);
  await new Promise((r) => setImmediate(r));
  assert.equal(spend.peek('gamma'), 12);
});

class IntakeMemory implements IntakeJobs {
  rows = new Map<string, { job: JobRecord; etag: string }>();
  private v = 0;
  failDeletes = 0;
  async insert(job: JobRecord) {
    if (this.rows.has(job.id)) return undefined;
    this.rows.set(job.id, { job: structuredClone(job), etag: `v${++this.v}` });
    return `v${this.v}`;
  }
  async get(id: string) {
    const row = this.rows.get(id);
    return row && { job: structuredClone(row.job), etag: row.etag };
  }
  async replace(job: JobRecord, etag: string) {
    if (this.rows.get(job.id)?.etag !== etag) throw new StaleJobError(job.id);
    this.rows.set(job.id, { job: structuredClone(job), etag: `v${++this.v}` });
    return `v${this.v}`;
  }
  async delete(id: string, etag: string) {
    if (this.failDeletes-- > 0) throw new Error('storage down');
    if (this.rows.get(id)?.etag !== etag) return false;
    return this.rows.delete(id);
  }
}

test('store: a retried submit finds its row (same body) or a conflict (another body); a queued row is adopted for a replay', async () => {
  const jobs = new IntakeMemory();
  const job = newJob({ bodyHash: 'h1' });
  const first = await storeJob(jobs, job);
  assert.equal(first.kind, 'created');
  const again = await storeJob(jobs, job);
  assert.ok(again.kind === 'existing' && again.resend, 'still queued: adopted, a replay message goes out');
  assert.notEqual(jobs.rows.get(job.id)!.etag, first.kind === 'created' && first.etag, 'adopting rewrote the row');
  assert.equal((await storeJob(jobs, { ...job, bodyHash: 'h2' })).kind, 'conflict');
  jobs.rows.get(job.id)!.job.status = 'running';
  const running = await storeJob(jobs, job);
  assert.ok(running.kind === 'existing' && !running.resend);
});

test('enqueue: a failed send withdraws the row, in the background when the delete fails too', async () => {
  const jobs = new IntakeMemory();
  const job = newJob();
  const down = { send: async () => { throw new Error('queue down'); } };
  const stored = await storeJob(jobs, job);
  assert.ok(stored.kind === 'created');
  await assert.rejects(enqueueJob(down, jobs, job, stored.etag, { warn: assert.fail }), /queue down/);
  assert.equal(jobs.rows.size, 0, 'nothing half-written');

  const again = await storeJob(jobs, job);
  assert.ok(again.kind === 'created');
  jobs.failDeletes = 2;
  const scheduled: Array<() => void> = [];
  await assert.rejects(enqueueJob(down, jobs, job, again.etag, { warn: assert.fail, schedule: (fn) => void scheduled.push(fn) }), /queue down/);
  assert.equal(jobs.rows.size, 1);
  while (scheduled.length > 0) {
    scheduled.shift()!();
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(jobs.rows.size, 0, 'withdrawn in the background');
});
