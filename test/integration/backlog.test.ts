/**
 * Backlog limits per team, through real HTTP against Azurite with no worker running (the queue only fills): one
 * team's flood is refused at its fair part of SLUICE_MAX_BACKLOG while other teams keep submitting, and a team's own
 * max_backlog counts its own jobs, not its queue lane's. Then a worker drains the queue and counts the jobs out.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { startStack, type RunningStack } from '../../local/stack';
import { call, chatJob, eventually, waitForJob } from '../support/api';

const MAX_BACKLOG = 10;
let stack: RunningStack;

before(async () => {
  stack = await startStack({ workers: 1, env: { SLUICE_MAX_BACKLOG: String(MAX_BACKLOG) } });
  // The only worker runs in its own process: without it, nothing drains the queue.
  const worker = stack.workerProcesses[0]!;
  const exited = once(worker, 'exit');
  stack.killWorker(0, 'SIGKILL');
  await exited;
});

after(async () => {
  await stack?.stop();
});

async function teamWithKey(id: string, settings: Record<string, unknown> = {}): Promise<string> {
  const admin = { key: stack.adminKey! };
  const created = await call(stack.baseUrl, '/v1/admin/teams', { ...admin, json: { id, ...settings } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const key = await call(stack.baseUrl, `/v1/admin/teams/${id}/keys`, { ...admin, json: {} });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  return key.body.key as string;
}

const submit = (key: string, content: string) => call(stack.baseUrl, '/v1/jobs', { key, json: chatJob(content) });

test("one team's backlog never makes another team's submit answer 429", async () => {
  const home = await call(stack.baseUrl, '/v1/admin/teams/default', { key: stack.adminKey! });
  assert.equal(home.status, 200, JSON.stringify(home.body));
  const quietKey = await teamWithKey('quiet');
  // Same queue lane as the flooding team, with a limit of its own.
  const lanemateKey = await teamWithKey('lanemate', { lane: home.body.lane, max_backlog: 3 });

  let accepted = 0;
  let refusal: Awaited<ReturnType<typeof submit>> | undefined;
  for (let i = 0; i < 500 && !refusal; i += 1) {
    const res = await submit(stack.apiKey!, `flood ${i}`);
    if (res.status === 202) accepted += 1;
    else refusal = res;
  }
  assert.ok(refusal, 'the flooding team is refused in the end');
  assert.equal(refusal.status, 429, JSON.stringify(refusal.body));
  assert.equal(refusal.body.error.code, 'backlog_full');
  assert.ok(Number(refusal.headers.get('retry-after')) >= 1);
  assert.ok(accepted >= MAX_BACKLOG, `the flooding team had ${accepted} jobs accepted before the fleet limit`);

  for (let i = 0; i < 3; i += 1) {
    const res = await submit(quietKey, `quiet ${i}`);
    assert.equal(res.status, 202, `quiet submit ${i}: ${JSON.stringify(res.body)}`);
  }
  for (let i = 0; i < 3; i += 1) {
    const res = await submit(lanemateKey, `lanemate ${i}`);
    assert.equal(res.status, 202, `lanemate submit ${i}: ${JSON.stringify(res.body)}`);
  }
  const full = await submit(lanemateKey, 'lanemate over');
  assert.equal(full.status, 429, JSON.stringify(full.body));
  assert.equal(full.body.error.code, 'team_backlog_full');
  assert.equal((await submit(stack.apiKey!, 'flood again')).body.error?.code, 'backlog_full', 'the flood is still refused');
});

test('once a worker ends its jobs, the team is counted out and admitted again', async () => {
  stack.startWorker();
  const admitted = await eventually('the flooding team to be admitted again', async () => {
    const res = await submit(stack.apiKey!, 'after the drain');
    return res.status === 202 ? res : undefined;
  }, 120_000, 500);
  await waitForJob(stack.baseUrl, admitted.body.id, ['succeeded'], 120_000);
});
