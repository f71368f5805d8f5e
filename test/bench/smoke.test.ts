/**
 * Every benchmark runs at its smoke size (BENCH_SMOKE=1), as a child process, the way `npm run bench:*` runs it: it
 * must exit 0 and end its stdout with one JSON object holding the keys its header documents. Figures are not judged;
 * a bench that no longer runs, or whose result line lost a key, fails here instead of on the next full run.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

const PROJECT_ROOT = resolve(__dirname, '..', '..', '..');
const BENCH_DIR = join(PROJECT_ROOT, 'dist', 'bench');
/** A liveness deadline, not a timing assertion: a smoke run takes seconds to a minute on a busy machine. */
const DEADLINE_MS = 300_000;

/** Each bench's result keys, as documented in its header and read by the README and docs/benchmarks.md. */
const BENCHES: Record<string, string[]> = {
  submit: ['p50_ms', 'p99_ms', 'errors', 'requests', 'baseline_p50_ms', 'baseline_p99_ms', 'p99_ratio', 'draining_p99_ms'],
  quota: ['jobs', 'drain_s', 'utilisation', 'share_429', 'failed_jobs', 'unfinished_jobs', 'budget_tx_per_job', 'storage_tx_per_job', 'drain_vs_quota_ratio', 'best_baseline', 'drain_time_ratio', 'targets_met'],
  failover: ['first_success_after_outage_s', 'max_failed_calls_per_instance', 'failed_jobs', 'failback_s', 'outage_failed_calls', 'baseline', 'outage_failed_calls_ratio_baseline_over_breaker'],
  batch: ['lines', 'upload_s', 'fanout_s', 'drain_s', 'quota_min_s', 'drain_vs_quota_ratio', 'peak_rss_mib', 'completed_lines', 'failed_lines'],
  rollup: ['rows', 'time_ratio', 'memory_ratio', 'max_percentile_rel_error', 'rows_per_s', 'rollup_s'],
  fairness: ['b_wait_p50_s', 'b_wait_p95_s', 'share_a', 'share_b', 'a_share_when_b_idle', 'utilisation', 'failed_jobs', 'fifo_b_wait_p95_s', 'b_wait_p95_ratio'],
  sync: ['overhead_ttft_p50_ms', 'overhead_ttft_p99_ms', 'upstream_429', 'client_errors', 'late_429_share', 'utilisation', 'share_a', 'sync_wait_p95_s_mixed', 'cache_hit_p50_ms'],
  scale: ['utilisation_min', 'utilisation_by_n', 'rejected_429', 'max_row_chars', 'row_writes_per_s_max', 'conflict_share_max', 'admit_p99_ms_max', 'budget_tx_per_job_max'],
  teams: ['teams', 'interactive_wait_p95_s', 'share_error_max', 'utilisation', 'storage_calls_ratio_max', 'retention_swept_rows'],
  chaos: ['jobs', 'terminal', 'lost', 'stuck_running', 'stuck_other', 'duplicate_model_calls', 'duplicates_explained_by_kills', 'wrong_results', 'poisoned', 'kills', 'batch'],
};

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runBench(name: string): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, BENCH_SMOKE: '1' };
    delete env.SLUICE_STACK_LOG;
    const child = spawn(process.execPath, [join(BENCH_DIR, `${name}.js`)], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => resolveRun({ code, signal, stdout, stderr }));
  });
}

for (const [name, keys] of Object.entries(BENCHES)) {
  test(`bench ${name} completes at its smoke size and ends with its JSON result`, { timeout: DEADLINE_MS }, async () => {
    const run = await runBench(name);
    const tail = `\n--- stdout (end) ---\n${run.stdout.slice(-2000)}\n--- stderr (end) ---\n${run.stderr.slice(-2000)}`;
    assert.equal(run.code, 0, `exit code ${run.code} (signal ${run.signal})${tail}`);
    const lines = run.stdout.trimEnd().split('\n');
    assert.ok(lines.length > 1, `a table or summary before the result line${tail}`);
    let result: Record<string, unknown>;
    try {
      result = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
    } catch (err) {
      assert.fail(`the last stdout line is not JSON (${(err as Error).message})${tail}`);
    }
    assert.ok(result && typeof result === 'object' && !Array.isArray(result), 'the result is one JSON object');
    const missing = keys.filter((k) => !(k in result));
    assert.deepEqual(missing, [], `result keys missing: ${JSON.stringify(result)}`);
    // Not a figure but the run's own correctness check: every accepted job, batch lines included, is accounted for.
    if (name === 'chaos') assert.equal(result.lost, 0, `chaos lost jobs: ${JSON.stringify(result)}${tail}`);
  });
}
