/**
 * Regional failover benchmark: a steady stream of jobs over two simulated regions and N worker processes; mid-run
 * the primary region goes down, later it comes back. Two outages: connection refused, and 429 with
 * "Retry-After: 86400" (a spent daily quota). Each runs with the shared breaker and, as the baseline, without it
 * (every instance discovers the outage itself). Each run is a child process with its own stack (the app caches
 * its services per process), so the baseline shares this process tree.
 *
 *   npm run bench:failover
 *   BENCH_WORKERS=4 BENCH_RATE=10 BENCH_COOLDOWN_MS=5000 npm run bench:failover
 *   BENCH_SMOKE=1 npm run bench:failover   (1 worker, 4 jobs/s, 1 s → 2 s outage → 2 s; the four runs at once)
 *
 * Prints a table, then as the last line one JSON object.
 */
import { authHeaders } from '../local/stack';
import { spawn } from 'node:child_process';
import { startStack } from '../local/stack';
import { DEFAULT_SIMULATOR_CONFIG, type FaultSpec, type SimulatorConfig } from '../local/simulator';
import { knob, printResult, SMOKE } from './report';

const PRIMARY = 'sim-eastus';
const SECONDARY = 'sim-westus';

const settings = {
  /** Worker processes (Function instances). */
  workers: int('BENCH_WORKERS', 3, 1),
  /** Jobs submitted per second. */
  rate: int('BENCH_RATE', 10, 4),
  /** Healthy traffic before the outage, s. */
  warmupS: int('BENCH_WARMUP_S', 5, 1),
  /** Outage length, s. */
  outageS: int('BENCH_OUTAGE_S', 10, 2),
  /** Healthy traffic after recovery, s. */
  tailS: int('BENCH_TAIL_S', 10, 2),
  /** SLUICE_BREAKER_COOLDOWN_MS for the breaker runs. */
  cooldownMs: int('BENCH_COOLDOWN_MS', 5_000, 1_000),
};

/** Both regions with room for the stream (the default 180 RPM would throttle 10 jobs/s and blur the outage). */
const SIMULATOR: SimulatorConfig = {
  ...DEFAULT_SIMULATOR_CONFIG,
  regions: DEFAULT_SIMULATOR_CONFIG.regions.map((r) => ({
    ...r,
    deployments: r.deployments.map((d) => ({ ...d, tpm: 1_000_000, rpm: 6_000 })),
  })),
};

type Mode = 'breaker' | 'baseline';
type Scenario = 'refuse' | 'quota429';

interface RunResult {
  mode: Mode;
  scenario: Scenario;
  jobs: number;
  failedJobs: number;
  unfinishedJobs: number;
  /** Outage start → end of the first successful call on the secondary that started after it, s. */
  firstSuccessAfterOutageS: number | null;
  /**
   * Failed calls on the primary per worker instance, within one cool-down after the outage began (so the first probe
   * is not counted). An instance can lose more than one only with calls already in flight when its first one failed.
   */
  switchFailuresPerInstance: number[];
  /** Failed calls on the primary during the whole outage (probes included). */
  outageFailures: number;
  /** Recovery → end of the first successful call on the primary that started after it, s. */
  failbackS: number | null;
  /** Jobs that ran on the secondary after recovery + one cool-down + 2 s (should be ~0 once failed back). */
  lateSecondaryJobs: number;
  p95LatencyMsDuringOutage: number | null;
}

interface Attempt {
  region: string;
  status: number;
  outcome: string;
  at: string;
}
interface JobView {
  id: string;
  status: string;
  region: string | null;
  latency_ms: number | null;
  created_at: string;
  completed_at: string | null;
  regions_tried: Attempt[];
}

