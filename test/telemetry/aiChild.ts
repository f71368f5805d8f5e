/**
 * Child process of appinsights.test.ts: one real rollup run against Azurite, sending through the real
 * applicationinsights SDK (trusting the test's throwaway CA via NODE_EXTRA_CA_CERTS). Env: AZURE_CONN, NOW (epoch
 * ms), RUN_ID, TRACK_CALL=1 to also record one model-call dependency.
 */
import { runRollup } from '../../src/core/telemetry/rollup';
import { RollupTable } from '../../src/azure/rollupTable';
import { AppInsightsSink, trackModelCall } from '../../src/azure/telemetry';
import { UsageTable } from '../../src/azure/usageTable';
import { tableClientFromConnectionString } from '../support/storage';

async function main(): Promise<void> {
  const conn = process.env.AZURE_CONN!;
  const sink = new AppInsightsSink(process.env.APPLICATIONINSIGHTS_CONNECTION_STRING!);
  const now = Number(process.env.NOW);
  if (process.env.TRACK_CALL === '1') {
    trackModelCall({ jobId: 'job_dep_1', attempt: 2, region: 'swedencentral', deployment: 'chat', endpoint: 'https://aoai-swc.openai.azure.com/', durationMs: 321, status: 429, success: false, outcome: 'rate_limited' }, sink);
  }
  const result = await runRollup({
    usage: new UsageTable(tableClientFromConnectionString(conn, 'aiusage')),
    state: new RollupTable(tableClientFromConnectionString(conn, 'airollup')),
    sink,
    clock: { now: () => now },
    settings: { latenessMs: 120_000, monthlyBudgetUsd: 0.000001, teamBudgetsUsd: {}, budgetThresholdsPct: [50, 100], quotaAdviceMinutes: 15, quotaAdvicePercent: 80 },
    endpoints: [{ region: 'swedencentral', deployment: 'chat', model: 'gpt-4o-mini', tpm: 100_000, rpm: 600 }],
    log: (level, m) => process.stderr.write(`${level} ${m}\n`),
    runId: process.env.RUN_ID,
  });
  await sink.flush();
  await sink.shutdown();
  process.stdout.write(JSON.stringify(result));
}

main().catch((err) => {
  process.stderr.write(String((err as Error).stack ?? err));
  process.exit(1);
});
