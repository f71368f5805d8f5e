/**
 * bench:teams, phase 1 — fairness among many teams on the real stack (Azurite, the simulator, worker processes).
 *
 * One simulated deployment (BENCH_TPM, default 300,000). BENCH_TEAMS teams (default 50) are created through the admin
 * API with weights 1–3 from a seeded PRNG. Then:
 *   - the first team floods one batch of BENCH_FLOOD_LINES lines (default 50,000; Files + Batches API);
 *   - four more (weights 1, 2, 3, 3) each submit enough batch-priority jobs to use the whole quota alone for the run;
 *   - every team submits a small interactive job every BENCH_INTERACTIVE_EVERY_S (default 5), staggered.
 * Batch work charges ≈ 2,030 tokens a job (a short prompt + max_tokens 2,000); interactive ≈ 70 (max_tokens 50), so
 * all teams' interactive load is ≈ 14 % of the quota. Measured over BENCH_DURATION_S (default 180) after
 * BENCH_WARMUP_S (default 30), from the job records (a job starts when its successful model call starts):
 *   - interactive wait: submit → start, p50 / p95, over interactive jobs submitted in the window (one not started
 *     when the bench stops waiting counts with its wait so far);
 *   - share error: per full minute, among teams backlogged the whole minute, |team's share of tokens started − its
 *     weight ÷ the sum of their weights|; a team is backlogged over [a, b) when one of its jobs was submitted by a
 *     and had not started by b (the flood team: its batch existed at a and not every line had started by b);
 *   - utilisation: tokens started in the window ÷ (TPM × window).
 */
import { QueueServiceClient } from '@azure/storage-queue';
import OpenAI, { toFile } from 'openai';
import { startStack, type RunningStack } from '../local/stack';
import type { SimulatorConfig } from '../local/simulator';
import { prng } from '../test/support/prng';
import { knob, percentile, printTable, SMOKE } from './report';
import { createTeamWithKey, post, readJobRows, sleep, type JobRow } from './stackClient';

const int = (name: string, full: number, smoke: number) => Math.max(1, Math.floor(knob(name, full, smoke)));
const TPM = int('BENCH_TPM', 300_000, 300_000);
const TEAMS = Math.max(6, int('BENCH_TEAMS', 50, 6));
const FLOOD_LINES = int('BENCH_FLOOD_LINES', 50_000, 200);
const DURATION_S = int('BENCH_DURATION_S', 180, 20);
const WARMUP_S = Math.floor(knob('BENCH_WARMUP_S', 30, 5));
const INTERACTIVE_EVERY_S = knob('BENCH_INTERACTIVE_EVERY_S', 5, 3);
const WORKERS = int('BENCH_WORKERS', 4, 1);
/** The span of one share measurement: a minute, as the target says; a smoke run has no full minute. */
const SHARE_SPAN_S = int('BENCH_SHARE_SPAN_S', 60, 10);
/** How long, after the window, interactive jobs submitted in it may take to start before the bench stops waiting. */
const GRACE_S = SMOKE ? 10 : 30;
const BATCH_MAX_TOKENS = 2_000;
const INTERACTIVE_MAX_TOKENS = 50;
/** Weights of the teams that hold job backlogs (teams 1 to 4; team 0 floods the batch). */
const BACKLOG_WEIGHTS = SMOKE ? [1, 3] : [1, 2, 3, 3];

const SIMULATOR: SimulatorConfig = {
  regions: [{ name: 'sim-teams', deployments: [{ name: 'gpt-4o-mini', model: 'gpt-4o-mini-2024-07-18', kind: 'chat', tpm: TPM, rpm: Math.ceil(TPM / 100), contextWindow: 128_000, maxOutputTokens: 16_384 }] }],
  latency: { firstTokenMs: 20, perTokenMs: 0 },
};
const HOST_JSON = { extensions: { queues: { maxPollingInterval: '00:00:00.250', batchSize: 16, newBatchThreshold: 8 } } };

const chat = (content: string, maxTokens: number) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: maxTokens });

