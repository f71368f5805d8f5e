/**
 * bench:fairness — does one team's flood hold another team back?
 *
 * One simulated deployment (BENCH_TPM, default 300,000 TPM), 4 worker processes, two teams of equal weight:
 *   t = 0      team A submits a batch backlog (BENCH_A_JOBS, default 450 jobs ≈ 130 s of quota);
 *   0 – 30 s   team B submits one interactive job every 2 s;
 *   t = 30 s   team B submits its own batch backlog (BENCH_B_JOBS, default 150 ≈ 45 s of quota), then goes idle.
 * Each job is charged ≈ 1,470 tokens (prompt ≈ 970 + max_tokens 500), as Azure counts at admission.
 * Measured from the job records (a job "starts" when its successful model call starts):
 *   - B's queue wait (submit → start) p50/p95 for its interactive jobs while A floods (target p95 ≤ 5 s);
 *   - each team's share of tokens started while both have a backlog (target 50 % ± 5 %);
 *   - A's tokens as a share of the quota once B is idle (target ≥ 95 %);
 *   - total utilisation: tokens started ÷ (TPM × the time from first to last start) (target ≥ 0.95);
 * then the same run in plain FIFO (SLUICE_DISPATCH=false, SLUICE_QUEUE_LANES=0: one queue; SLUICE_FAIR_SHARE=false).
 * BENCH_DUMP=<file> writes every job's row (JSON lines) for analysis. BENCH_SMOKE=1: 1 worker, 24 + 8 jobs, B live for
 * 3 s, fair share only (BENCH_FIFO=1 adds the FIFO run).
 * Last line: {"b_wait_p95_s","share_a","share_b","a_share_when_b_idle","utilisation","fifo_b_wait_p95_s",…}.
 */
import { writeFileSync } from 'node:fs';
import { TableClient } from '@azure/data-tables';
import { startStack, type RunningStack } from '../local/stack';
import type { SimulatorConfig } from '../local/simulator';
import { knob, percentile, printResult, printTable, SMOKE } from './report';

const int = (name: string, full: number, smoke: number) => Math.max(1, Math.floor(knob(name, full, smoke)));
const TPM = int('BENCH_TPM', 300_000, 1_200_000);
const A_JOBS = int('BENCH_A_JOBS', 450, 24);
const B_JOBS = int('BENCH_B_JOBS', 150, 8);
const B_INTERACTIVE_EVERY_MS = SMOKE ? 1_000 : 2_000;
const B_INTERACTIVE_FOR_MS = SMOKE ? 3_000 : 30_000;
const WORKERS = int('BENCH_WORKERS', 4, 1);
/** BENCH_FIFO=0 skips the comparison run (quicker iterations; its figures print as null); a smoke run skips it unless BENCH_FIFO=1. */
const WITH_FIFO = process.env.BENCH_FIFO ? process.env.BENCH_FIFO !== '0' : !SMOKE;
const MAX_TOKENS = 500;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (n: number, d = 3) => (Number.isFinite(n) ? Math.round(n * 10 ** d) / 10 ** d : null);

const SIMULATOR: SimulatorConfig = {
  regions: [{ name: 'sim-fair', deployments: [{ name: 'gpt-4o-mini', model: 'gpt-4o-mini-2024-07-18', kind: 'chat', tpm: TPM, rpm: Math.ceil(TPM / 100), contextWindow: 128_000, maxOutputTokens: 16_384 }] }],
  latency: { firstTokenMs: 20, perTokenMs: 0 },
};
const HOST_JSON = { extensions: { queues: { maxPollingInterval: '00:00:00.250', batchSize: 16, newBatchThreshold: 8 } } };

/** ≈ 970 prompt tokens of varied text. */
const PROMPT = Array.from({ length: 120 }, (_, i) => `item ${i} of the fairness benchmark`).join('; ');

interface Run {
  label: string;
  bWaits: number[];
  shareA: number;
  shareB: number;
  aShareWhenBIdle: number;
  utilisation: number;
  drainS: number;
  failed: number;
  charged: number;
}

