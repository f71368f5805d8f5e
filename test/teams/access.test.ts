// Through real HTTP: key lifecycle, 401s that write nothing, per-team isolation of jobs, batches, files
// and usage, the admin role, the monthly budget stop, and a scan of everything logged and stored for key material.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TableServiceClient, TableClient } from '@azure/data-tables';
import { QueueServiceClient } from '@azure/storage-queue';
import { BlobServiceClient } from '@azure/storage-blob';
import { startStack, type RunningStack } from '../../local/stack';
import { call, chatJob, eventually } from '../support/api';
import { uploadText, createBatch } from '../batch/support';
import { getTelemetryServices } from '../../src/runtime/telemetry';
import { refreshTeamSpend } from '../../src/runtime/teamLimits';
import { ROLLUP_PARTITIONS, scopeKey } from '../../src/core/telemetry/rollup';
import { monthOf } from '../../src/core/telemetry/windows';
import { mintKey, parseKey } from '../../src/core/teams/model';
import { TeamStore } from '../../src/azure/teamTable';

let stack: RunningStack;
/** Every key this test saw, to scan logs and storage for afterwards. */
const secrets: string[] = [];

before(async () => {
  // An Entra ID admin mapping as infra would set it, but no App Service Authentication in front (as under npm start).
  stack = await startStack({ env: { SLUICE_AUTH_CACHE_MS: '30000', SLUICE_ENTRA_ADMINS: 'role:Sluice.Admin', WEBSITE_AUTH_ENABLED: 'false' } });
  secrets.push(stack.apiKey!, stack.adminKey!);
});
after(async () => {
  await stack?.stop();
});

const admin = () => ({ key: stack.adminKey! });

async function newTeamKey(team: string, body: Record<string, unknown> = {}): Promise<string> {
  const created = await call(stack.baseUrl, `/v1/admin/teams/${team}/keys`, { ...admin(), json: body });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  secrets.push(created.body.key);
  return created.body.key as string;
}

async function jobsQueueDepths(): Promise<number> {
  const service = QueueServiceClient.fromConnectionString(stack.connectionString);
  let total = 0;
  for await (const q of service.listQueues()) {
    if (!q.name.startsWith('sluice-jobs')) continue;
    total += (await service.getQueueClient(q.name).getProperties()).approximateMessagesCount ?? 0;
  }
  return total;
}

async function jobRowCount(): Promise<number> {
  const table = TableClient.fromConnectionString(stack.connectionString, 'sluicejobs', { allowInsecureConnection: true });
  let n = 0;
  try {
    for await (const _ of table.listEntities({ queryOptions: { select: ['PartitionKey'] } })) n += 1;
  } catch {
    return 0; // no table yet
  }
  return n;
}

test('no key, a malformed key or a wrong secret: 401 in the OpenAI shape, and nothing is written', async () => {
  const rowsBefore = await jobRowCount();
  const depthBefore = await jobsQueueDepths();
  const wrongSecret = stack.apiKey!.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
  for (const key of [null, 'sk-not-a-sluice-key', wrongSecret]) {
    const res = await call(stack.baseUrl, '/v1/jobs', { json: chatJob('hello'), key });
    assert.equal(res.status, 401, `key ${key === null ? 'absent' : 'bad'}`);
    assert.equal(typeof res.body.error.message, 'string');
    assert.match(res.body.error.code, /missing_credentials|invalid_api_key/);
    assert.ok(!JSON.stringify(res.body).includes(wrongSecret), 'the presented key is never echoed');
  }
  for (const path of ['/v1/jobs/job_00000000000000000000000000000000', '/v1/files', '/v1/batches', '/v1/usage', '/v1/admin/teams']) {
    assert.equal((await call(stack.baseUrl, path, { key: null })).status, 401, path);
  }
  assert.equal(await jobRowCount(), rowsBefore);
  assert.equal(await jobsQueueDepths(), depthBefore);
});

