/**
 * The Application Insights path end to end: the real applicationinsights 3.x SDK in child processes sends over TLS
 * to a local ingestion endpoint (throwaway certificate made with openssl, trusted via NODE_EXTRA_CA_CERTS), fed by
 * the real rollup over Azurite. Two rollup processes race; every window's metrics arrive once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createServer } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { startAzurite } from '../../local/azurite';
import { WATERMARK } from '../../src/core/telemetry/rollup';
import { EVENTS, METRIC_NAMES, MODEL_CALL_DEPENDENCY, WINDOW_METRICS } from '../../src/core/telemetry/names';
import { buildUsageRow } from '../../src/core/telemetry/usage';
import { windowIso, windowOf } from '../../src/core/telemetry/windows';
import { RollupTable } from '../../src/azure/rollupTable';
import { UsageTable } from '../../src/azure/usageTable';
import { tableClientFromConnectionString } from '../support/storage';
import { newJob } from '../support/fakes';

interface Envelope {
  name: string;
  data: { baseType: string; baseData: { name?: string; metrics?: Array<{ name: string; value: number }>; properties?: Record<string, string>; measurements?: Record<string, number>; resultCode?: string; duration?: string } };
}

const T0 = Date.UTC(2026, 10, 23, 19, 0, 0);

test('rollup metrics, events and model-call dependencies reach Application Insights once, over TLS', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ai-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const envelopes: Envelope[] = [];
  const server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const text = body.toString('utf8').trim();
      const items: Envelope[] = text.startsWith('[') ? JSON.parse(text) : text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      if (req.url?.includes('/track')) envelopes.push(...items);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const azurite = await startAzurite({ inMemory: true, rootDir: resolve(__dirname, '..', '..', '..') });
  try {
    const usage = new UsageTable(tableClientFromConnectionString(azurite.connectionString, 'aiusage'));
    const state = new RollupTable(tableClientFromConnectionString(azurite.connectionString, 'airollup'));
    await state.create(WATERMARK.partition, WATERMARK.row, { closedThrough: windowOf(T0 - 60_000), claimWindow: '', claimRun: '', leaseUntil: 0, cut: '', history: '[]' });
    // Three windows: 19:00 (6 jobs), 19:01 (4 jobs), 19:02 (2 jobs); teams alternate.
    const counts = [6, 4, 2];
    for (let m = 0; m < counts.length; m += 1) {
      for (let i = 0; i < counts[m]!; i += 1) {
        const at = T0 + m * 60_000 + 1000 + i;
        const job = newJob({
          id: `job_${m}_${i}`, status: 'succeeded', team: i % 2 ? 'search' : 'ads', createdAt: at - 2000, startedAt: at - 1500, completedAt: at, latencyMs: 1200 + i,
          region: 'swedencentral', deployment: 'chat', regionsTried: [{ region: 'swedencentral', deployment: 'chat', at: at - 1300, status: 200, outcome: 'ok' }],
          response: { model: 'gpt-4o-mini-2024-07-18', choices: [{ finish_reason: 'stop' }] }, usage: { prompt_tokens: 1000, completion_tokens: 100 },
        });
        await usage.insert(buildUsageRow(job, at));
      }
    }
    const conn = `InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://127.0.0.1:${port}/`;
    const run = (runId: string, trackCall: boolean) =>
      new Promise<string>((resolveRun, reject) => {
        execFile(
          process.execPath,
          [join(__dirname, 'aiChild.js')],
          {
            env: {
              ...process.env,
              NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'),
              APPLICATIONINSIGHTS_CONNECTION_STRING: conn,
              APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL: 'true',
              AZURE_CONN: azurite.connectionString,
              NOW: String(T0 + 5 * 60_000),
              RUN_ID: runId,
              TRACK_CALL: trackCall ? '1' : '0',
            },
            timeout: 60_000,
          },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolveRun(stdout)),
        );
      });
    const outs = await Promise.all([run('a', true), run('b', false)]);
    const closed = outs.map((o) => (JSON.parse(o) as { closed: string[] }).closed);
    assert.deepEqual([...closed[0]!, ...closed[1]!].sort(), ['202611231900', '202611231901', '202611231902'], 'each window closed by exactly one run');

    const metrics = envelopes.filter((e) => e.data.baseType === 'MetricData');
    const succeeded = metrics.filter((e) => e.data.baseData.metrics?.[0]?.name === WINDOW_METRICS.jobsSucceeded);
    const byWindow = new Map<string, number>();
    for (const e of succeeded) {
      const p = e.data.baseData.properties!;
      assert.ok(p.team && p.model === 'gpt-4o-mini' && p.region === 'swedencentral' && p.deployment === 'chat', JSON.stringify(p));
      byWindow.set(p.window!, (byWindow.get(p.window!) ?? 0) + e.data.baseData.metrics![0]!.value);
    }
    assert.deepEqual(
      [...byWindow.entries()].sort(),
      counts.map((c, m) => [windowIso(windowOf(T0 + m * 60_000)), c]),
      'jobs per window, summed over teams, sent once',
    );
    assert.equal(succeeded.length, 6, 'one series per window × team');
    const cost = metrics.find((e) => e.data.baseData.metrics?.[0]?.name === WINDOW_METRICS.costUsd && e.data.baseData.properties?.team === 'ads' && e.data.baseData.properties?.window === windowIso('202611231900'));
    assert.ok(Math.abs(cost!.data.baseData.metrics![0]!.value - 3 * (1000 * 0.15 + 100 * 0.6) / 1e6) < 1e-9);
    // The SDK adds its own (e.g. _OTELRESOURCE_); ours are all listed in names.ts.
    for (const e of metrics.filter((m) => !m.data.baseData.metrics![0]!.name.startsWith("_"))) assert.ok(METRIC_NAMES.includes(e.data.baseData.metrics![0]!.name), `unlisted metric ${e.data.baseData.metrics![0]!.name}`);

    const budget = envelopes.filter((e) => e.data.baseType === 'EventData' && e.data.baseData.name === EVENTS.budgetThreshold);
    const keys = budget.map((e) => `${e.data.baseData.properties!.basis}|${e.data.baseData.properties!.threshold_pct}`).sort();
    assert.deepEqual(keys, ['actual|100', 'actual|50', 'projected|100', 'projected|50'], 'each threshold once across both processes');

    const deps = envelopes.filter((e) => e.data.baseType === 'RemoteDependencyData');
    const call = deps.find((e) => e.data.baseData.properties?.job_id === 'job_dep_1');
    assert.ok(call, `model call dependency: ${JSON.stringify(deps.map((d) => d.data.baseData))}`);
    assert.ok(call.data.baseData.name!.startsWith(MODEL_CALL_DEPENDENCY), call.data.baseData.name);
    assert.equal(call.data.baseData.resultCode, '429');
    assert.equal(call.data.baseData.properties!.attempt, '2');
    assert.equal(call.data.baseData.properties!.region, 'swedencentral');
  } finally {
    await azurite.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