function int(name: string, full: number, smoke: number): number {
  return Math.max(1, Math.floor(knob(name, full, smoke)));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function api<T>(baseUrl: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${baseUrl}${path}`, body === undefined ? { headers: authHeaders(baseUrl) } : { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders(baseUrl) }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}

/** One run in this process: its own Azurite, simulator and worker processes. */
async function runOne(mode: Mode, scenario: Scenario): Promise<RunResult> {
  const lines: string[] = [];
  const stack = await startStack({
    simulator: SIMULATOR,
    workers: settings.workers,
    env: {
      SLUICE_BREAKER_ENABLED: mode === 'breaker' ? 'true' : 'false',
      SLUICE_BREAKER_COOLDOWN_MS: String(settings.cooldownMs),
      SLUICE_CALL_TIMEOUT_MS: '10000',
    },
    hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.100' } } },
    log: (line) => lines.push(line),
  });
  const sim = stack.sim!;
  const fault: FaultSpec = scenario === 'refuse' ? { down: 'refuse' } : { errorRate: { '429': 1 }, retryAfterSeconds: 86_400 };
  const ids: string[] = [];
  const submits: Promise<void>[] = [];
  let tOutage = 0;
  let tRecover = 0;
  try {
    const t0 = Date.now();
    const total = (settings.warmupS + settings.outageS + settings.tailS) * settings.rate;
    for (let i = 0; i < total; i += 1) {
      const due = t0 + (i * 1000) / settings.rate;
      if (!tOutage && due >= t0 + settings.warmupS * 1000) {
        await sleep(due - Date.now());
        sim.setFault(PRIMARY, fault);
        tOutage = Date.now();
      }
      if (!tRecover && due >= t0 + (settings.warmupS + settings.outageS) * 1000) {
        await sleep(due - Date.now());
        sim.setFault(PRIMARY, {});
        tRecover = Date.now();
      }
      await sleep(due - Date.now());
      submits.push(
        api<{ id: string }>(stack.baseUrl, '/v1/jobs', {
          request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `failover bench ${i}` }], max_tokens: 20 },
        }).then((res) => {
          if (res.status === 202) ids.push(res.body.id);
          else throw new Error(`submit answered ${res.status}: ${JSON.stringify(res.body)}`);
        }),
      );
    }
    await Promise.all(submits);

    // Wait for every job to finish (a parked job may take a while; the deadline is generous).
    const deadline = Date.now() + 90_000;
    let jobs: JobView[] = [];
    for (;;) {
      jobs = await Promise.all(ids.map((id) => api<JobView>(stack.baseUrl, `/v1/jobs/${id}`).then((r) => r.body)));
      if (jobs.every((j) => j.status === 'succeeded' || j.status === 'failed') || Date.now() > deadline) break;
      await sleep(500);
    }
    return measure(mode, scenario, jobs, lines, tOutage, tRecover);
  } finally {
    await stack.stop();
  }
}

function measure(mode: Mode, scenario: Scenario, jobs: JobView[], lines: string[], tOutage: number, tRecover: number): RunResult {
  const ms = (iso: string) => Date.parse(iso);
  const attempts = jobs.flatMap((j) => j.regions_tried.map((a) => ({ ...a, t: ms(a.at), job: j })));
  const successEnd = (a: (typeof attempts)[number]) => a.t + (a.job.latency_ms ?? 0);
  const firstOk = (region: string, after: number) => {
    const ends = attempts.filter((a) => a.region === region && a.outcome === 'ok' && a.t >= after).map(successEnd);
    return ends.length ? (Math.min(...ends) - after) / 1000 : null;
  };
  // Worker log lines carry "[worker i] [ISO time] ... [job=… region=…] transient <code>".
  const perInstance = new Array<number>(settings.workers).fill(0);
  const pattern = /^\[worker (\d+)\] \[([^\]]+)\].*region=([\w-]+)\] transient /;
  for (const line of lines) {
    const m = pattern.exec(line);
    if (!m || m[3] !== PRIMARY) continue;
    const t = Date.parse(m[2]!);
    if (t >= tOutage && t < tOutage + settings.cooldownMs) perInstance[Number(m[1])] = (perInstance[Number(m[1])] ?? 0) + 1;
  }
  const outageFailures = attempts.filter((a) => a.region === PRIMARY && a.outcome !== 'ok' && a.t >= tOutage && a.t < tRecover + 1_000).length;
  const settled = tRecover + settings.cooldownMs + 2_000;
  const outageLatencies = jobs
    .filter((j) => ms(j.created_at) >= tOutage && ms(j.created_at) < tRecover && j.completed_at)
    .map((j) => ms(j.completed_at!) - ms(j.created_at))
    .sort((a, b) => a - b);
  return {
    mode,
    scenario,
    jobs: jobs.length,
    failedJobs: jobs.filter((j) => j.status === 'failed').length,
    unfinishedJobs: jobs.filter((j) => j.status !== 'failed' && j.status !== 'succeeded').length,
    firstSuccessAfterOutageS: firstOk(SECONDARY, tOutage),
    switchFailuresPerInstance: perInstance,
    outageFailures,
    failbackS: firstOk(PRIMARY, tRecover),
    lateSecondaryJobs: attempts.filter((a) => a.region === SECONDARY && a.outcome === 'ok' && a.t >= settled).length,
    p95LatencyMsDuringOutage: outageLatencies.length ? outageLatencies[Math.floor(outageLatencies.length * 0.95)] ?? null : null,
  };
}

/** Runs one (mode, scenario) in a child process and returns its result line. */
function runChild(mode: Mode, scenario: Scenario): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, '--child', mode, scenario], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit code ${code}`);
        resolve(JSON.parse(last) as RunResult);
      } catch (err) {
        reject(new Error(`run ${mode}/${scenario} failed (${(err as Error).message}):\n${out}`));
      }
    });
  });
}

const mean = (xs: number[]) => (xs.length ? Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 100) / 100 : null);
const fmt = (v: number | null, digits = 2) => (v === null ? 'n/a' : v.toFixed(digits));
const ratio = (a: number | null, b: number | null) => (a === null || b === null || a === 0 ? 'n/a' : `${(b / a).toFixed(1)}×`);