export interface FairnessResult {
  teams: number;
  interactiveJobs: number;
  /** Jobs of any kind that failed (none should: the quota only delays). */
  failedJobs: number;
  interactiveWaitP50S: number;
  interactiveWaitP95S: number;
  shareErrorMax: number;
  utilisation: number;
  /** Per measured span: the backlogged teams and the worst error. */
  spans: Array<{ from: number; backlogged: number; worstTeam: string; share: number; target: number }>;
  setupS: number;
  measuredS: number;
}

interface Team {
  id: string;
  weight: number;
  key: string;
}

/** Submits `n` batch-priority jobs for a team, 8 at a time; resolves when all are accepted. */
async function submitBacklog(stack: RunningStack, team: Team, n: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < n; i = next++) await post(stack, team.key, '/v1/jobs', { request: chat(`${team.id} backlog ${i}: summarise this item.`, BATCH_MAX_TOKENS), priority: 'batch' });
    }),
  );
}

/** Uploads a batch input of `lines` lines and creates the batch; returns when the batch was created. */
async function flood(stack: RunningStack, team: Team, lines: number): Promise<{ id: string; createdAt: number }> {
  const client = new OpenAI({ baseURL: `${stack.baseUrl}/v1`, apiKey: team.key, maxRetries: 2 });
  const text = Array.from({ length: lines }, (_, i) => JSON.stringify({ custom_id: `flood-${i}`, method: 'POST', url: '/v1/chat/completions', body: chat(`flood line ${i}: summarise this item.`, BATCH_MAX_TOKENS) })).join('\n');
  const file = await client.files.create({ file: await toFile(Buffer.from(text), 'flood.jsonl'), purpose: 'batch' });
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  return { id: batch.id, createdAt: Date.now() };
}

/** The flood batch as the API shows it now (status and line counts), for the report. */
async function batchStatus(stack: RunningStack, team: Team, id: string): Promise<string> {
  const res = await fetch(`${stack.baseUrl}/v1/batches/${id}`, { headers: { 'api-key': team.key } });
  const b = (await res.json()) as { status?: string; request_counts?: { total: number; completed: number; failed: number } };
  return `${b.status}, ${b.request_counts?.completed ?? 0} of ${b.request_counts?.total ?? 0} lines completed, ${b.request_counts?.failed ?? 0} failed`;
}

/** BENCH_DEBUG=1: every queue's depth, the jobs queues' depths every 5 s, tokens started per 10 s and the host's last batch-related log lines (stderr). */
async function debugQueues(stack: RunningStack): Promise<void> {
  const service = QueueServiceClient.fromConnectionString(stack.connectionString);
  for await (const q of service.listQueues()) {
    const props = await service.getQueueClient(q.name).getProperties();
    console.error(`queue ${q.name}: ${props.approximateMessagesCount} messages`);
  }
  // BENCH_DEBUG=budget with SLUICE_BUDGET_DEBUG=1: the workers' budget lines (one per row write) instead.
  const pattern = process.env.BENCH_DEBUG === 'budget' ? /budget [0-9a-f]{4} / : /batch|group|lane/i;
  for (const line of stack.logs().filter((l) => pattern.test(l)).slice(-400)) console.error(line);
}

/** The interactive and batch jobs queues' depths, "i/b" (BENCH_DEBUG). */
async function jobsQueueDepths(stack: RunningStack): Promise<string> {
  const service = QueueServiceClient.fromConnectionString(stack.connectionString);
  const depth = async (name: string) => (await service.getQueueClient(name).getProperties().catch(() => undefined))?.approximateMessagesCount ?? 0;
  return `${await depth('sluice-jobs')}/${await depth('sluice-jobs-batch')}`;
}

/** Whether `team` was backlogged over all of [a, b): one of its jobs was submitted by a and had not started by b. */
function backloggedOver(jobs: readonly JobRow[], a: number, b: number): boolean {
  return jobs.some((j) => j.priority === 'batch' && j.createdAt <= a && !(j.start < b));
}

