/**
 * The rollup's figures for past months survive the sweep: usage rows of a month 14 months ago are rolled up, the sweep
 * deletes them at 400 days, and the month's rolled-up tokens, jobs and cost read the same. Rows the rollup has not
 * counted yet are kept, however old.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { runRollup, monthToDateOf, ROLLUP_PARTITIONS, scopeKey, WATERMARK } from '../../src/core/telemetry/rollup';
import { queryUsage } from '../../src/core/telemetry/query';
import { buildUsageRow } from '../../src/core/telemetry/usage';
import { monthOf, windowOf } from '../../src/core/telemetry/windows';
import { runRetentionSweep } from '../../src/core/retention/sweep';
import { MemorySink } from '../telemetry/memory';
import { DAYS, finishedJob, jobId, storesOn, sweepUntilDone } from './support';

let azurite: RunningAzurite;

before(async () => {
  azurite = await startAzurite({ inMemory: true });
});

after(async () => {
  await azurite?.stop();
});

test('past-month rollup figures stay intact when their usage rows are swept; rows not yet rolled up stay', { timeout: 120_000 }, async () => {
  const s = storesOn(azurite);
  const now = Date.now();
  const base = Math.floor((now - DAYS(430)) / 60_000) * 60_000;
  await s.rollup.upsert(WATERMARK.partition, WATERMARK.row, { closedThrough: windowOf(base - 60_000), claimWindow: '', claimRun: '', leaseUntil: 0, cut: '', history: '[]' });
  for (let i = 0; i < 12; i += 1) {
    const at = base + (i % 3) * 60_000 + 1_000 + i;
    const job = finishedJob(jobId(500 + i), at, false, { team: i % 2 ? 'search' : 'ads', model: 'gpt-4o-mini', usage: { prompt_tokens: 500, completion_tokens: 100 } });
    await s.usage.insert(buildUsageRow(job, at));
  }
  // A row the rollup will not reach in this test: past 400 days, but never counted.
  const uncounted = finishedJob(jobId(600), base + 30 * 60_000);
  await s.usage.insert(buildUsageRow(uncounted, uncounted.completedAt!));

  const rolled = await runRollup({
    usage: s.usage, state: s.rollup, sink: new MemorySink(), clock: { now: () => base + 10 * 60_000 },
    settings: { latenessMs: 120_000, teamBudgetsUsd: {}, budgetThresholdsPct: [50, 80, 100], quotaAdviceMinutes: 15, quotaAdvicePercent: 80 },
    endpoints: [{ region: 'sim', deployment: 'chat', model: 'gpt-4o-mini', tpm: 100_000, rpm: 600 }], log: () => {},
  });
  assert.equal(rolled.rows, 12);
  const figures = async () => ({
    usage: await queryUsage(s.rollup, { from: base - 3_600_000, to: base + 3_600_000, groupBy: 'team' }),
    monthToDate: monthToDateOf((await s.rollup.get(ROLLUP_PARTITIONS.monthToDate(monthOf(base)), scopeKey({ kind: 'all' })))?.value),
  });
  const beforeSweep = await figures();
  assert.equal(beforeSweep.usage.total.jobs.succeeded, 12);
  assert.ok(beforeSweep.monthToDate && beforeSweep.monthToDate.costUsd > 0, 'the month has a cost');

  const results = await sweepUntilDone(s, now, 1000, runRetentionSweep);
  assert.equal(results.reduce((a, r) => a + r.deleted.usageRows, 0), 12, 'the rolled-up rows are deleted');
  assert.deepEqual(await figures(), beforeSweep, 'the month reads the same from the rollup');
  const left = await s.usage.keysBefore('~', undefined, 100);
  assert.deepEqual(left.map((k) => k.rk), [uncounted.id], 'a row the rollup has not closed is kept');
});
