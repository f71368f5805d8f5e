/**
 * `npm run chaos` (takes minutes): 2,000 jobs through Azurite (on disk), the simulator and 4 worker processes while a
 * driver SIGKILLs a random worker every few seconds (and starts a new one), the simulator answers 10 % 5xx, 10 % 429
 * and 2 % slower than the call timeout, the primary region refuses connections for 10 s and Azurite is stopped for
 * 5 s. Then it waits for the drain and checks every job against what was submitted.
 *
 * Every prompt carries a unique token; a job's stored answer must equal what the simulator answers for that very
 * request (asked again directly once the run is over). A job with more than one answered (200) model call is a
 * duplicate; it is "explained" when a killed worker had claimed it, and not finished it, after the first answer.
 *
 * Knobs: CHAOS_JOBS (2000, including the batch), CHAOS_BATCH_LINES (500, 0 = no batch), CHAOS_WORKERS (4),
 * CHAOS_KILL_EVERY_MS (5000), CHAOS_CALL_TIMEOUT_MS (2000), CHAOS_DRAIN_TIMEOUT_S (900), CHAOS_MIN_S (120: kills and
 * faults last at least this long, well into the drain), SLUICE_STACK_LOG=1. BENCH_SMOKE=1: 40 jobs (10 in the batch),
 * 2 workers, kills every 1.5 s, the outages early and short, a 20 s drain (a job whose message a killed worker had
 * fetched waits out the 10-minute redelivery, so a smoke run may end with a few jobs still queued).
 * Prints a table and, as the last line, one JSON object.
 */
import { randomUUID } from 'node:crypto';
import { authHeaders, startStack, type RunningStack } from '../local/stack';
import { DEFAULT_SIMULATOR_CONFIG, type FaultSpec, type SimulatorConfig } from '../local/simulator';
import { lineJobId } from '../src/core/batch/validate';
import { knob, printResult, printTable, SMOKE } from './report';

const JOBS = knob('CHAOS_JOBS', 2000, 40);
const BATCH_LINES = Math.min(knob('CHAOS_BATCH_LINES', 500, 10), JOBS);
const WORKERS = knob('CHAOS_WORKERS', 4, 2);
const KILL_EVERY_MS = knob('CHAOS_KILL_EVERY_MS', 5000, 1500);
const CALL_TIMEOUT_MS = knob('CHAOS_CALL_TIMEOUT_MS', 2000);
const DRAIN_TIMEOUT_MS = knob('CHAOS_DRAIN_TIMEOUT_S', 900, 20) * 1000;
/** Faults and kills go on at least this long (into the drain), not only while jobs are being submitted. */
const CHAOS_MIN_MS = knob('CHAOS_MIN_S', 120, 0) * 1000;
/** When the primary region goes down and for how long, then when storage goes down and for how long (ms). */
const OUTAGES = SMOKE ? { primaryAt: 1_000, primaryFor: 2_000, storageAt: 3_000, storageFor: 1_500 } : { primaryAt: 15_000, primaryFor: 10_000, storageAt: 25_000, storageFor: 5_000 };
const DRAIN_POLL_MS = SMOKE ? 1_000 : 5_000;
const SUBMITTERS = 8;
const MAX_TOKENS = 20;
const PRIMARY = 'sim-eastus';
const REGIONS = ['sim-eastus', 'sim-westus'];
const NOISE: FaultSpec = { errorRate: { '500': 0.05, '503': 0.05, '429': 0.1 }, retryAfterSeconds: 1, slowRate: 0.02, slowMs: CALL_TIMEOUT_MS + 3000 };
const TERMINAL = new Set(['succeeded', 'failed']);