export async function runFairnessPhase(): Promise<FairnessResult> {
  const setupStart = Date.now();
  const stack = await startStack({ simulator: SIMULATOR, workers: WORKERS, hostJson: HOST_JSON, env: { SLUICE_MAX_BACKLOG: '0' } });
  try {
    const random = prng(27);
    const teams: Team[] = [];
    for (let i = 0; i < TEAMS; i += 1) {
      const id = `team-${String(i).padStart(2, '0')}`;
      const weight = i >= 1 && i <= BACKLOG_WEIGHTS.length ? BACKLOG_WEIGHTS[i - 1]! : 1 + Math.floor(random() * 3);
      teams.push({ id, weight, key: await createTeamWithKey(stack, id, weight) });
    }
    const flooder = teams[0]!;
    const backlogTeams = teams.slice(1, 1 + BACKLOG_WEIGHTS.length);
    const floodBatch = await flood(stack, flooder, FLOOD_LINES);
    const floodCreatedAt = floodBatch.createdAt;
    const setupS = (Date.now() - setupStart) / 1000;

    const t0 = Date.now();
    const windowStart = t0 + WARMUP_S * 1000;
    const windowEnd = windowStart + DURATION_S * 1000;
    // Enough jobs for each backlogged team to use the whole quota alone until the window ends.
    const perTeam = Math.ceil((TPM / 60) * (WARMUP_S + DURATION_S + GRACE_S) / (BATCH_MAX_TOKENS + 30));
    const backlogs = Promise.all(backlogTeams.map((t) => submitBacklog(stack, t, perTeam))).catch((err: Error) => console.error(`backlog submit: ${err.message}`));
    // Interactive: team k's turn comes every INTERACTIVE_EVERY_S, offset by k / TEAMS of that; not awaited in turn,
    // so that a slow answer does not delay the next team's submit.
    const interactive: Promise<unknown>[] = [];
    const depths: string[] = [];
    const sampler = process.env.BENCH_DEBUG ? setInterval(() => void jobsQueueDepths(stack).then((d) => depths.push(`${Math.round((Date.now() - t0) / 1000)}s:${d}`)), 5_000) : undefined;
    const gapMs = (INTERACTIVE_EVERY_S * 1000) / TEAMS;
    for (let k = 0; t0 + k * gapMs < windowEnd; k += 1) {
      await sleep(Math.max(0, t0 + k * gapMs - Date.now()));
      const team = teams[k % TEAMS]!;
      interactive.push(post(stack, team.key, '/v1/jobs', { request: chat(`${team.id} live ${k}: one word please.`, INTERACTIVE_MAX_TOKENS), priority: 'interactive' }).catch((err: Error) => console.error(`interactive submit: ${err.message}`)));
      if (k % TEAMS === 0) process.stderr.write(`\r[teams] ${Math.round((Date.now() - t0) / 1000)} s of ${WARMUP_S + DURATION_S} s`);
    }
    process.stderr.write('\n');
    await Promise.all(interactive);
    // The window is over; give interactive jobs submitted in it a moment to start.
    let rows: JobRow[] = [];
    for (const deadline = Date.now() + GRACE_S * 1000; ; await sleep(1_000)) {
      rows = await readJobRows(stack);
      const pending = rows.filter((r) => r.priority === 'interactive' && r.createdAt >= windowStart && r.createdAt < windowEnd && !(r.start >= 0) && r.status !== 'failed');
      if (pending.length === 0 || Date.now() > deadline) break;
    }
    const readAt = Date.now();
    const floodRows = rows.filter((r) => r.team === flooder.id && r.batchId);
    const statusCounts = new Map<string, number>();
    for (const r of floodRows) statusCounts.set(r.status, (statusCounts.get(r.status) ?? 0) + 1);
    const byStatus = [...statusCounts].map(([k, n]) => `${k} ${n}`).join(', ');
    console.log(`flood batch: ${await batchStatus(stack, flooder, floodBatch.id)}; its line jobs stored: ${floodRows.length} (${byStatus || 'none'})`);
    if (sampler) clearInterval(sampler);
    if (process.env.BENCH_DEBUG) {
      await debugQueues(stack);
      console.error(`jobs queue depths (interactive/batch): ${depths.join(' ')}`);
      const per10: string[] = [];
      for (let a = t0; a < windowEnd; a += 10_000) {
        const inSpan = rows.filter((r) => r.start >= a && r.start < a + 10_000);
        per10.push(`${Math.round((a - t0) / 1000)}s:${Math.round(inSpan.reduce((x, r) => x + r.charge, 0) / ((TPM / 60) * 10) * 100)}%/${inSpan.filter((r) => r.priority === 'interactive').length}i`);
      }
      console.error(`tokens started per 10 s (% of quota / interactive jobs): ${per10.join(' ')}`);
    }
    await backlogs;

    const inWindow = rows.filter((r) => r.priority === 'interactive' && r.createdAt >= windowStart && r.createdAt < windowEnd);
    const live = inWindow.filter((r) => r.status !== 'failed');
    const waits = live.map((r) => ((Number.isFinite(r.start) ? r.start : readAt) - r.createdAt) / 1000).sort((x, y) => x - y);
    const byTeam = new Map<string, JobRow[]>(teams.map((t) => [t.id, []]));
    for (const r of rows) byTeam.get(r.team)?.push(r);
    const started = rows.filter((r) => Number.isFinite(r.start));
    const tokensIn = (rs: readonly JobRow[], a: number, b: number) => rs.reduce((s, r) => (r.start >= a && r.start < b ? s + r.charge : s), 0);

    const spans: FairnessResult['spans'] = [];
    let shareErrorMax = NaN;
    for (let a = windowStart; a + SHARE_SPAN_S * 1000 <= windowEnd; a += SHARE_SPAN_S * 1000) {
      const b = a + SHARE_SPAN_S * 1000;
      const floodLinesStarted = byTeam.get(flooder.id)!.filter((r) => r.batchId && r.start < b).length;
      const busy = teams.filter((t) => (t === flooder ? floodCreatedAt <= a && floodLinesStarted < FLOOD_LINES : backloggedOver(byTeam.get(t.id)!, a, b)));
      if (busy.length < 2) continue;
      const tokens = busy.map((t) => tokensIn(byTeam.get(t.id)!, a, b));
      const sumTokens = tokens.reduce((s, v) => s + v, 0);
      const sumWeights = busy.reduce((s, t) => s + t.weight, 0);
      let worst = { team: '', share: 0, target: 0, error: -1 };
      busy.forEach((t, i) => {
        const share = sumTokens > 0 ? tokens[i]! / sumTokens : 0;
        const target = t.weight / sumWeights;
        if (Math.abs(share - target) > worst.error) worst = { team: t.id, share, target, error: Math.abs(share - target) };
      });
      spans.push({ from: (a - windowStart) / 1000, backlogged: busy.length, worstTeam: worst.team, share: worst.share, target: worst.target });
      shareErrorMax = Number.isNaN(shareErrorMax) ? worst.error : Math.max(shareErrorMax, worst.error);
    }

    printTable(`bench:teams phase 1 — per ${SHARE_SPAN_S} s span, backlogged teams and the team furthest from its weight share`, [
      ['span from s', 'backlogged teams', 'worst team', 'its share', 'weight share', 'error'],
      ...spans.map((s) => [s.from, s.backlogged, s.worstTeam, s.share.toFixed(3), s.target.toFixed(3), Math.abs(s.share - s.target).toFixed(3)]),
    ]);
    const perTeamRows = [flooder, ...backlogTeams].map((t) => {
      const mine = byTeam.get(t.id)!;
      return [t.id, t.weight, t === flooder ? 'batch flood' : 'job backlog', tokensIn(mine, windowStart, windowEnd), mine.filter((r) => r.priority === 'interactive' && Number.isFinite(r.start)).length];
    });
    printTable('bench:teams phase 1 — the teams with backlogs: tokens started in the window', [['team', 'weight', 'backlog', 'tokens started', 'interactive started'], ...perTeamRows]);

    const total = tokensIn(started, windowStart, windowEnd);
    return {
      teams: TEAMS,
      interactiveJobs: live.length,
      failedJobs: rows.filter((r) => r.status === 'failed').length,
      interactiveWaitP50S: percentile(waits, 0.5),
      interactiveWaitP95S: percentile(waits, 0.95),
      shareErrorMax,
      utilisation: total / ((TPM / 60) * DURATION_S),
      spans,
      setupS,
      measuredS: (readAt - t0) / 1000,
    };
  } finally {
    await stack.stop();
  }
}
