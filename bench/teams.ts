/**
 * `npm run bench:teams` — fifty teams and a year of history cost what two teams and a day cost.
 *
 * Phase 1 (bench/teamsFairness.ts): the real stack with 4 worker processes, 50 teams of weights 1–3, one flooding a
 * 50,000-line batch, four holding job backlogs, every team submitting interactive jobs: interactive wait p95, the
 * worst per-minute share error among backlogged teams, and utilisation.
 * Phase 2 (bench/teamsHistory.ts): Azurite only: storage calls per operation on an empty store and on one holding
 * 200,000 finished jobs, 2,000 files and 500 finished batches, then the retention sweep on the loaded store.
 * Knobs: see each phase's header; BENCH_PHASES=1 or 2 runs one phase (the other's figures print as null).
 * BENCH_SMOKE=1: 6 teams, a 200-line batch, 20 s, 1 worker; a 400-job history.
 * Targets: interactive_wait_p95_s ≤ 5, share_error_max ≤ 0.05, utilisation ≥ 0.95, storage_calls_ratio_max ≤ 1.2.
 * Last line: {"teams","interactive_wait_p95_s","share_error_max","utilisation","storage_calls_ratio_max",
 * "retention_swept_rows",…}.
 */
import { printResult, printTable } from './report';
import { runFairnessPhase, type FairnessResult } from './teamsFairness';
import { runHistoryPhase, type HistoryResult } from './teamsHistory';

const round = (n: number | undefined, d = 3) => (n !== undefined && Number.isFinite(n) ? Math.round(n * 10 ** d) / 10 ** d : null);
const PHASES = (process.env.BENCH_PHASES ?? '1,2').split(',').map((p) => p.trim());

async function main(): Promise<void> {
  let fair: FairnessResult | undefined;
  let history: HistoryResult | undefined;
  if (PHASES.includes('1')) {
    fair = await runFairnessPhase();
    printTable('bench:teams phase 1 — many teams on one deployment', [
      ['teams', 'interactive jobs', 'failed jobs', 'wait p50 s', 'wait p95 s', 'share error max', 'utilisation', 'setup s', 'measured s'],
      [fair.teams, fair.interactiveJobs, fair.failedJobs, round(fair.interactiveWaitP50S, 2) ?? '-', round(fair.interactiveWaitP95S, 2) ?? '-', round(fair.shareErrorMax) ?? '-', round(fair.utilisation) ?? '-', round(fair.setupS, 1) ?? '-', round(fair.measuredS, 1) ?? '-'],
    ]);
  }
  if (PHASES.includes('2')) {
    history = await runHistoryPhase();
    printTable('bench:teams phase 2 — storage calls per operation, empty store and loaded store', [
      ['operation', 'empty', 'loaded', 'loaded ÷ empty'],
      ...history.operations.map((o) => [o.operation, o.empty, o.loaded, (o.loaded / Math.max(1, o.empty)).toFixed(2)]),
    ]);
    const d = history.sweepDeleted;
    printTable('bench:teams phase 2 — retention sweep on the loaded store', [
      ['rows deleted', 'jobs', 'batches', 'batch lines', 'files', 'usage rows', 'runs', 'storage calls', 'calls per row', 'sweep s'],
      [history.sweptRows, d.jobs, d.batches, d.batchLines, d.files, d.usageRows, history.sweepRuns, history.sweepCalls, (history.sweepCalls / Math.max(1, history.sweptRows)).toFixed(2), history.sweepS.toFixed(1)],
    ]);
    const steps = Object.entries(history.loadSteps).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ');
    console.log(`phase 2: loading the history took ${history.loadS.toFixed(1)} s (${steps}), the phase ${history.totalS.toFixed(1)} s`);
  }
  console.log('targets: interactive wait p95 ≤ 5 s; share error ≤ 0.05; utilisation ≥ 0.95; storage calls ratio ≤ 1.2');
  printResult({
    teams: fair?.teams ?? null,
    interactive_wait_p50_s: round(fair?.interactiveWaitP50S, 2),
    interactive_wait_p95_s: round(fair?.interactiveWaitP95S, 2),
    share_error_max: round(fair?.shareErrorMax),
    utilisation: round(fair?.utilisation),
    failed_jobs: fair?.failedJobs ?? null,
    storage_calls_ratio_max: round(history?.ratioMax),
    storage_calls: history ? Object.fromEntries(history.operations.map((o) => [o.operation, { empty: o.empty, loaded: o.loaded }])) : null,
    retention_swept_rows: history?.sweptRows ?? null,
    retention_calls_per_row: history ? round(history.sweepCalls / Math.max(1, history.sweptRows)) : null,
    phase1_s: fair ? round(fair.setupS + fair.measuredS, 1) : null,
    phase2_s: history ? round(history.totalS, 1) : null,
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