const sim: SimulatorConfig = {
  ...DEFAULT_SIMULATOR_CONFIG,
  latency: { firstTokenMs: 10, perTokenMs: 0.2 },
  regions: DEFAULT_SIMULATOR_CONFIG.regions.map((r) => ({ ...r, port: 0, deployments: r.deployments.map((d) => ({ ...d, tpm: 5_000_000, rpm: 100_000 })) })),
  adminPort: 0,
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const clock = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const note = (msg: string) => console.error(`[chaos ${clock()}] ${msg}`);

interface Submitted {
  messages: { role: string; content: string }[];
  maxTokens: number;
  /** Sluice job id (for batch lines, from the output file). */
  id?: string;
  customId?: string;
}

/** Worker log bookkeeping: jobs each worker process claimed and did not finish (what a kill leaves behind). */
class WorkerLedger {
  private readonly open = new Map<number, Set<string>>();
  readonly killedAt = new Map<number, number>();
  line(raw: string): void {
    const m = /^\[worker (\d+)\] (.*)$/.exec(raw);
    if (!m) return;
    const worker = Number(m[1]);
    const claimed = /\[job=(job_[0-9a-f_]+)[^\]]*\] claimed until/.exec(m[2]!);
    const ended = /\[job=(job_[0-9a-f_]+)\] (delivery \d+ → |(succeeded|failed) team=)/.exec(m[2]!);
    const set = this.open.get(worker) ?? new Set<string>();
    this.open.set(worker, set);
    if (claimed) set.add(claimed[1]!);
    if (ended) set.delete(ended[1]!);
  }
  /** Killed workers that died holding `jobId`, with their kill time. */
  diedHolding(jobId: string): number[] {
    return [...this.killedAt].filter(([w]) => this.open.get(w)?.has(jobId)).map(([, at]) => at);
  }
}

async function post(base: string, path: string, init: RequestInit): Promise<{ status: number; headers: Headers; body: any }> {
  try {
    const res = await fetch(`${base}${path}`, { ...init, headers: { ...authHeaders(base), ...(init.headers as Record<string, string>) } });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // keep text
    }
    return { status: res.status, headers: res.headers, body };
  } catch (err) {
    return { status: 0, headers: new Headers(), body: String(err) };
  }
}

/** Retries 503/429/connection errors, honouring Retry-After (capped at 5 s), as a careful client would. */
async function persist(what: string, stats: Stats, send: () => Promise<{ status: number; headers: Headers; body: any }>, ok: number[]) {
  for (let attempt = 0; ; attempt += 1) {
    const res = await send();
    if (ok.includes(res.status)) return res;
    stats.submitAnswers[res.status] = (stats.submitAnswers[res.status] ?? 0) + 1;
    if (![0, 429, 503].includes(res.status) || attempt > 60) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    await sleep(Math.min(5000, 1000 * Number(res.headers.get('retry-after') ?? 1)));
  }
}

interface Stats {
  submitAnswers: Record<number, number>;
  kills: { worker: number; at: number }[];
  events: string[];
}