async function main(): Promise<void> {
  const [flag, mode, scenario] = process.argv.slice(2);
  if (flag === '--child') {
    printResult(await runOne(mode as Mode, scenario as Scenario));
    return;
  }
  console.log(
    `failover bench: ${settings.workers} worker processes, ${settings.rate} jobs/s, ` +
      `${settings.warmupS} s healthy → ${settings.outageS} s outage of ${PRIMARY} → ${settings.tailS} s recovered; ` +
      `breaker cool-down ${settings.cooldownMs} ms, cache 1000 ms\n`,
  );
  const plan = (['refuse', 'quota429'] as const).flatMap((s) => (['breaker', 'baseline'] as const).map((m) => [m, s] as const));
  const runs: RunResult[] = [];
  if (SMOKE) {
    // The smoke run only has to complete: its four runs share the machine at once.
    runs.push(...(await Promise.all(plan.map(([m, s]) => runChild(m, s)))));
  } else {
    for (const [m, s] of plan) {
      process.stderr.write(`running ${s} / ${m} …\n`);
      runs.push(await runChild(m, s));
    }
  }
  const get = (m: Mode, s: Scenario) => runs.find((r) => r.mode === m && r.scenario === s)!;

  const header = ['outage', 'mode', 'jobs', 'failed', 'first ok on secondary (s)', 'failed calls/instance (switch)', 'failed calls (whole outage)', 'failback (s)', 'p95 job latency in outage (ms)'];
  const rows = runs.map((r) => [
    r.scenario === 'refuse' ? 'connection refused' : '429 Retry-After 86400',
    r.mode === 'breaker' ? 'shared breaker' : 'baseline (no breaker)',
    String(r.jobs),
    String(r.failedJobs + r.unfinishedJobs),
    fmt(r.firstSuccessAfterOutageS),
    r.switchFailuresPerInstance.join(' / '),
    String(r.outageFailures),
    fmt(r.failbackS),
    r.p95LatencyMsDuringOutage === null ? 'n/a' : String(r.p95LatencyMsDuringOutage),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const row of rows) console.log(line(row));

  const b = get('breaker', 'refuse');
  const base = get('baseline', 'refuse');
  const q = get('breaker', 'quota429');
  const qBase = get('baseline', 'quota429');
  const maxPerInstance = Math.max(...b.switchFailuresPerInstance, ...q.switchFailuresPerInstance);
  console.log(
    `\nfailed calls on the primary during the outage, baseline ÷ breaker: refused ${ratio(b.outageFailures, base.outageFailures)}, ` +
      `429 ${ratio(q.outageFailures, qBase.outageFailures)}`,
  );
  console.log(
    `targets: first ok ≤ 2 s: ${b.firstSuccessAfterOutageS !== null && b.firstSuccessAfterOutageS <= 2 ? 'met' : 'MISSED'}; ` +
      `≤ 1 failed call per instance: ${maxPerInstance <= 1 ? 'met' : `MISSED (${maxPerInstance})`}; ` +
      `0 jobs failed: ${b.failedJobs + q.failedJobs + b.unfinishedJobs + q.unfinishedJobs === 0 ? 'met' : 'MISSED'}; ` +
      `failback ≤ one cool-down (${settings.cooldownMs / 1000} s): ${b.failbackS !== null && b.failbackS <= settings.cooldownMs / 1000 ? 'met' : 'MISSED'}`,
  );
  printResult({
    workers: settings.workers,
    rate_jobs_per_s: settings.rate,
    cooldown_s: settings.cooldownMs / 1000,
    first_success_after_outage_s: b.firstSuccessAfterOutageS,
    max_failed_calls_per_instance: maxPerInstance,
    mean_failed_calls_per_instance: mean([...b.switchFailuresPerInstance, ...q.switchFailuresPerInstance]),
    failed_jobs: b.failedJobs + q.failedJobs + b.unfinishedJobs + q.unfinishedJobs,
    failback_s: b.failbackS,
    retry_after_cap_first_success_s: q.firstSuccessAfterOutageS,
    outage_failed_calls: b.outageFailures,
    retry_after_outage_failed_calls: q.outageFailures,
    baseline: {
      first_success_after_outage_s: base.firstSuccessAfterOutageS,
      max_failed_calls_per_instance: Math.max(...base.switchFailuresPerInstance, ...qBase.switchFailuresPerInstance),
      failed_jobs: base.failedJobs + qBase.failedJobs + base.unfinishedJobs + qBase.unfinishedJobs,
      failback_s: base.failbackS,
      retry_after_cap_first_success_s: qBase.firstSuccessAfterOutageS,
      outage_failed_calls: base.outageFailures,
      retry_after_outage_failed_calls: qBase.outageFailures,
    },
    outage_failed_calls_ratio_baseline_over_breaker: b.outageFailures ? base.outageFailures / b.outageFailures : null,
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
