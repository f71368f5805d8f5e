/**
 * Usage rows on Table Storage (Azurite) carry kind, TTFT, cache hits, saved cost and abandonment to the rollup; rows
 * written without them (before sync requests existed) read as jobs with no TTFT.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { UsageTable } from '../../src/azure/usageTable';
import { buildUsageRow, type UsageRow } from '../../src/core/telemetry/usage';
import { newJob } from '../support/fakes';
import { tableClientFromConnectionString } from '../support/storage';

let azurite: RunningAzurite;
before(async () => {
  azurite = await startAzurite({ inMemory: true });
});
after(async () => {
  await azurite.stop();
});

const AT = Date.UTC(2026, 10, 23, 19, 0, 30);

function row(id: string, over: Partial<UsageRow> = {}): UsageRow {
  const job = newJob({ id, status: 'succeeded', team: 'ads', createdAt: AT - 1000, startedAt: AT - 900, completedAt: AT, latencyMs: 300, region: 'r', deployment: 'd', response: { model: 'm', choices: [] }, usage: { prompt_tokens: 10, completion_tokens: 2 } });
  return { ...buildUsageRow(job, AT), ...over };
}

test('kind, TTFT, cache hit, saved cost and abandonment round-trip; rows without them read as jobs', async () => {
  const usage = new UsageTable(tableClientFromConnectionString(azurite.connectionString, 'usagekinds'));
  const { kind: _k, ...legacy } = row('job_legacy');
  await usage.insert(legacy);
  await usage.insert(row('job_batch', { kind: 'batch' }));
  await usage.insert(row('sync_stream', { kind: 'sync', ttftMs: 42, abandoned: true }));
  await usage.insert(row('sync_hit', { kind: 'sync', ttftMs: null, cacheHit: true, costUsd: 0, savedUsd: 0.25 }));
  await usage.insert(row('sync_unpriced', { kind: 'sync', ttftMs: 7, savedUsd: null }));
  const read = [];
  for await (const page of usage.rows(legacy.window, '9999')) read.push(...page);
  const view = read
    .map((r) => ({ kind: r.kind, ttftMs: r.ttftMs, abandoned: r.abandoned, cacheHit: r.cacheHit, savedUsd: r.savedUsd, costUsd: r.costUsd }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  assert.deepEqual(view, [
    { kind: 'batch', ttftMs: null, abandoned: false, cacheHit: false, savedUsd: null, costUsd: read.find((r) => r.kind === 'batch')!.costUsd },
    { kind: 'job', ttftMs: null, abandoned: false, cacheHit: false, savedUsd: null, costUsd: read.find((r) => r.kind === 'job')!.costUsd },
    { kind: 'sync', ttftMs: 42, abandoned: true, cacheHit: false, savedUsd: null, costUsd: read.find((r) => r.abandoned)!.costUsd },
    { kind: 'sync', ttftMs: 7, abandoned: false, cacheHit: false, savedUsd: null, costUsd: read.find((r) => r.ttftMs === 7)!.costUsd },
    { kind: 'sync', ttftMs: null, abandoned: false, cacheHit: true, savedUsd: 0.25, costUsd: 0 },
  ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))));
});
