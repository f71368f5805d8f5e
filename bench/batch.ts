/**
 * `npm run bench:batch` — a 10,000-line batch on the local app (Azurite + simulator + the real functions).
 * Prints: upload + validation + fan-out time (until every line is queued), drain time against the quota-bound
 * minimum (charged tokens ÷ TPM), peak RSS of the function host process during upload and during finalisation,
 * and, last, one JSON line.
 * Knobs: BENCH_LINES (10000), BENCH_TPM (600000), BENCH_RPM (6 per 1,000 TPM, as Azure assigns chat deployments),
 * BENCH_MAX_TOKENS (300), BENCH_WORKERS (0 = all in-process). BENCH_SMOKE=1: 50 lines.
 *
 * The default lines charge ~315 tokens each (a short prompt + max_tokens 300), so that the quota is what bounds the
 * drain, as it does for real batches. With tiny lines (BENCH_MAX_TOKENS=20 BENCH_RPM=600000) the drain measures
 * instead how many jobs per second this machine's one Azurite process serves.
 */
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import OpenAI, { toFile } from 'openai';
import { startStack } from '../local/stack';
import type { SimulatorConfig } from '../local/simulator/index';
import { getBatchServices } from '../src/runtime/services';
import { groupStats } from '../src/azure/jobQueue';
import { knob, printResult } from './report';

const LINES = knob('BENCH_LINES', 10_000, 50);
const TPM = knob('BENCH_TPM', 600_000);
const MAX_TOKENS = knob('BENCH_MAX_TOKENS', 300);
const RPM = knob('BENCH_RPM', Math.round((TPM * 6) / 1000));
const WORKERS = knob('BENCH_WORKERS', 0);

const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The storage floor of a fan-out, measured on the same Azurite before the batch: what `lines` job-row inserts and
 * queue sends cost at the fan-out's concurrency, with nothing else running (scratch table and queue, deleted after).
 */
async function storageFloor(connectionString: string, lines: number, concurrency: number): Promise<number> {
  const table = TableClient.fromConnectionString(connectionString, 'benchfloor', { allowInsecureConnection: true });
  const queue = new QueueClient(connectionString, 'bench-floor');
  await table.createTable();
  await queue.create();
  const row = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Summarise item 0 in one word.' }], max_tokens: MAX_TOKENS });
  const t0 = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < lines; i = next++) {
        await table.createEntity({ partitionKey: `floor-${i}`, rowKey: '', status: 'queued', request: row });
        await queue.sendMessage(JSON.stringify({ id: `floor-${i}` }));
      }
    }),
  );
  const seconds = (Date.now() - t0) / 1000;
  await table.deleteTable();
  await queue.delete();
  return seconds;
}