async function main(): Promise<void> {
  const ledger = new WorkerLedger();
  const stats: Stats = { submitAnswers: {}, kills: [], events: [] };
  const runId = randomUUID().slice(0, 8);
  const stack: RunningStack = await startStack({
    simulator: sim,
    workers: WORKERS,
    azurite: { inMemory: false },
    // A smoke run's drain is short: a batch whose driver lost its lease in the storage outage resumes within seconds.
    env: { SLUICE_CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS), SLUICE_BREAKER_COOLDOWN_MS: '5000', ...(SMOKE ? { SLUICE_BATCH_LEASE_S: '5', SLUICE_BATCH_SWEEP_SCHEDULE: '*/1 * * * * *' } : {}) },
    hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.500', visibilityTimeout: '00:00:02' } } },
    log: (line) => {
      ledger.line(line);
      if (process.env.SLUICE_STACK_LOG === '1') console.log(line);
    },
  });
  // Ctrl-C / SIGTERM: take Azurite, the simulator and the workers down with us.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stack.stop().finally(() => process.exit(130)));
  const base = stack.baseUrl;
  const simulator = stack.sim!;
  note(`stack up: ${base}, ${WORKERS} workers, ${JOBS} jobs (${BATCH_LINES} in one batch)`);
  try {
    for (const region of REGIONS) simulator.setFault(region, NOISE);

    // pid → kill time: the simulator logs which process made each call (x-sluice-instance), so a duplicate is explained
    // when an answered call came from a process that was killed after that answer (died between call and store).
    const killedPids = new Map<number, number>();
    // --- chaos driver: kills, a regional outage, a storage outage ---
    let chaosOn = true;
    const chaos = (async () => {
      const started = Date.now();
      let primaryDone = false;
      let storageDone = false;
      while (chaosOn || !primaryDone || !storageDone || Date.now() - started < CHAOS_MIN_MS) {
        await sleep(KILL_EVERY_MS * (0.6 + 0.8 * Math.random()));
        const alive = stack.workerProcesses.map((p, i) => ({ p, i })).filter(({ p }) => p.exitCode === null && p.signalCode === null);
        if (alive.length > 0) {
          const { i } = alive[Math.floor(Math.random() * alive.length)]!;
          ledger.killedAt.set(i, Date.now());
          const pid = stack.workerProcesses[i]?.pid;
          if (pid !== undefined) killedPids.set(pid, Date.now());
          stats.kills.push({ worker: i, at: Date.now() });
          stack.killWorker(i, 'SIGKILL');
          stack.startWorker();
        }
        const elapsed = Date.now() - started;
        if (!primaryDone && elapsed > OUTAGES.primaryAt) {
          primaryDone = true;
          note(`primary region ${PRIMARY} refuses connections for ${OUTAGES.primaryFor / 1000} s`);
          stats.events.push(`${clock()} primary down ${OUTAGES.primaryFor / 1000} s`);
          simulator.setFault(PRIMARY, { down: 'refuse' });
          setTimeout(() => simulator.setFault(PRIMARY, NOISE), OUTAGES.primaryFor);
        }
        if (!storageDone && elapsed > OUTAGES.storageAt) {
          storageDone = true;
          note(`Azurite stopped for ${OUTAGES.storageFor / 1000} s`);
          stats.events.push(`${clock()} storage down ${OUTAGES.storageFor / 1000} s`);
          await stack.azurite.stop();
          await sleep(OUTAGES.storageFor);
          await stack.azurite.start();
          note('Azurite back');
        }
      }
    })();

    // --- submit: one batch, then single jobs of both priorities ---
    const singles: Submitted[] = [];
    let batchId: string | undefined;
    const batchLines: Submitted[] = [];
    if (BATCH_LINES > 0) {
      const lines: string[] = [];
      for (let i = 0; i < BATCH_LINES; i += 1) {
        const line: Submitted = { messages: [{ role: 'user', content: `chaos ${runId} batch line ${i} token ${randomUUID()}` }], maxTokens: MAX_TOKENS, customId: `line-${i}` };
        batchLines.push(line);
        lines.push(JSON.stringify({ custom_id: line.customId, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: line.messages, max_tokens: MAX_TOKENS } }));
      }
      const text = `${lines.join('\n')}\n`;
      const file = await persist('upload', stats, () => {
        const form = new FormData();
        form.append('purpose', 'batch');
        form.append('file', new Blob([text], { type: 'application/jsonl' }), 'chaos.jsonl');
        return post(base, '/v1/files', { method: 'POST', body: form });
      }, [200, 201]);
      const batch = await persist('batch', stats, () => post(base, '/v1/batches', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input_file_id: file.body.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
      }), [200, 201]);
      batchId = batch.body.id as string;
      // Batch lines become jobs whose ids the batch code derives from the batch, its team (the stack's default key's),
      // the custom_id and the line number; the output file's request_ids are checked against these below.
      for (const [i, line] of batchLines.entries()) line.id = lineJobId({ id: batchId, team: 'default', jobIds: 2 }, line.customId!, i + 1);
      note(`batch ${batchId} created (${BATCH_LINES} lines)`);
    }
    for (let i = 0; i < JOBS - BATCH_LINES; i += 1) {
      singles.push({ messages: [{ role: 'user', content: `chaos ${runId} job ${i} token ${randomUUID()}` }], maxTokens: MAX_TOKENS });
    }
    let next = 0;
    await Promise.all(Array.from({ length: SUBMITTERS }, async () => {
      while (next < singles.length) {
        const i = next++;
        const job = singles[i]!;
        const body = JSON.stringify({ request: { model: 'gpt-4o-mini', messages: job.messages, max_tokens: job.maxTokens }, priority: i % 3 === 0 ? 'batch' : 'interactive' });
        const res = await persist(`submit ${i}`, stats, () => post(base, '/v1/jobs', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': `chaos-${runId}-${i}` },
          body,
        }), [202]);
        job.id = res.body.id as string;
        if (i % 250 === 0) note(`submitted ${i}`);
      }
    }));
    note(`all ${singles.length} single jobs accepted`);
    chaosOn = false;
    await chaos;
    for (const region of REGIONS) simulator.setFault(region, {});
    note(`chaos over (${stats.kills.length} kills); faults cleared; draining`);

    // --- drain ---
    const views = new Map<string, any>();
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    let batchView: any;
    const everyJob = [...singles, ...batchLines];
    for (;;) {
      const open = everyJob.filter((j) => !TERMINAL.has(views.get(j.id!)?.status));
      let cursor = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (cursor < open.length) {
          const j = open[cursor++]!;
          const res = await post(base, `/v1/jobs/${j.id}`, {});
          if (res.status === 200 || res.status === 404) views.set(j.id!, res.status === 404 ? { status: 'missing' } : res.body);
        }
      }));
      if (batchId) batchView = (await post(base, `/v1/batches/${batchId}`, {})).body;
      const remaining = open.filter((j) => !TERMINAL.has(views.get(j.id!)?.status)).length;
      const batchDone = !batchId || ['completed', 'failed', 'expired', 'cancelled'].includes(batchView?.status);
      const openStatuses: Record<string, number> = {};
      for (const j of everyJob) {
        const st = views.get(j.id!)?.status ?? 'unread';
        if (!TERMINAL.has(st)) openStatuses[st] = (openStatuses[st] ?? 0) + 1;
      }
      note(`drain: ${remaining} jobs open ${JSON.stringify(openStatuses)}; batch ${batchView?.status ?? '-'} ${JSON.stringify(batchView?.request_counts ?? {})}`);
      if (remaining > 0 && remaining <= 3) note(`open: ${everyJob.filter((j) => !TERMINAL.has(views.get(j.id!)?.status)).map((j) => JSON.stringify(views.get(j.id!))).join('\n')}`);
      if ((remaining === 0 && batchDone) || Date.now() > deadline) break;
      await sleep(DRAIN_POLL_MS);
    }
    const drainedAt = Date.now();

    // --- batch output ---
    const batchResults = new Map<string, any>();
    let batchIdMismatch = 0;
    if (batchId && batchView) {
      for (const key of ['output_file_id', 'error_file_id']) {
        const fileId = batchView[key];
        if (!fileId) continue;
        const res = await fetch(`${base}/v1/files/${fileId}/content`, { headers: authHeaders(base) });
        for (const l of (await res.text()).split('\n').filter((s) => s.trim())) {
          const parsed = JSON.parse(l);
          batchResults.set(parsed.custom_id, parsed);
        }
      }
      for (const line of batchLines) {
        const r = batchResults.get(line.customId!);
        if (r?.response?.request_id && r.response.request_id !== line.id) batchIdMismatch += 1;
      }
    }

    // --- expected answers: the simulator asked again, directly, for each request ---
    const region = simulator.regions[0]!.baseUrl;
    const expected = new Map<Submitted, string>();
    const all = [...singles, ...batchLines];
    let cursor = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (cursor < all.length) {
        const j = all[cursor++]!;
        const res = await post(region, '/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'api-key': 'local-simulator-key' },
          body: JSON.stringify({ messages: j.messages, max_tokens: j.maxTokens }),
        });
        expected.set(j, res.body?.choices?.[0]?.message?.content);
      }
    }));

    // --- verdict ---
    const okCalls = new Map<string, number[]>();
    const allCalls = new Map<string, number>();
    /** Jobs with an answered call made by a process that was killed after the answer. */
    const answeredThenKilled = new Set<string>();
    for (const r of simulator.requests()) {
      if (!r.jobId) continue;
      allCalls.set(r.jobId, (allCalls.get(r.jobId) ?? 0) + 1);
      if (r.status === 200) okCalls.set(r.jobId, [...(okCalls.get(r.jobId) ?? []), r.at]);
      const killedAt = killedPids.get(Number(r.instance?.split(':').pop()));
      if (r.status === 200 && killedAt !== undefined && killedAt >= r.at) answeredThenKilled.add(r.jobId);
    }
    const failedCodes: Record<string, number> = {};
    let redelivered = 0;
    let terminal = 0, lost = 0, stuckRunning = 0, stuckOther = 0, wrong = 0, poisonNoReason = 0, poisoned = 0, succeeded = 0;
    const duplicates: { id: string; calls: number; explained: boolean; outcomes: string }[] = [];
    const batchTerminal = ['completed', 'failed', 'expired', 'cancelled'].includes(batchView?.status);
    const batchLinesFinished = (batchView?.request_counts?.completed ?? 0) + (batchView?.request_counts?.failed ?? 0) > 0;
    for (const j of all) {
      const view = j.id ? views.get(j.id) : undefined;
      if (!view || view.status === 'missing') {
        // A batch line has no job until the fan-out reaches it: before any line of the batch has finished, it is
        // pending, not lost. Once lines finish, the fan-out (one chunk at these sizes) has made every line's job.
        if (j.customId && !batchTerminal && !batchLinesFinished) stuckOther += 1;
        else lost += 1;
        continue;
      }
      if ((view.dequeue_count ?? 1) > 1) redelivered += 1;
      if (TERMINAL.has(view.status)) terminal += 1;
      else if (view.status === 'running') stuckRunning += 1;
      else stuckOther += 1;
      if (view.status === 'succeeded') {
        succeeded += 1;
        const content = view.response?.choices?.[0]?.message?.content;
        const fromBatch = j.customId && batchView?.status === 'completed' ? batchResults.get(j.customId)?.response?.body?.choices?.[0]?.message?.content : content;
        if (content !== expected.get(j) || fromBatch !== content) wrong += 1;
      } else if (view.status === 'failed') {
        const code = view.error?.code ?? 'none';
        failedCodes[code] = (failedCodes[code] ?? 0) + 1;
        if (code === 'worker_crashed') poisoned += 1;
        if (!view.error?.message) poisonNoReason += 1;
      }
      const answered = okCalls.get(j.id!) ?? [];
      if (answered.length > 1) {
        const firstAnswer = Math.min(...answered);
        const explained = ledger.diedHolding(j.id!).some((killedAt) => killedAt >= firstAnswer) || answeredThenKilled.has(j.id!);
        // The worker's own record of its calls: a 'timeout' before the 'ok' means the worker gave up on a call the
        // simulator did answer (a client-side timeout racing the answer), not a crash.
        const outcomes = ((view.regions_tried ?? []) as { outcome: string }[]).map((r) => r.outcome).join(',');
        duplicates.push({ id: j.id!, calls: answered.length, explained, outcomes });
      }
    }
    const batchDone = batchView?.status === 'completed';
    const batchMissing = batchDone ? batchLines.filter((l) => !batchResults.has(l.customId!)).length + batchIdMismatch : 0;
    const modelCalls = [...allCalls.values()].reduce((a, b) => a + b, 0);

    printTable('Chaos run', [
      ['what', 'value'],
      ['jobs submitted (single + batch lines)', `${all.length} (${singles.length} + ${batchLines.length})`],
      ['succeeded / failed', `${succeeded} / ${all.length - succeeded - lost - stuckRunning - stuckOther}`],
      ['failed by code', JSON.stringify(failedCodes)],
      ['terminal', terminal],
      ['lost (accepted, then unknown or missing from batch output)', lost + batchMissing],
      ['stuck running / stuck queued|waiting', `${stuckRunning} / ${stuckOther}`],
      ['wrong results', wrong],
      ['finished by a redelivery of a dead worker\'s message (10-min visibility)', redelivered],
      ['worker SIGKILLs (each replaced)', stats.kills.length],
      ['other events', stats.events.join('; ')],
      ['submit/upload answers retried (status: count)', JSON.stringify(stats.submitAnswers)],
      ['model calls (all statuses) per job', (modelCalls / all.length).toFixed(2)],
      ['jobs with >1 answered model call', duplicates.length],
      ['  of which a killed worker held them after the first answer', duplicates.filter((d) => d.explained).length],
      ['batch', batchId ? `${batchView?.status} ${JSON.stringify(batchView?.request_counts ?? {})}` : 'none'],
      ['run time / drain after chaos', `${((drainedAt - t0) / 1000).toFixed(0)} s`],
    ]);
    for (const d of duplicates.filter((x) => !x.explained)) console.log(`duplicate not explained by a kill: ${d.id} (${d.calls} answered calls; worker saw: ${d.outcomes})`);
    for (const j of all.filter((x) => x.id && !TERMINAL.has(views.get(x.id)?.status))) console.log(`not terminal: ${JSON.stringify(views.get(j.id!))}`);
    printResult({
      jobs: all.length,
      terminal,
      lost: lost + batchMissing,
      stuck_running: stuckRunning,
      stuck_other: stuckOther,
      duplicate_model_calls: duplicates.length,
      duplicates_explained_by_kills: duplicates.filter((d) => d.explained).length,
      duplicate_call_share: Number((duplicates.length / all.length).toFixed(4)),
      poison_without_reason: poisonNoReason,
      poisoned,
      finished_by_10min_redelivery: redelivered,
      wrong_results: wrong,
      failed: failedCodes,
      kills: stats.kills.length,
      batch: batchId ? batchView?.status : 'skipped',
      submit_retries: stats.submitAnswers,
      elapsed_s: Math.round((drainedAt - t0) / 1000),
    });
  } finally {
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
