/**
 * bench:submit — 100 submits per second for 30 s (open loop) against the local app on Azurite.
 * The functions run in their own host process (as in Azure, apart from the load generator). Two scenarios: submit
 * alone (the worker process paused: the target), then the same load while a worker drains on this 2-core machine.
 * Prints p50 / p99 latency of the 202 and errors, next to a baseline measured in the same run: the storage floor
 * (one table insert + one queue send straight from this process, the same work submit does).
 * Last line: {"p50_ms","p99_ms","errors",...}. Target p99 ≤ 50 ms.
 * Options (env): BENCH_RATE (per s, default 100), BENCH_SECONDS (default 30); BENCH_SMOKE=1: 20/s for 2 s.
 */
import { randomUUID } from 'node:crypto';
import { authHeaders, startStack } from '../local/stack';
import { DEFAULT_SIMULATOR_CONFIG } from '../local/simulator';
import { storageClients } from '../src/azure/storage';
import { encodeJobMessage } from '../src/azure/jobQueue';
import { knob, percentile, printResult, printTable, SMOKE } from './report';

const RATE = knob('BENCH_RATE', 100, 20);
const SECONDS = knob('BENCH_SECONDS', 30, 2);
const WARMUP = SMOKE ? 5 : 20;

async function openLoop(total: number, ratePerS: number, send: (i: number) => Promise<boolean>) {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i += 1) {
    const due = start + (i * 1000) / ratePerS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inflight.push(
      (async () => {
        const t0 = performance.now();
        const ok = await send(i).catch(() => false);
        latencies.push(performance.now() - t0);
        if (process.env.BENCH_DEBUG === '1' && performance.now() - t0 > 25) console.log(`slow: ${(performance.now() - t0).toFixed(0)} ms at t+${((t0 - start) / 1000).toFixed(2)} s`);
        if (!ok) errors += 1;
      })(),
    );
  }
  await Promise.all(inflight);
  return { latencies: latencies.sort((a, b) => a - b), errors, seconds: (performance.now() - start) / 1000 };
}

async function main() {
  const total = RATE * SECONDS;
  const sim = { ...DEFAULT_SIMULATOR_CONFIG, latency: { firstTokenMs: 0, perTokenMs: 0 } };
  // The functions run in their own process, as in Azure: the load generator here does not share their event loop.
  const stack = await startStack({ simulator: sim, workers: 1, hostProcess: true });
  const worker = stack.workerProcesses[0]!;
  try {
    const headers = { 'content-type': 'application/json', ...authHeaders(stack.baseUrl) };
    const body = (i: number) => JSON.stringify({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `Benchmark prompt number ${i}: say hello.` }], max_tokens: 20 } });
    const submit = async (i: number) => {
      const res = await fetch(`${stack.baseUrl}/v1/jobs`, { method: 'POST', headers, body: body(i) });
      await res.arrayBuffer();
      return res.status === 202;
    };
    // Warm up connections, caches and lazily-created tables/queues.
    for (let i = 0; i < WARMUP; i += 1) await submit(i);

    // Baseline: the storage floor of a submit (one table insert + one queue send), straight from this process.
    const clients = storageClients({ connectionString: stack.connectionString });
    const table = clients.table('benchfloor');
    const queue = clients.queue('bench-floor');
    await table.createTable();
    await queue.createIfNotExists();
    const floorRun = () =>
      openLoop(Math.min(total, RATE * 10), RATE, async (i) => {
        const id = randomUUID();
        await table.createEntity({ partitionKey: id, rowKey: '', requestJson: body(i), status: 'queued' });
        await queue.sendMessage(encodeJobMessage({ id }));
        return true;
      });

    // Scenario 1 (the target): submit on its own. The worker process is paused (SIGSTOP), as in Azure where the
    // API's instances and the storage account are not shared with the drain; on this 2-core machine a draining
    // worker and one Azurite process serving both would measure the machine, not submit.
    worker.kill('SIGSTOP');
    const floor = await floorRun();
    const run = await openLoop(total, RATE, submit);
    // Scenario 2 (for information): the same load while one worker process drains the backlog on the same machine.
    worker.kill('SIGCONT');
    const floorBusy = await floorRun();
    const busy = await openLoop(total, RATE, submit);

    const p50 = percentile(run.latencies, 0.5);
    const p99 = percentile(run.latencies, 0.99);
    const f50 = percentile(floor.latencies, 0.5);
    const f99 = percentile(floor.latencies, 0.99);
    const row = (name: string, r: Awaited<ReturnType<typeof openLoop>>) => [
      name,
      r.latencies.length,
      r.errors,
      percentile(r.latencies, 0.5).toFixed(1),
      percentile(r.latencies, 0.99).toFixed(1),
      r.latencies.at(-1)!.toFixed(1),
    ];
    printTable(`bench:submit — ${RATE}/s for ${SECONDS} s (open loop), local app on Azurite`, [
      ['', 'requests', 'errors', 'p50 ms', 'p99 ms', 'max ms'],
      row('Sluice POST /api/v1/jobs', run),
      row('baseline: table insert + queue send', floor),
      ['ratio Sluice ÷ baseline', '', '', (p50 / f50).toFixed(2), (p99 / f99).toFixed(2), ''],
      row('while a worker drains: Sluice', busy),
      row('while a worker drains: baseline', floorBusy),
    ]);
    console.log(`target p99 ≤ 50 ms: ${p99 <= 50 ? 'met' : 'NOT met'}`);
    printResult({
      p50_ms: round(p50),
      p99_ms: round(p99),
      errors: run.errors,
      requests: run.latencies.length,
      baseline_p50_ms: round(f50),
      baseline_p99_ms: round(f99),
      p99_ratio: round(p99 / f99),
      draining_p50_ms: round(percentile(busy.latencies, 0.5)),
      draining_p99_ms: round(percentile(busy.latencies, 0.99)),
      draining_errors: busy.errors,
      draining_baseline_p99_ms: round(percentile(floorBusy.latencies, 0.99)),
    });
  } finally {
    worker.kill('SIGCONT');
    await stack.stop();
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