/** Peak RSS of this process (the in-process functions host) while `fn` runs. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const value = await fn();
    return { value, peak: Math.max(peak, process.memoryUsage().rss) };
  } finally {
    clearInterval(timer);
  }
}

async function main(): Promise<void> {
  const simulator: SimulatorConfig = {
    regions: [{ name: 'sim-bench', deployments: [{ name: 'gpt-4o-mini', model: 'gpt-4o-mini-2024-07-18', tpm: TPM, rpm: RPM, contextWindow: 128_000, maxOutputTokens: 16_384 }] }],
    latency: { firstTokenMs: 20, perTokenMs: 1 },
  };
  const stack = await startStack({
    simulator,
    workers: WORKERS,
    env: { SLUICE_BATCH_SWEEP_SCHEDULE: '*/1 * * * * *' },
    hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.200', batchSize: 32, newBatchThreshold: 24 } } },
  });
  try {
    const client = new OpenAI({ baseURL: `${stack.baseUrl}/v1`, apiKey: stack.apiKey!, maxRetries: 0 });
    const text = Array.from({ length: LINES }, (_, i) =>
      JSON.stringify({ custom_id: `bench-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `Summarise item ${i} in one word.` }], max_tokens: MAX_TOKENS } }),
    ).join('\n');
    const floorS = await storageFloor(stack.connectionString, LINES, Number(process.env.SLUICE_BATCH_CONCURRENCY ?? 64));
    console.log(`storage floor: ${LINES} job-row inserts + queue sends in ${floorS.toFixed(1)} s on this Azurite`);
    const batchServices = getBatchServices();
    const rssBefore = process.memoryUsage().rss;

    const t0 = Date.now();
    const upload = await peakRss(async () => {
      const file = await client.files.create({ file: await toFile(Buffer.from(text), 'bench.jsonl'), purpose: 'batch' });
      const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { team: 'bench' } });
      const createdAt = Date.now();
      for (;;) {
        const b = (await batchServices.batches.get(batch.id))!.batch;
        if (b.status === 'failed') throw new Error(`batch failed: ${JSON.stringify(b.errors?.slice(0, 3))}`);
        if (b.total > 0 && b.cursorLines >= b.total) break;
        await sleep(50);
      }
      return { batchId: batch.id, uploadS: (createdAt - t0) / 1000 };
    });
    const fanoutS = (Date.now() - t0) / 1000;
    const { batchId, uploadS } = upload.value;

    const drainStart = t0;
    let drainedAt = 0;
    // In-process workers only: when the group messages had all been turned into one message per line.
    let expandedAt = 0;
    const noteExpanded = () => {
      if (!expandedAt && WORKERS === 0 && groupStats.expandedIds >= LINES) expandedAt = Date.now();
    };
    noteExpanded();
    let printedAt = Date.now();
    const finalise = await peakRss(async () => {
      for (;;) {
        const b = await client.batches.retrieve(batchId);
        const done = (b.request_counts?.completed ?? 0) + (b.request_counts?.failed ?? 0);
        noteExpanded();
        if (Date.now() - printedAt >= 20_000) {
          printedAt = Date.now();
          console.log(`  t+${((printedAt - t0) / 1000).toFixed(0)} s: ${done}/${LINES} lines done (${b.status})`);
        }
        if (!drainedAt && (done >= LINES || b.status === 'finalizing' || b.status === 'completed')) drainedAt = Date.now();
        if (b.status === 'completed' || b.status === 'failed' || b.status === 'expired') return b;
        await sleep(200);
      }
    });
    const batch = finalise.value;
    const totalS = (Date.now() - t0) / 1000;
    const drainS = (drainedAt - drainStart) / 1000;
    const counters = stack.sim!.counters();
    const charged = Object.values(counters).flatMap((r) => Object.values(r)).reduce((n, c) => n + c.tokensCharged, 0);
    const throttled = Object.values(counters).flatMap((r) => Object.values(r)).reduce((n, c) => n + c.status429, 0);
    const minimumS = (charged / TPM) * 60;
    const requestMinimumS = (LINES / RPM) * 60;
    const result = {
      lines: LINES,
      upload_s: round(uploadS),
      fanout_s: round(fanoutS),
      fanout_floor_s: round(floorS),
      fanout_vs_floor_ratio: round(fanoutS / floorS),
      expanded_s: expandedAt ? round((expandedAt - t0) / 1000) : null,
      drain_s: round(drainS),
      total_s: round(totalS),
      charged_tokens: charged,
      tpm: TPM,
      quota_min_s: round(minimumS),
      rpm: RPM,
      request_min_s: round(requestMinimumS),
      drain_vs_quota_ratio: round(drainS / minimumS),
      upstream_429: throttled,
      rss_before_mib: mib(rssBefore),
      peak_rss_upload_mib: mib(upload.peak),
      peak_rss_finalise_mib: mib(finalise.peak),
      peak_rss_mib: mib(Math.max(upload.peak, finalise.peak)),
      failed_lines: batch.request_counts?.failed ?? -1,
      completed_lines: batch.request_counts?.completed ?? 0,
      workers: WORKERS,
    };
    console.log(`batch of ${LINES} lines (${mib(Buffer.byteLength(text))} MiB), TPM ${TPM}, RPM ${RPM}, max_tokens ${MAX_TOKENS}, worker processes ${WORKERS}`);
    console.log(`  upload + create           ${result.upload_s} s`);
    console.log(`  + validation + fan-out    ${result.fanout_s} s until every line was queued (target ≤ 10 s)`);
    console.log(`  one message per line      ${result.expanded_s ?? '—'} s until workers had expanded every group message (in-process workers only)`);
    console.log(`  per-line storage floor    ${result.fanout_floor_s} s for ${LINES} bare inserts + sends (one of each per line) → fan-out ÷ floor ${result.fanout_vs_floor_ratio}`);
    console.log(`  drain                     ${result.drain_s} s; quota-bound minimum ${result.quota_min_s} s (${charged} charged tokens ÷ ${TPM} TPM; requests alone: ${result.request_min_s} s) → ratio ${result.drain_vs_quota_ratio} (target ≤ 1.05)`);
    console.log(`  completed                 ${result.total_s} s (${result.completed_lines} ok, ${result.failed_lines} failed, ${throttled} upstream 429s)`);
    console.log(`  peak RSS (host process)   upload ${result.peak_rss_upload_mib} MiB, finalise ${result.peak_rss_finalise_mib} MiB (before ${result.rss_before_mib} MiB)`);
    printResult(result);
  } finally {
    await stack.stop();
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
