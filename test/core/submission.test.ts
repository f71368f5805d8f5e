import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acceptSubmission, isOwnQueue, redactSubmission, type SubmissionPort } from '../../src/core/batch/submission';
import { teamRefusal } from '../../src/core/admission';
import { KNOWN_MODELS } from '../../src/core/models';
import type { JobRecord } from '../../src/core/jobs';
import type { Team } from '../../src/core/teams/model';

const models = { 'gpt-4o-mini': { ...KNOWN_MODELS['gpt-4o-mini']!, spillover: true } };
const own = ['sluice-jobs', 'sluice-batches', 'sluice-submit', 'sluice-submit-deadletter'];
const team = (id: string, over: Partial<Team> = {}): Team => ({
  id, name: id, weight: 1, guaranteedTpm: {}, maxBacklog: 0, monthlyBudgetUsd: 0, budgetAction: 'warn', lane: 2, disabled: false, createdAt: 0, updatedAt: 0, ...over,
});

function port(spend = 0) {
  const created: JobRecord[] = [];
  const sent: Array<{ id: string; lane: number }> = [];
  const keys: Record<string, Team> = { 'key-alpha': team('alpha'), 'key-broke': team('broke', { monthlyBudgetUsd: 1, budgetAction: 'stop' }) };
  const deps: SubmissionPort = {
    authenticate: async (key) => (keys[key] ? { ok: true, team: keys[key] } : { ok: false, code: 'invalid_api_key', message: 'no such key' }),
    teamLimit: (t) => teamRefusal(t, spend),
    create: async (job) => (created.push(job), true),
    get: async () => undefined,
    enqueue: async (job, lane) => void sent.push({ id: job.id, lane }),
  };
  return { deps, created, sent };
}

const message = (extra: Record<string, unknown> = {}) => ({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, api_key: 'key-alpha', ...extra });
const accept = (m: Record<string, unknown>, p = port()) => acceptSubmission(m, p.deps, { models, now: 0, ownQueues: own });

test("a submission bills the key's team, never metadata.team, and travels in that team's lane", async () => {
  const p = port();
  const outcome = await accept(message({ metadata: { team: 'victim' } }), p);
  assert.equal(outcome.kind, 'queued');
  assert.equal(p.created[0]!.team, 'alpha');
  assert.deepEqual(p.sent.map((s) => s.lane), [2]);
});

test('no key, a bad key, a stopped team and a reply_to naming a Sluice queue are dead-lettered before anything is written', async () => {
  const { api_key: _k, ...unsigned } = message();
  const cases: Array<[Record<string, unknown>, string, number]> = [
    [unsigned, 'missing_credentials', 0],
    [message({ api_key: 'key-nobody' }), 'invalid_api_key', 0],
    [message({ api_key: 'key-broke' }), 'team_budget_exceeded', 5],
    [message({ reply_to: 'sluice-jobs-l1-batch' }), 'reply_to_reserved', 0],
    [message({ reply_to: 'sluice-submit-deadletter' }), 'reply_to_reserved', 0],
  ];
  for (const [m, code, spend] of cases) {
    const p = port(spend);
    const outcome = await accept(m, p);
    assert.equal(outcome.kind === 'dead-letter' && outcome.reason.code, code);
    assert.equal(p.created.length, 0);
  }
  assert.equal((await accept(message({ reply_to: 'my-replies' }))).kind, 'queued');
});

test('own queues include their lanes and poison queues; the dead-letter copy carries no key', () => {
  assert.ok(isOwnQueue('sluice-jobs', own) && isOwnQueue('sluice-jobs-poison', own) && isOwnQueue('sluice-submit-poison', own));
  assert.ok(!isOwnQueue('sluice-jobsx', own) && !isOwnQueue('team-replies', own));
  assert.deepEqual(redactSubmission({ api_key: 'slk_x', client_id: 'c' }), { client_id: 'c' });
  const key = `slk_${'a'.repeat(16)}_${'B'.repeat(43)}`;
  assert.equal(redactSubmission(`broken ${key}`), `broken slk_${'a'.repeat(16)}_***`);
});