async function post(stack: RunningStack, key: string, path: string, body: unknown): Promise<any> {
  for (let attempt = 0; ; attempt += 1) {
    const res = await fetch(`${stack.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'api-key': key }, body: JSON.stringify(body) });
    if (res.status < 300) return res.json();
    if (attempt >= 5 || (res.status !== 503 && res.status !== 429)) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    await sleep(500);
  }
}

async function teamKey(stack: RunningStack, team: string): Promise<string> {
  await post(stack, stack.adminKey!, '/v1/admin/teams', { id: team, weight: 1 });
  return (await post(stack, stack.adminKey!, `/v1/admin/teams/${team}/keys`, {})).key as string;
}

const job = (tag: string, priority: 'interactive' | 'batch') => ({
  request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `${tag}: ${PROMPT}` }], max_tokens: MAX_TOKENS },
  priority,
});

async function submitMany(stack: RunningStack, key: string, n: number, tag: string, priority: 'interactive' | 'batch'): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        const i = next++;
        await post(stack, key, '/v1/jobs', job(`${tag}-${i}`, priority));
      }
    }),
  );
}

interface Row {
  team: string;
  priority: string;
  status: string;
  createdAt: number;
  start: number;
  charge: number;
  notBefore?: number;
  dequeueCount?: number;
  claimedAt?: number;
}

async function readJobs(stack: RunningStack): Promise<Row[]> {
  const table = TableClient.fromConnectionString(stack.connectionString, 'sluicejobs', { allowInsecureConnection: true });
  const rows: Row[] = [];
  for await (const e of table.listEntities<Record<string, unknown>>({ queryOptions: { select: ['team', 'priority', 'status', 'createdAt', 'completedAt', 'latencyMs', 'promptTokens', 'maxOutputTokens', 'notBefore', 'dequeueCount', 'startedAt'] } })) {
    const completedAt = Number(e.completedAt ?? NaN);
    rows.push({
      team: String(e.team),
      priority: String(e.priority),
      status: String(e.status),
      createdAt: Number(e.createdAt),
      start: completedAt - Number(e.latencyMs ?? 0),
      charge: Number(e.promptTokens ?? 0) + Number(e.maxOutputTokens ?? 0),
      ...(typeof e.notBefore === 'number' ? { notBefore: e.notBefore } : {}),
      ...(typeof e.dequeueCount === 'number' ? { dequeueCount: e.dequeueCount } : {}),
      ...(typeof e.startedAt === 'number' ? { claimedAt: e.startedAt } : {}),
    });
  }
  return rows;
}

async function runOnce(label: string, env: Record<string, string>): Promise<Run> {
  const stack = await startStack({ simulator: SIMULATOR, workers: WORKERS, hostJson: HOST_JSON, env: { SLUICE_MAX_BACKLOG: '0', ...env } });
  try {
    const keyA = await teamKey(stack, 'team-a');
    const keyB = await teamKey(stack, 'team-b');
    const total = A_JOBS + B_JOBS + Math.ceil(B_INTERACTIVE_FOR_MS / B_INTERACTIVE_EVERY_MS);
    const t0 = Date.now();
    const flood = submitMany(stack, keyA, A_JOBS, 'a', 'batch');
    const interactive = (async () => {
      for (let i = 0; Date.now() - t0 < B_INTERACTIVE_FOR_MS; i += 1) {
        await post(stack, keyB, '/v1/jobs', job(`b-live-${i}`, 'interactive'));
        await sleep(Math.max(0, t0 + (i + 1) * B_INTERACTIVE_EVERY_MS - Date.now()));
      }
    })();
    await interactive;
    const bBacklogAt = Date.now();
    await submitMany(stack, keyB, B_JOBS, 'b', 'batch');
    await flood;
    // Wait for the drain.
    let rows: Row[] = [];
    for (const deadline = Date.now() + 15 * 60_000; Date.now() < deadline; await sleep(2_000)) {
      rows = await readJobs(stack);
      const done = rows.filter((r) => r.status === 'succeeded' || r.status === 'failed').length;
      process.stderr.write(`\r[${label}] ${done}/${total} done, ${Math.round((Date.now() - t0) / 1000)} s`);
      if (done >= total) break;
    }
    process.stderr.write('\n');
    const ok = rows.filter((r) => r.status === 'succeeded');
    const bLive = ok.filter((r) => r.team === 'team-b' && r.priority === 'interactive');
    const bWaits = bLive.map((r) => (r.start - r.createdAt) / 1000).sort((x, y) => x - y);
    // BENCH_DUMP=<file>: every job's row as JSON lines, times relative to the first submission (for analysis).
    if (process.env.BENCH_DUMP) writeFileSync(`${process.env.BENCH_DUMP}.${label.replace(/\W+/g, '-')}.jsonl`, rows.map((r) => JSON.stringify({ ...r, createdAt: r.createdAt - t0, start: r.start - t0, ...(r.claimedAt ? { claimedAt: r.claimedAt - t0 } : {}), ...(r.notBefore ? { notBefore: r.notBefore - t0 } : {}) })).join('\n'));
    if (process.env.BENCH_DEBUG) {
      console.error(`t0 = ${t0 % 1_000_000} (as budget and fair-share debug lines print time)`);
      for (const r of [...bLive].sort((x, y) => y.start - y.createdAt - (x.start - x.createdAt)).slice(0, 5)) {
        console.error(`slow B job: created +${((r.createdAt - t0) / 1000).toFixed(1)} s, waited ${((r.start - r.createdAt) / 1000).toFixed(1)} s (claimed after ${(((r.claimedAt ?? r.start) - r.createdAt) / 1000).toFixed(1)} s), parked until +${r.notBefore ? ((r.notBefore - t0) / 1000).toFixed(1) : '-'} s, dequeue ${r.dequeueCount}`);
      }
    }
    const bBatch = ok.filter((r) => r.team === 'team-b' && r.priority === 'batch');
    const aAll = ok.filter((r) => r.team === 'team-a');
    const bBatchEnd = Math.max(...bBatch.map((r) => r.start));
    const aEnd = Math.max(...aAll.map((r) => r.start));
    // Both backlogged: from B's backlog submission (+5 s to let it arrive) until B's last batch job starts (−5 s).
    const both = [bBacklogAt + 5_000, Math.min(bBatchEnd, aEnd) - 5_000] as const;
    const tokensIn = (rs: Row[], [from, to]: readonly [number, number]) => rs.filter((r) => r.start >= from && r.start < to).reduce((s, r) => s + r.charge, 0);
    const aBoth = tokensIn(aAll, both);
    const bBoth = tokensIn([...bBatch, ...bLive], both);
    // B idle: after B's last job started (+3 s) until A's last start (−3 s): A's tokens ÷ quota over that span.
    const idle = [Math.max(bBatchEnd, ...bLive.map((r) => r.start)) + 3_000, aEnd - 3_000] as const;
    const idleS = Math.max(0, (idle[1] - idle[0]) / 1000);
    const starts = ok.map((r) => r.start);
    const first = Math.min(...starts);
    const last = Math.max(...starts);
    const charged = ok.reduce((s, r) => s + r.charge, 0);
    // Tokens started per 10 s, per team, as a share of 10 s of quota: where a share or the idle span was lost.
    const bins = (rs: Row[]) => {
      const out = new Array<number>(Math.ceil((last - first) / 10_000) + 1).fill(0);
      for (const r of rs) out[Math.floor((r.start - first) / 10_000)]! += r.charge / (TPM / 6);
      return out.map((v) => v.toFixed(2)).join(' ');
    };
    console.log(`[${label}] per 10 s from the first start, A: ${bins(aAll)}`);
    console.log(`[${label}] per 10 s from the first start, B: ${bins([...bBatch, ...bLive])}`);
    console.log(`[${label}] B idle span: +${((idle[0] - first) / 1000).toFixed(1)} s to +${((idle[1] - first) / 1000).toFixed(1)} s; both busy: +${((both[0] - first) / 1000).toFixed(1)} s to +${((both[1] - first) / 1000).toFixed(1)} s`);
    // Tokens started up to the last start, over the span: the last job's own tokens fall outside the span.
    const lastCharge = ok.find((r) => r.start === last)?.charge ?? 0;
    return {
      label,
      bWaits,
      shareA: aBoth / Math.max(1, aBoth + bBoth),
      shareB: bBoth / Math.max(1, aBoth + bBoth),
      aShareWhenBIdle: idleS > 5 ? tokensIn(aAll, idle) / ((TPM / 60) * idleS) : NaN,
      utilisation: (charged - lastCharge) / ((TPM / 60) * Math.max(1, (last - first) / 1000)),
      drainS: (last - first) / 1000,
      failed: rows.filter((r) => r.status === 'failed').length,
      charged,
    };
  } finally {
    await stack.stop();
  }
}

async function main() {
  const fair = await runOnce('fair share', {});
  const fifo = !WITH_FIFO ? undefined : await runOnce('plain FIFO', { SLUICE_DISPATCH: 'false', SLUICE_QUEUE_LANES: '0', SLUICE_FAIR_SHARE: 'false' });
  const p = (r: Run | undefined, q: number) => (r ? round(percentile(r.bWaits, q), 2) : null);
  printTable('bench:fairness — team A floods, team B interactive then backlogged then idle (equal weights)', [
    ['run', 'B wait p50 s', 'B wait p95 s', 'share A (both busy)', 'share B', 'A / quota (B idle)', 'utilisation', 'drain s', 'failed'],
    ...[fair, ...(fifo ? [fifo] : [])].map((r) => [r.label, p(r, 0.5) ?? '-', p(r, 0.95) ?? '-', round(r.shareA) ?? '-', round(r.shareB) ?? '-', round(r.aShareWhenBIdle) ?? '-', round(r.utilisation) ?? '-', round(r.drainS, 1) ?? '-', r.failed]),
  ]);
  console.log('targets: B wait p95 ≤ 5 s; shares 0.50 ± 0.05; A ≥ 0.95 of the quota while B is idle; utilisation ≥ 0.95');
  printResult({
    b_wait_p50_s: p(fair, 0.5),
    b_wait_p95_s: p(fair, 0.95),
    share_a: round(fair.shareA),
    share_b: round(fair.shareB),
    a_share_when_b_idle: round(fair.aShareWhenBIdle),
    utilisation: round(fair.utilisation),
    failed_jobs: fair.failed,
    fifo_b_wait_p50_s: p(fifo, 0.5),
    fifo_b_wait_p95_s: p(fifo, 0.95),
    fifo_share_a: fifo ? round(fifo.shareA) : null,
    fifo_share_b: fifo ? round(fifo.shareB) : null,
    fifo_utilisation: fifo ? round(fifo.utilisation) : null,
    b_wait_p95_ratio: fifo ? round((percentile(fair.bWaits, 0.95) || 0) / Math.max(0.001, percentile(fifo.bWaits, 0.95))) : null,
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
