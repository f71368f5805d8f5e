// Through real HTTP: a member key reaches no admin route, cannot read another team's usage by asking for it, and
// cannot read another team's batch results.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RunningStack } from '../../local/stack';
import { call, eventually } from '../support/api';
import { batchLine, jsonl, startBatchStack } from '../batch/support';
import { filesUnder, read } from '../infra/infraSource';
import { getTelemetryServices } from '../../src/runtime/telemetry';
import { ROLLUP_PARTITIONS, scopeKey } from '../../src/core/telemetry/partitions';
import { monthOf } from '../../src/core/telemetry/windows';
import { parseKey } from '../../src/core/teams/model';

let stack: RunningStack;
/** A key of team "other", made by the admin. */
let otherKey: string;

before(async () => {
  stack = await startBatchStack();
  const admin = { key: stack.adminKey! };
  assert.equal((await call(stack.baseUrl, '/v1/admin/teams', { ...admin, json: { id: 'other' } })).status, 201);
  const minted = await call(stack.baseUrl, '/v1/admin/teams/other/keys', { ...admin, json: {} });
  assert.equal(minted.status, 201, JSON.stringify(minted.body));
  otherKey = minted.body.key as string;
});
after(async () => {
  await stack?.stop();
});

/** Every admin route as src/functions registers it: route template and methods. */
function adminRoutes(): { route: string; methods: string[] }[] {
  const out: { route: string; methods: string[] }[] = [];
  for (const file of filesUnder('src/functions', '.ts')) {
    const source = read(file);
    for (const m of source.matchAll(/app\.http\('\w+',\s*\{\s*methods:\s*\[([^\]]*)\],\s*route:\s*'(v1\/admin[^']*)'/g)) {
      out.push({ route: m[2]!, methods: [...m[1]!.matchAll(/'(\w+)'/g)].map((x) => x[1]!) });
    }
    // A registration in another shape would be skipped silently above.
    const declared = source.match(/route:\s*'v1\/admin/g)?.length ?? 0;
    assert.equal(out.filter((r) => source.includes(`route: '${r.route}'`)).length, declared, `${file}: every admin registration is read`);
  }
  return out;
}

/** A body the admin would get a 2xx for, so only the role check can refuse it. */
function validBody(route: string, method: string): unknown {
  if (method === 'POST' && route === 'v1/admin/teams') return { id: 'made-by-member' };
  if (method === 'POST') return { role: 'admin' };
  if (method === 'PATCH') return { budget_action: 'stop', monthly_budget_usd: 0.01 };
  return undefined;
}

test('a member key gets 403 on every admin route and method, for its own team and another, and changes nothing', async () => {
  const routes = adminRoutes();
  assert.ok(routes.length >= 4, `admin routes found in src/functions/admin.ts: ${JSON.stringify(routes)}`);
  const memberKey = stack.apiKey!;
  const ownKeyId = parseKey(memberKey)!.id;
  const otherKeyId = parseKey(otherKey)!.id;
  const admin = { key: stack.adminKey! };
  const keysBefore = {
    default: (await call(stack.baseUrl, '/v1/admin/teams/default/keys', admin)).body.data.length as number,
    other: (await call(stack.baseUrl, '/v1/admin/teams/other/keys', admin)).body.data.length as number,
  };

  let calls = 0;
  for (const { route, methods } of routes) {
    for (const [team, keyId] of [['default', ownKeyId], ['other', otherKeyId]] as const) {
      const path = `/${route.replace('{team}', team).replace('{key}', keyId)}`;
      for (const method of methods) {
        const json = validBody(route, method);
        const res = await call(stack.baseUrl, path, { method, key: memberKey, ...(json !== undefined ? { json } : {}) });
        assert.equal(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`);
        assert.deepEqual(Object.keys(res.body), ['error'], `${method} ${path}: an error body only`);
        calls += 1;
      }
    }
  }
  assert.ok(calls >= 14, `every method of every route was tried (${calls})`);

  assert.equal((await call(stack.baseUrl, '/v1/admin/teams/made-by-member', admin)).status, 404, 'no team was created');
  for (const team of ['default', 'other'] as const) {
    const now = await call(stack.baseUrl, `/v1/admin/teams/${team}`, admin);
    assert.notEqual(now.body.budget_action, 'stop', `team ${team} was not changed`);
    assert.equal((await call(stack.baseUrl, `/v1/admin/teams/${team}/keys`, admin)).body.data.length, keysBefore[team], `no key of ${team} was made`);
  }
  assert.equal((await call(stack.baseUrl, '/v1/me', { key: memberKey })).status, 200, 'the member key was not revoked');
  assert.equal((await call(stack.baseUrl, '/v1/me', { key: otherKey })).status, 200, "the other team's key was not revoked");
});

test("a member's ?team= on /v1/usage is ignored: it answers the member's own team", async () => {
  // Month-to-date spend for both teams, as the rollup writes it.
  const { rollup } = getTelemetryServices();
  const now = Date.now();
  for (const [team, costUsd] of [['default', 0.25], ['other', 7.5]] as const) {
    await rollup.upsert(ROLLUP_PARTITIONS.monthToDate(monthOf(now)), scopeKey({ kind: 'team', team }), { scope: 'team', name: team, costUsd, unpricedJobs: 0, hourly: '{}', firstAt: now });
  }

  const asAdmin = await call(stack.baseUrl, '/v1/usage?team=other', { key: stack.adminKey! });
  assert.equal(asAdmin.status, 200);
  assert.equal(asAdmin.body.team, 'other', 'an admin can ask for one team');
  assert.ok(asAdmin.body.month_to_date.scopes.some((s: { name: string }) => s.name === 'other'), "the other team's spend is there to leak");

  for (const query of ['?team=other', '?team=other&group_by=team', '?group_by=team&team=other&team=default']) {
    const res = await call(stack.baseUrl, `/v1/usage${query}`, { key: stack.apiKey! });
    assert.equal(res.status, 200, query);
    assert.equal(res.body.team, 'default', `${query}: the member's own team`);
    assert.ok(res.body.data.every((g: { team?: string }) => g.team === undefined || g.team === 'default'), `${query}: groups`);
    const scopes = res.body.month_to_date.scopes as { scope: string; name: string }[];
    assert.ok(scopes.every((s) => s.scope === 'team' && s.name === 'default'), `${query}: month to date shows only the member's team`);
    assert.ok(!JSON.stringify(res.body).includes('other'), `${query}: nothing about the other team`);
  }
});

test("another team's batch output and error files answer 404, content and metadata alike", async () => {
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([jsonl([batchLine(0), batchLine(1, { content: 'please SLUICE_TRIGGER_CONTENT_FILTER now' })])]), 'in.jsonl');
  const file = await call(stack.baseUrl, '/v1/files', { method: 'POST', key: otherKey, body: form });
  assert.equal(file.status, 200, JSON.stringify(file.body));
  const created = await call(stack.baseUrl, '/v1/batches', { key: otherKey, json: { input_file_id: file.body.id, endpoint: '/v1/chat/completions', completion_window: '24h' } });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const done = await eventually('the batch to complete', async () => {
    const b = await call(stack.baseUrl, `/v1/batches/${created.body.id}`, { key: otherKey });
    return b.body.status === 'completed' ? b.body : undefined;
  });
  const files = { output: done.output_file_id as string, error: done.error_file_id as string };
  assert.ok(files.output && files.error, 'the batch has an output and an error file');

  for (const [kind, id] of Object.entries(files)) {
    // The owning team reads them: the 404s below are about the caller, not about missing files.
    assert.equal((await call(stack.baseUrl, `/v1/files/${id}`, { key: otherKey })).status, 200, `${kind} metadata for its team`);
    assert.equal((await call(stack.baseUrl, `/v1/files/${id}/content`, { key: otherKey })).status, 200, `${kind} content for its team`);
    for (const path of [`/v1/files/${id}`, `/v1/files/${id}/content`]) {
      const res = await call(stack.baseUrl, path, { key: stack.apiKey! });
      assert.equal(res.status, 404, `${kind} ${path} for another team`);
      assert.deepEqual(Object.keys(res.body), ['error']);
      assert.ok(!JSON.stringify(res.body).includes('SLUICE_TRIGGER') && !JSON.stringify(res.body).includes('in.jsonl'), 'nothing of the file leaks');
    }
    assert.equal((await call(stack.baseUrl, `/v1/files/${id}`, { method: 'DELETE', key: stack.apiKey! })).status, 404, `${kind}: no delete`);
    assert.equal((await call(stack.baseUrl, `/v1/files/${id}`, { key: otherKey })).status, 200, `${kind} still there after the refused delete`);
  }
  const listed = await call(stack.baseUrl, '/v1/files', { key: stack.apiKey! });
  assert.ok(!listed.body.data.some((f: { id: string }) => f.id === files.output || f.id === files.error), 'not in the other team’s list');
});