test('a forged x-ms-client-principal without App Service Authentication is refused (401) and mints nothing', async () => {
  const forged = Buffer.from(JSON.stringify({ auth_typ: 'aad', claims: [{ typ: 'roles', val: 'Sluice.Admin' }, { typ: 'oid', val: 'attacker' }] })).toString('base64');
  const keysBefore = (await call(stack.baseUrl, '/v1/admin/teams/default/keys', admin())).body.data.length as number;
  const variants: Record<string, string>[] = [{ 'x-ms-client-principal': forged }, { 'x-ms-client-principal': forged, 'x-ms-client-principal-idp': 'aad' }];
  for (const headers of variants) {
    const me = await call(stack.baseUrl, '/v1/me', { key: null, headers });
    assert.equal(me.status, 401, JSON.stringify(me.body));
    assert.equal(me.body.error.code, 'missing_credentials');
    const minted = await call(stack.baseUrl, '/v1/admin/teams/default/keys', { key: null, headers, json: { role: 'admin' } });
    assert.equal(minted.status, 401, JSON.stringify(minted.body));
  }
  assert.equal((await call(stack.baseUrl, '/v1/admin/teams/default/keys', admin())).body.data.length, keysBefore);
});

test('the teams table inserts a minted key only where no key with that id exists', async () => {
  const store = new TeamStore(TableClient.fromConnectionString(stack.connectionString, 'sluiceteams', { allowInsecureConnection: true }));
  const id = parseKey(stack.apiKey!)!.id;
  const original = await store.getKey(id);
  assert.equal(original?.team, 'default');
  const impostor = { ...mintKey('admin', { role: 'admin', now: Date.now() }).record, id };
  assert.equal(await store.createKey(impostor), false);
  assert.deepEqual(await store.getKey(id), original, 'the existing key is untouched');
  assert.equal((await call(stack.baseUrl, '/v1/me')).body.team.id, 'default');
});

test('key lifecycle: create (shown once), use as api-key or Bearer, list without secrets, revoke, expire', async () => {
  const team = await call(stack.baseUrl, '/v1/admin/teams', { ...admin(), json: { id: 'alpha', weight: 2 } });
  assert.equal(team.status, 201, JSON.stringify(team.body));
  assert.equal(team.body.weight, 2);
  assert.equal((await call(stack.baseUrl, '/v1/admin/teams', { ...admin(), json: { id: 'alpha' } })).status, 409);
  assert.equal((await call(stack.baseUrl, '/v1/admin/teams', { ...admin(), json: { id: 'Not Valid' } })).status, 400);

  const key = await newTeamKey('alpha', { name: 'ci' });
  const viaHeader = await call(stack.baseUrl, '/v1/me', { key });
  assert.equal(viaHeader.status, 200);
  assert.equal(viaHeader.body.team.id, 'alpha');
  assert.equal(viaHeader.body.role, 'member');
  const viaBearer = await call(stack.baseUrl, '/v1/me', { key: null, headers: { authorization: `Bearer ${key}` } });
  assert.equal(viaBearer.body.team.id, 'alpha');

  const listed = await call(stack.baseUrl, '/v1/admin/teams/alpha/keys', admin());
  assert.equal(listed.status, 200);
  const text = JSON.stringify(listed.body);
  assert.ok(!text.includes(parseKey(key)!.secret), 'listing never shows the secret');
  assert.ok(!/"hash"/.test(text), 'listing never shows the hash');
  const keyId = parseKey(key)!.id;
  assert.equal(listed.body.data.find((k: { id: string }) => k.id === keyId)?.status, 'active');

  // A member cannot use admin routes.
  assert.equal((await call(stack.baseUrl, '/v1/admin/teams', { key })).status, 403);

  const revoked = await call(stack.baseUrl, `/v1/admin/teams/alpha/keys/${keyId}`, { ...admin(), method: 'DELETE' });
  assert.equal(revoked.status, 200);
  assert.equal(revoked.body.status, 'revoked');
  const after = await call(stack.baseUrl, '/v1/jobs', { json: chatJob('after revoke'), key });
  assert.equal(after.status, 401);

  const shortLived = await newTeamKey('alpha', { expires_in_s: 2 });
  assert.equal((await call(stack.baseUrl, '/v1/me', { key: shortLived })).status, 200);
  await eventually('the key to expire', async () => (await call(stack.baseUrl, '/v1/me', { key: shortLived })).status === 401, 15_000, 250);
});

