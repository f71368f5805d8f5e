// A disabled team and a team stopped at its monthly budget start no work on any path: POST /v1/batches answers as
// POST /v1/jobs does, a running batch fans out no more lines, and a job already queued ends failed with the team's
// code without a model call.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunningStack } from '../../local/stack';
import { call, eventually } from '../support/api';
import { getBatchServices, getServices } from '../../src/runtime/services';
import { prepareBatch } from '../../src/core/batch/api';
import { driveBatch } from '../../src/core/batch/driver';
import { getTelemetryServices } from '../../src/runtime/telemetry';
import { refreshTeamSpend } from '../../src/runtime/teamLimits';
import { prepareJob, parseSubmitBody } from '../../src/core/submit';
import { laneOf } from '../../src/core/teams/lanes';
import { ROLLUP_PARTITIONS, scopeKey } from '../../src/core/telemetry/rollup';
import { monthOf } from '../../src/core/telemetry/windows';
import { batchLine, jsonl, simCallsByJob, startBatchStack } from './support';

let stack: RunningStack;

before(async () => {
  // The worker's team cache refreshes every second, so a team change reaches it promptly.
  stack = await startBatchStack({ env: { SLUICE_AUTH_CACHE_MS: '1000' } });
});

after(async () => {
  await stack?.stop();
});

const admin = () => ({ key: stack.adminKey! });

async function newTeam(id: string, settings: Record<string, unknown> = {}): Promise<string> {
  assert.equal((await call(stack.baseUrl, '/v1/admin/teams', { ...admin(), json: { id, ...settings } })).status, 201);
  const created = await call(stack.baseUrl, `/v1/admin/teams/${id}/keys`, { ...admin(), json: {} });
  assert.equal(created.status, 201);
  return created.body.key as string;
}

/** The rollup's month-to-date row says the team spent `usd`; the spend cache takes it in now. */
async function spent(team: string, usd: number): Promise<void> {
  const now = Date.now();
  await getTelemetryServices().rollup.upsert(ROLLUP_PARTITIONS.monthToDate(monthOf(now)), scopeKey({ kind: 'team', team }), {
    scope: 'team', name: team, costUsd: usd, unpricedJobs: 0, hourly: '{}', firstAt: now,
  });
  await refreshTeamSpend(team);
}

async function upload(key: string): Promise<string> {
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([jsonl([batchLine(0), batchLine(1)])], { type: 'application/jsonl' }), 'input.jsonl');
  const res = await call(stack.baseUrl, '/v1/files', { method: 'POST', body: form, key });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.id as string;
}

const createBatch = (key: string, fileId: string) =>
  call(stack.baseUrl, '/v1/batches', { key, json: { input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' } });

test('a team stopped at its budget creates no batch: 429 team_budget_exceeded, as POST /v1/jobs answers', async () => {
  const key = await newTeam('stopper', { monthly_budget_usd: 1, budget_action: 'stop' });
  const fileId = await upload(key);
  await spent('stopper', 1.5);
  const batchesBefore = (await call(stack.baseUrl, '/v1/batches', admin())).body.data.length as number;
  const refused = await createBatch(key, fileId);
  assert.equal(refused.status, 429, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, 'team_budget_exceeded');
  assert.equal(refused.body.error.type, 'insufficient_quota');
  const job = await call(stack.baseUrl, '/v1/jobs', { key, json: { request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] } } });
  assert.deepEqual([job.status, job.body.error.code], [429, 'team_budget_exceeded'], 'the same answer as a single job');
  assert.equal((await call(stack.baseUrl, '/v1/batches', admin())).body.data.length, batchesBefore, 'nothing was written');

  await call(stack.baseUrl, '/v1/admin/teams/stopper', { ...admin(), method: 'PATCH', json: { budget_action: 'warn' } });
  assert.equal((await createBatch(key, fileId)).status, 200, 'a "warn" team creates batches');
});

/** Puts a job of `team` on its queue lane directly, as if it had been queued before the team changed. */
async function queueJob(team: string, content: string): Promise<string> {
  const { config, jobs, queueFor, teams } = getServices();
  const job = prepareJob(parseSubmitBody({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 5 } }), { models: config.models, now: Date.now(), team });
  assert.ok(await jobs.create(job));
  const lane = (await teams.getTeam(team))!.lane;
  await queueFor(laneOf(lane, job.priority, config.teams.lanes)).send({ id: job.id });
  return job.id;
}

test('a queued job of a disabled or stopped team ends failed with the team code, and no model call is made', async () => {
  await newTeam('sleeper');
  await call(stack.baseUrl, '/v1/admin/teams/sleeper', { ...admin(), method: 'PATCH', json: { disabled: true } });
  await newTeam('spender', { monthly_budget_usd: 1, budget_action: 'stop' });
  await spent('spender', 2);
  // Wait until the worker's team cache has taken both changes in (an event, not a sleep).
  await eventually('the worker to see both teams', async () =>
    getServices().teamLimit('sleeper')?.code === 'team_disabled' && getServices().teamLimit('spender')?.code === 'team_budget_exceeded', 30_000);

  const disabledJob = await queueJob('sleeper', 'queued before the team was disabled');
  const stoppedJob = await queueJob('spender', 'queued before the budget ran out');
  for (const [id, code] of [[disabledJob, 'team_disabled'], [stoppedJob, 'team_budget_exceeded']] as const) {
    const view = await eventually(`job ${id} to end`, async () => {
      const res = await call(stack.baseUrl, `/v1/jobs/${id}`, admin());
      return res.status === 200 && ['succeeded', 'failed'].includes(res.body.status) ? res.body : undefined;
    }, 30_000);
    assert.equal(view.status, 'failed');
    assert.equal(view.error.code, code);
  }
  const calls = simCallsByJob(stack, null);
  assert.equal(calls.get(disabledJob) ?? 0, 0);
  assert.equal(calls.get(stoppedJob) ?? 0, 0);
});

test("a batch of a team disabled after it was created fans out no lines until the team is enabled again", async () => {
  const key = await newTeam('pauser');
  const fileId = await upload(key);
  const batch = getBatchServices();
  // Created directly (no driver message), so this test alone drives it.
  const record = await prepareBatch({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' }, {
    now: Date.now(), completionWindowS: 3600, getFile: (id) => batch.files.get(id), team: 'pauser',
  });
  await batch.batches.create(record);
  const deps = batch.driverDeps();
  assert.equal(await driveBatch(deps, record.id), 'continue'); // validated
  await call(stack.baseUrl, '/v1/admin/teams/pauser', { ...admin(), method: 'PATCH', json: { disabled: true } });
  await eventually('the driver to see the team disabled', async () => getServices().teamLimit('pauser')?.code === 'team_disabled', 30_000);
  assert.equal(await driveBatch(deps, record.id), 'wait');
  assert.equal((await batch.batches.get(record.id))!.batch.cursorLines, 0, 'no line fanned out');

  await call(stack.baseUrl, '/v1/admin/teams/pauser', { ...admin(), method: 'PATCH', json: { disabled: false } });
  await eventually('the driver to see the team enabled', async () => getServices().teamLimit('pauser') === undefined, 30_000);
  assert.equal(await driveBatch(deps, record.id), 'continue');
  assert.equal((await batch.batches.get(record.id))!.batch.cursorLines, 2, 'fan-out resumes');
});
