/**
 * Past retention over real HTTP: an expired job answers 404 job_expired while its record lingers and job_not_found
 * (naming retention) once swept; a file past its expiry answers 404 file_expired before and after the sweep. Uploads
 * take OpenAI's expires_after, from plain multipart and from the openai SDK, and show expires_at.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { startStack, type RunningStack } from '../../local/stack';
import { storageClients } from '../../src/azure/storage';
import { JobStore } from '../../src/azure/jobStore';
import { FileStore } from '../../src/azure/fileStore';
import { UsageTable } from '../../src/azure/usageTable';
import { buildUsageRow } from '../../src/core/telemetry/usage';
import { runRetentionSweep } from '../../src/core/retention/sweep';
import { getServices } from '../../src/runtime/services';
import { call } from '../support/api';
import { DAYS, finishedJob, jobId, uploadFile } from './support';

let stack: RunningStack;
let jobs: JobStore;
let files: FileStore;
let usage: UsageTable;

before(async () => {
  stack = await startStack();
  const storage = storageClients({ connectionString: stack.connectionString });
  jobs = new JobStore(storage.table('sluicejobs'), storage.container('sluice-payloads'));
  files = new FileStore(storage.container('sluice-files'), storage.table('sluicebatches'));
  usage = new UsageTable(storage.table('sluiceusage'));
});

after(async () => {
  await stack?.stop();
});

/**
 * Runs the app's own sweep wiring until a run deletes nothing. Each call is a new hour on the clock: a files pass
 * starts at most hourly, and an earlier test's sweep started one.
 */
let hours = 0;
async function sweep(): Promise<void> {
  const offset = ++hours * 3_700_000;
  for (let i = 0; i < 50; i += 1) {
    const r = await runRetentionSweep({ ...getServices().retention.sweepDeps(), clock: { now: () => Date.now() + offset } });
    if (Object.values(r.deleted).every((n) => n === 0)) return;
  }
}

test('a job past retention answers 404 job_expired, and job_not_found naming retention once swept', { timeout: 120_000 }, async () => {
  const old = finishedJob(jobId(0xabc), Date.now() - DAYS(31), true);
  await jobs.create(old);
  await usage.insert(buildUsageRow(old, old.completedAt!));
  const live = finishedJob(jobId(0xabd), Date.now() - DAYS(29));
  await jobs.create(live);
  // The lifecycle policy may delete payload blobs before the sweep reaches the row: still a 404, never a 500.
  await storageClients({ connectionString: stack.connectionString }).container('sluice-payloads').getBlockBlobClient(`responses/${old.id}.json`).delete();
  const expired = await call(stack.baseUrl, `/v1/jobs/${old.id}`);
  assert.equal(expired.status, 404, JSON.stringify(expired.body));
  assert.equal(expired.body.error.code, 'job_expired');
  assert.equal((await call(stack.baseUrl, `/v1/jobs/${live.id}`)).status, 200);
  const missing = await call(stack.baseUrl, `/v1/jobs/${jobId(0xfff)}`);
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'job_not_found');
  assert.match(missing.body.error.message, /deleted 30 days after they finish/);
  await sweep();
  const swept = await call(stack.baseUrl, `/v1/jobs/${old.id}`);
  assert.equal(swept.status, 404);
  assert.equal(swept.body.error.code, 'job_not_found');
  assert.match(swept.body.error.message, /deleted 30 days after they finish/);
  assert.equal((await call(stack.baseUrl, `/v1/jobs/${live.id}`)).status, 200);
});

test('a file past its expiry answers 404 file_expired, before and after the sweep deletes it', { timeout: 120_000 }, async () => {
  const old = await uploadFile(files, Date.now() - DAYS(31));
  const live = await uploadFile(files, Date.now() - DAYS(29));
  for (const path of [`/v1/files/${old.id}`, `/v1/files/${old.id}/content`]) {
    const res = await call(stack.baseUrl, path);
    assert.equal(res.status, 404, path);
    assert.equal(res.body.error.code, 'file_expired', path);
  }
  assert.equal((await call(stack.baseUrl, `/v1/files/${live.id}`)).status, 200);
  await sweep();
  assert.equal(await files.get(old.id), undefined, 'the sweep deleted it');
  const gone = await call(stack.baseUrl, `/v1/files/${old.id}`);
  assert.equal(gone.body.error.code, 'file_expired', 'its id says it is older than any file is kept');
  assert.equal((await call(stack.baseUrl, `/v1/files/${old.id}`, { method: 'DELETE' })).body.error.code, 'file_expired');
  // An id of today that never existed is simply not found.
  const unknown = `file-${(0xffffffffffff - Date.now()).toString(16).padStart(12, '0')}${randomBytes(8).toString('hex')}`;
  assert.equal((await call(stack.baseUrl, `/v1/files/${unknown}`)).body.error.code, 'file_not_found');
});

test('uploads take expires_after (multipart fields and the openai SDK); expires_at shows the expiry', { timeout: 120_000 }, async () => {
  const upload = async (fields: Record<string, string>) => {
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob(['{"a":1}\n'], { type: 'application/jsonl' }), 'in.jsonl');
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    return call(stack.baseUrl, '/v1/files', { method: 'POST', body: form });
  };
  const plain = await upload({});
  assert.equal(plain.status, 200);
  assert.equal(plain.body.expires_at - plain.body.created_at, 30 * 86_400);
  const hour = await upload({ 'expires_after[anchor]': 'created_at', 'expires_after[seconds]': '3600' });
  assert.equal(hour.status, 200, JSON.stringify(hour.body));
  assert.equal(hour.body.expires_at - hour.body.created_at, 3600);
  assert.equal((await call(stack.baseUrl, `/v1/files/${hour.body.id}`)).body.expires_at, hour.body.expires_at, 'kept with the file');
  for (const [fields, param] of [
    [{ 'expires_after[anchor]': 'created_at', 'expires_after[seconds]': '60' }, 'expires_after.seconds'],
    [{ 'expires_after[anchor]': 'last_active_at', 'expires_after[seconds]': '3600' }, 'expires_after.anchor'],
  ] as const) {
    const bad = await upload(fields);
    assert.equal(bad.status, 400, JSON.stringify(fields));
    assert.equal(bad.body.error.param, param);
  }
  const client = new OpenAI({ baseURL: `${stack.baseUrl}/v1`, apiKey: stack.apiKey!, maxRetries: 0 });
  const viaSdk = await client.files.create({ file: await toFile(Buffer.from('{"a":1}\n'), 'sdk.jsonl'), purpose: 'batch', expires_after: { anchor: 'created_at', seconds: 7200 } });
  assert.equal(viaSdk.expires_at! - viaSdk.created_at, 7200);
});