test("isolation: another team's job, file and batch answer 404; lists and usage show only the caller's", async () => {
  const beta = await call(stack.baseUrl, '/v1/admin/teams', { ...admin(), json: { id: 'beta' } });
  assert.equal(beta.status, 201);
  const betaKey = await newTeamKey('beta');

  const submitted = await call(stack.baseUrl, '/v1/jobs', { json: chatJob('beta job', { metadata: { team: 'default' } }), key: betaKey });
  assert.equal(submitted.status, 202);
  const id = submitted.body.id as string;
  await eventually(`job ${id} to finish`, async () => ['succeeded', 'failed'].includes((await call(stack.baseUrl, `/v1/jobs/${id}`, { key: betaKey })).body.status));
  const own = await call(stack.baseUrl, `/v1/jobs/${id}`, { key: betaKey });
  assert.equal(own.status, 200);
  assert.equal(own.body.status, 'succeeded', 'the job ran in beta’s queue lane');
  const other = await call(stack.baseUrl, `/v1/jobs/${id}`); // the default team's key
  assert.equal(other.status, 404);
  assert.deepEqual(Object.keys(other.body), ['error']);
  assert.equal((await call(stack.baseUrl, `/v1/jobs/${id}`, admin())).status, 200, 'admins see every team');

  const file = await call(stack.baseUrl, '/v1/files', {
    method: 'POST',
    key: betaKey,
    body: (() => {
      const form = new FormData();
      form.append('purpose', 'batch');
      form.append('file', new Blob([JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 } }) + '\n']), 'in.jsonl');
      return form;
    })(),
  });
  assert.equal(file.status, 200, JSON.stringify(file.body));
  const fileId = file.body.id as string;
  for (const path of [`/v1/files/${fileId}`, `/v1/files/${fileId}/content`]) assert.equal((await call(stack.baseUrl, path)).status, 404, path);
  assert.equal((await call(stack.baseUrl, `/v1/files/${fileId}`, { method: 'DELETE' })).status, 404);
  const defaultFiles = await call(stack.baseUrl, '/v1/files');
  assert.ok(!defaultFiles.body.data.some((f: { id: string }) => f.id === fileId));
  const crossBatch = await createBatch(stack.baseUrl, fileId);
  assert.equal(crossBatch.status, 404, "a batch from another team's file is refused like a missing file");

  const batch = await call(stack.baseUrl, '/v1/batches', { key: betaKey, json: { input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' } });
  assert.equal(batch.status, 200, JSON.stringify(batch.body));
  const batchId = batch.body.id as string;
  assert.equal((await call(stack.baseUrl, `/v1/batches/${batchId}`)).status, 404);
  assert.equal((await call(stack.baseUrl, `/v1/batches/${batchId}/cancel`, { method: 'POST' })).status, 404);
  assert.ok(!(await call(stack.baseUrl, '/v1/batches')).body.data.some((b: { id: string }) => b.id === batchId));
  assert.ok((await call(stack.baseUrl, '/v1/batches', { key: betaKey })).body.data.some((b: { id: string }) => b.id === batchId));

  const usage = await call(stack.baseUrl, '/v1/usage?group_by=team');
  assert.equal(usage.status, 200);
  assert.equal(usage.body.team, 'default');
  assert.ok(usage.body.data.every((g: { team: string }) => g.team === 'default'));
  assert.ok(usage.body.month_to_date.scopes.every((s: { scope: string; name: string }) => s.scope === 'team' && s.name === 'default'));

  // Uploading a second file the old way (helper without key override) belongs to the default team, not beta.
  const mine = await uploadText(stack.baseUrl, `${JSON.stringify({ custom_id: 'x', method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] } })}\n`);
  assert.equal((await call(stack.baseUrl, `/v1/files/${mine.body.id}`, { key: betaKey })).status, 404);
});

test('a team over its monthly budget with budget_action "stop" is refused (429, nothing written); "warn" keeps accepting', async () => {
  assert.equal((await call(stack.baseUrl, '/v1/admin/teams', { ...admin(), json: { id: 'gamma', monthly_budget_usd: 1, budget_action: 'stop' } })).status, 201);
  const key = await newTeamKey('gamma');
  assert.equal((await call(stack.baseUrl, '/v1/jobs', { json: chatJob('under budget'), key })).status, 202);

  // The rollup's month-to-date row for the team says $1.50 spent.
  const { rollup } = getTelemetryServices();
  const now = Date.now();
  await rollup.upsert(ROLLUP_PARTITIONS.monthToDate(monthOf(now)), scopeKey({ kind: 'team', team: 'gamma' }), { scope: 'team', name: 'gamma', costUsd: 1.5, unpricedJobs: 0, hourly: '{}', firstAt: now });
  await refreshTeamSpend('gamma'); // submits read spend in the background; take the new row in now
  const rowsBefore = await jobRowCount();
  const refused = await call(stack.baseUrl, '/v1/jobs', { json: chatJob('over budget'), key });
  assert.equal(refused.status, 429);
  assert.equal(refused.body.error.code, 'team_budget_exceeded');
  assert.equal(refused.body.error.type, 'insufficient_quota');
  assert.equal(await jobRowCount(), rowsBefore);

  assert.equal((await call(stack.baseUrl, '/v1/admin/teams/gamma', { ...admin(), method: 'PATCH', json: { budget_action: 'warn' } })).status, 200);
  assert.equal((await call(stack.baseUrl, '/v1/jobs', { json: chatJob('warn only'), key })).status, 202);
  // Other teams are unaffected throughout.
  assert.equal((await call(stack.baseUrl, '/v1/jobs', { json: chatJob('default team') })).status, 202);
});

test('no key material appears in logs, tables, queue messages or blob metadata', async () => {
  const needles = secrets.flatMap((k) => [k, parseKey(k)!.secret]);
  const haystacks: Array<[string, string]> = stack.logs().map((l, i) => [`log line ${i}`, l]);
  const tables = TableServiceClient.fromConnectionString(stack.connectionString, { allowInsecureConnection: true });
  for await (const t of tables.listTables()) {
    const client = TableClient.fromConnectionString(stack.connectionString, t.name!, { allowInsecureConnection: true });
    for await (const e of client.listEntities()) haystacks.push([`table ${t.name}`, JSON.stringify(e)]);
  }
  const queues = QueueServiceClient.fromConnectionString(stack.connectionString);
  for await (const q of queues.listQueues()) {
    const peeked = await queues.getQueueClient(q.name).peekMessages({ numberOfMessages: 32 });
    for (const m of peeked.peekedMessageItems) haystacks.push([`queue ${q.name}`, `${m.messageText} ${Buffer.from(m.messageText, 'base64').toString('utf8')}`]);
  }
  const blobs = BlobServiceClient.fromConnectionString(stack.connectionString);
  for await (const c of blobs.listContainers()) {
    for await (const b of blobs.getContainerClient(c.name).listBlobsFlat({ includeMetadata: true })) {
      haystacks.push([`blob ${c.name}/${b.name}`, JSON.stringify(b.metadata ?? {})]);
      if ((b.properties.contentLength ?? 0) < 1_000_000) haystacks.push([`blob ${c.name}/${b.name} content`, (await blobs.getContainerClient(c.name).getBlobClient(b.name).downloadToBuffer()).toString('utf8')]);
    }
  }
  assert.ok(haystacks.length > 20, `scanned ${haystacks.length} items`);
  for (const [where, text] of haystacks) {
    for (const needle of needles) assert.ok(!text.includes(needle), `key material found in ${where}`);
  }
});
