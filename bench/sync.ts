/**
 * bench:sync — the synchronous OpenAI-compatible API: what Sluice adds to a call, and what it does under saturation.
 *
 * Every phase runs the app's HTTP host in a child process (the load generator does not share its event loop) against
 * one simulated region with one chat deployment.
 *   1. Overhead, quota free (100M TPM; 20 ms to the first token, 2 ms per token): the same streamed prompts sent to
 *      the simulator directly and through Sluice, alternately. Reported: p50 and p99 of time-to-first-token and of
 *      total latency each way, and what Sluice adds (Sluice's percentile minus the direct one). Target: p50 ≤ 5 ms,
 *      p99 ≤ 25 ms added to TTFT.
 *   2. Saturation: BENCH_CLIENTS (200) streaming clients, half of team A and half of team B, each sending one request
 *      after another for BENCH_SECONDS (180) against BENCH_TPM (300,000). Each request is charged ≈ 500 tokens (prompt
 *      ≈ 200 + max_tokens 300) and may wait for quota up to 60 s (x-sluice-max-wait-ms). Reported: the deployment's
 *      429s (target 0), client errors (anything but a 200 stream that ends in [DONE] or a 429 past the deadline;
 *      target 0), the share of requests refused past their deadline (target ≤ 1 %), utilisation (tokens charged for
 *      requests admitted in the measured span ÷ TPM × span; target ≥ 0.95) and team A's share of them (0.50 ± 0.05).
 *   3. Mixed: team A's backlog of batch jobs (bench:quota-style, ≈ 80 % of the phase's quota) drains through the
 *      worker while team B's interactive sync clients (BENCH_MIXED_CLIENTS, 5) send one request per second each:
 *      about half the TPM (5 × ≈ 500 tokens a second), the batch backlog filling the rest. (Ten clients would ask for
 *      the whole TPM by themselves, and then some of them must wait whatever the rules.)
 *      Reported: the sync requests' quota wait p95 (x-sluice-quota-wait-ms; target ≤ 2 s).
 *   4. Cache: one non-streaming request repeated with `x-sluice-cache: exact`; the p50 latency of the hits, or null
 *      when the app answers no hit (no cache wired).
 * BENCH_SMOKE=1: a few requests per phase, seconds each; figures not judged.
 * Last line: {"overhead_ttft_p50_ms","overhead_ttft_p99_ms","upstream_429","client_errors","late_429_share",
 * "utilisation","share_a","sync_wait_p95_s_mixed","cache_hit_p50_ms",…}.
 */
import { startStack, type RunningStack } from '../local/stack';
import type { SimulatorConfig } from '../local/simulator';
import { knob, percentile, printResult, printTable, SMOKE } from './report';

const int = (name: string, full: number, smoke: number) => Math.max(1, Math.floor(knob(name, full, smoke)));
const OVERHEAD_N = int('BENCH_OVERHEAD_N', 400, 20);
const CLIENTS = int('BENCH_CLIENTS', 200, 8);
const SECONDS = int('BENCH_SECONDS', 180, 5);
const TPM = int('BENCH_TPM', 300_000, 300_000);
const MIXED_CLIENTS = int('BENCH_MIXED_CLIENTS', 5, 2);
const MIXED_SECONDS = int('BENCH_MIXED_SECONDS', 120, 5);
const CACHE_N = int('BENCH_CACHE_N', 50, 5);
const MAX_TOKENS = 300;
const MAX_WAIT_MS = 60_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (n: number, d = 3) => (Number.isFinite(n) ? Math.round(n * 10 ** d) / 10 ** d : null);

function simulator(tpm: number, latency: { firstTokenMs: number; perTokenMs: number }): SimulatorConfig {
  return {
    regions: [{ name: 'sim-sync', deployments: [{ name: 'gpt-4o-mini', model: 'gpt-4o-mini-2024-07-18', kind: 'chat', tpm, rpm: Math.ceil(tpm / 100), contextWindow: 128_000, maxOutputTokens: 16_384 }] }],
    latency,
  };
}

/** ≈ 200 prompt tokens of varied text. */
const prompt = (tag: string) => `${tag}: ${Array.from({ length: 24 }, (_, i) => `line ${i} of the sync benchmark`).join('; ')}`;
const chatBody = (tag: string, extra: Record<string, unknown> = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt(tag) }], max_tokens: MAX_TOKENS, ...extra });

async function post(stack: RunningStack, key: string, path: string, body: unknown): Promise<any> {
  const res = await fetch(`${stack.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'api-key': key }, body: JSON.stringify(body) });
  if (res.status >= 300) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

async function teamKey(stack: RunningStack, team: string): Promise<string> {
  await post(stack, stack.adminKey!, '/v1/admin/teams', { id: team, weight: 1 });
  return (await post(stack, stack.adminKey!, `/v1/admin/teams/${team}/keys`, {})).key as string;
}

interface Streamed {
  status: number;
  /** ms from sending to the first content chunk, to the end. */
  ttftMs: number;
  totalMs: number;
  /** The stream ended with [DONE]. */
  complete: boolean;
  headers: Headers;
  errorCode?: string;
}

/** One streamed chat completion, timed from sending until the first content and until the end. */
async function stream(url: string, headers: Record<string, string>, body: unknown): Promise<Streamed> {
  const sent = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  if (res.status !== 200) {
    const text = await res.text();
    let code: string | undefined;
    try {
      code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
    } catch {
      // not JSON
    }
    return { status: res.status, ttftMs: NaN, totalMs: performance.now() - sent, complete: false, headers: res.headers, ...(code ? { errorCode: code } : {}) };
  }
  const decoder = new TextDecoder();
  let text = '';
  let ttftMs = NaN;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    if (Number.isNaN(ttftMs) && /"content":"[^"]/.test(text)) ttftMs = performance.now() - sent;
  }
  return { status: 200, ttftMs, totalMs: performance.now() - sent, complete: text.includes('data: [DONE]'), headers: res.headers };
}

interface OverheadResult {
  direct: { ttft: number[]; total: number[] };
  sluice: { ttft: number[]; total: number[] };
}

async function overhead(): Promise<OverheadResult> {
  const stack = await startStack({ simulator: simulator(100_000_000, { firstTokenMs: 20, perTokenMs: 2 }), hostProcess: true });
  try {
    const endpoint = (JSON.parse(stack.env.SLUICE_ENDPOINTS!) as Array<{ endpoint: string; apiKey: string }>)[0]!;
    const directUrl = `${endpoint.endpoint.replace(/\/$/, '')}/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21`;
    const sluiceUrl = `${stack.baseUrl}/v1/chat/completions`;
    const out: OverheadResult = { direct: { ttft: [], total: [] }, sluice: { ttft: [], total: [] } };
    // Warm both paths (connections, JIT, the budget's first lease).
    for (let i = 0; i < 5; i += 1) {
      await stream(directUrl, { 'api-key': endpoint.apiKey }, chatBody(`warm ${i}`, { stream: true, max_tokens: 20 }));
      await stream(sluiceUrl, { 'api-key': stack.apiKey! }, chatBody(`warm ${i}`, { stream: true, max_tokens: 20 }));
    }
    for (let i = 0; i < OVERHEAD_N; i += 1) {
      // The same prompt both ways; Sluice asks the deployment for the usage chunk, so the direct call does too.
      const body = chatBody(`overhead ${i}`, { stream: true, max_tokens: 40, stream_options: { include_usage: true } });
      const pair = i % 2 === 0 ? ['direct', 'sluice'] as const : ['sluice', 'direct'] as const;
      for (const way of pair) {
        const r = way === 'direct' ? await stream(directUrl, { 'api-key': endpoint.apiKey }, body) : await stream(sluiceUrl, { 'api-key': stack.apiKey! }, body);
        if (r.status !== 200 || !r.complete) throw new Error(`${way} stream failed: ${r.status} ${r.errorCode ?? ''}`);
        out[way].ttft.push(r.ttftMs);
        out[way].total.push(r.totalMs);
      }
    }
    for (const way of [out.direct, out.sluice]) {
      way.ttft.sort((a, b) => a - b);
      way.total.sort((a, b) => a - b);
    }
    return out;
  } finally {
    await stack.stop();
  }
}

interface LoadTally {
  requests: number;
  ok: number;
  late429: number;
  clientErrors: number;
  errorSamples: string[];
  /** [admitted at (ms since start), charged tokens, team] per answered request. */
  admitted: Array<[number, number, string]>;
  waitsMs: number[];
}

function newTally(): LoadTally {
  return { requests: 0, ok: 0, late429: 0, clientErrors: 0, errorSamples: [], admitted: [], waitsMs: [] };
}

/** One client: a streamed request after another until `until` (performance.now() ms), then stops. */
async function client(stack: RunningStack, key: string, team: string, tag: string, t0: number, until: number, tally: LoadTally, gapMs = 0): Promise<void> {
  for (let i = 0; performance.now() < until; i += 1) {
    const started = performance.now();
    const r = await stream(`${stack.baseUrl}/v1/chat/completions`, { 'api-key': key, 'x-sluice-max-wait-ms': String(MAX_WAIT_MS) }, chatBody(`${tag} ${i}`, { stream: true }));
    tally.requests += 1;
    if (r.status === 200 && r.complete) {
      tally.ok += 1;
      const waitMs = Number(r.headers.get('x-sluice-quota-wait-ms') ?? 0);
      tally.waitsMs.push(waitMs);
      tally.admitted.push([started + waitMs - t0, Number(r.headers.get('x-sluice-charge-tokens') ?? 0), team]);
    } else if (r.status === 429 && r.errorCode === 'quota_wait_exceeded') {
      tally.late429 += 1;
    } else {
      tally.clientErrors += 1;
      if (tally.errorSamples.length < 5) tally.errorSamples.push(`${r.status} ${r.errorCode ?? (r.complete ? '' : 'incomplete stream')}`);
    }
    if (gapMs > 0) await sleep(Math.max(0, started + gapMs - performance.now()));
  }
}

interface SaturationResult {
  tally: LoadTally;
  upstream429: number;
  utilisation: number;
  shareA: number;
}

async function saturation(): Promise<SaturationResult> {
  const stack = await startStack({ simulator: simulator(TPM, { firstTokenMs: 20, perTokenMs: 1 }), hostProcess: true, env: { SLUICE_MAX_BACKLOG: '0' } });
  try {
    const keys = { 'team-a': await teamKey(stack, 'team-a'), 'team-b': await teamKey(stack, 'team-b') };
    const tally = newTally();
    const t0 = performance.now();
    const until = t0 + SECONDS * 1000;
    const progress = setInterval(() => process.stderr.write(`\r[saturation] ${tally.ok} ok, ${tally.late429} late 429, ${tally.clientErrors} errors, ${Math.round((performance.now() - t0) / 1000)} s`), 2_000);
    await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => {
        const team = i % 2 === 0 ? 'team-a' : 'team-b';
        return client(stack, keys[team], team, `${team} c${i}`, t0, until, tally);
      }),
    );
    clearInterval(progress);
    process.stderr.write('\n');
    // The measured span leaves out the first and last 10 % (ramp-up, and the clients stopping one by one).
    const from = SECONDS * 100;
    const to = SECONDS * 900;
    const inSpan = tally.admitted.filter(([at]) => at >= from && at < to);
    const tokens = inSpan.reduce((s, [, charge]) => s + charge, 0);
    const tokensA = inSpan.filter(([, , team]) => team === 'team-a').reduce((s, [, charge]) => s + charge, 0);
    return {
      tally,
      upstream429: Object.values(stack.sim!.counters()).flatMap((region) => Object.values(region)).reduce((n, d) => n + d.status429, 0),
      utilisation: tokens / ((TPM / 60_000) * (to - from)),
      shareA: tokensA / Math.max(1, tokens),
    };
  } finally {
    await stack.stop();
  }
}

async function mixed(): Promise<{ tally: LoadTally; jobs: number }> {
  const stack = await startStack({ simulator: simulator(TPM, { firstTokenMs: 20, perTokenMs: 1 }), hostProcess: true, env: { SLUICE_MAX_BACKLOG: '0' } });
  try {
    const keyA = await teamKey(stack, 'team-a');
    const keyB = await teamKey(stack, 'team-b');
    // Team A's backlog: ≈ 80 % of the phase's quota in batch jobs of ≈ 1,000 tokens each.
    const jobs = Math.max(4, Math.floor((0.8 * TPM * MIXED_SECONDS) / 60 / 1_000));
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < jobs) {
          const i = next++;
          await post(stack, keyA, '/v1/jobs', { request: { ...chatBody(`batch ${i}`), max_tokens: 800 }, priority: 'batch' });
        }
      }),
    );
    const tally = newTally();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: MIXED_CLIENTS }, (_, i) => client(stack, keyB, 'team-b', `live c${i}`, t0, t0 + MIXED_SECONDS * 1000, tally, 1_000)));
    tally.waitsMs.sort((a, b) => a - b);
    return { tally, jobs };
  } finally {
    await stack.stop();
  }
}

async function cache(): Promise<number | null> {
  const stack = await startStack({ simulator: simulator(100_000_000, { firstTokenMs: 20, perTokenMs: 2 }), hostProcess: true });
  try {
    const url = `${stack.baseUrl}/v1/chat/completions`;
    const headers = { 'content-type': 'application/json', 'api-key': stack.apiKey!, 'x-sluice-cache': 'exact; ttl=300' };
    const body = JSON.stringify(chatBody('cache me'));
    await fetch(url, { method: 'POST', headers, body }).then((r) => r.text());
    const hits: number[] = [];
    for (let i = 0; i < CACHE_N; i += 1) {
      const sent = performance.now();
      const res = await fetch(url, { method: 'POST', headers, body });
      await res.text();
      if (res.headers.get('x-sluice-cache') !== 'hit') return null;
      hits.push(performance.now() - sent);
    }
    hits.sort((a, b) => a - b);
    return percentile(hits, 0.5);
  } finally {
    await stack.stop();
  }
}

async function main() {
  const o = await overhead();
  const p = (xs: number[], q: number) => percentile(xs, q);
  printTable('bench:sync — overhead with free quota (ms; streamed, same prompts, alternating)', [
    ['path', 'TTFT p50', 'TTFT p99', 'total p50', 'total p99'],
    ['simulator directly', round(p(o.direct.ttft, 0.5), 2)!, round(p(o.direct.ttft, 0.99), 2)!, round(p(o.direct.total, 0.5), 2)!, round(p(o.direct.total, 0.99), 2)!],
    ['through Sluice', round(p(o.sluice.ttft, 0.5), 2)!, round(p(o.sluice.ttft, 0.99), 2)!, round(p(o.sluice.total, 0.5), 2)!, round(p(o.sluice.total, 0.99), 2)!],
  ]);
  const added = (q: number, what: 'ttft' | 'total') => round(p(o.sluice[what], q) - p(o.direct[what], q), 2);
  const s = await saturation();
  printTable(`bench:sync — saturation: ${CLIENTS} streaming clients, two teams, ${SECONDS} s, ${TPM} TPM`, [
    ['requests', 'ok', 'late 429', 'client errors', 'upstream 429', 'utilisation', 'share A'],
    [s.tally.requests, s.tally.ok, s.tally.late429, s.tally.clientErrors, s.upstream429, round(s.utilisation) ?? '-', round(s.shareA) ?? '-'],
  ]);
  if (s.tally.errorSamples.length) console.log(`client error samples: ${s.tally.errorSamples.join('; ')}`);
  const m = await mixed();
  const mixedP95 = m.tally.waitsMs.length ? percentile(m.tally.waitsMs, 0.95) / 1000 : NaN;
  printTable(`bench:sync — mixed: ${m.jobs} batch jobs draining, ${MIXED_CLIENTS} interactive sync clients at 1/s`, [
    ['sync requests', 'ok', 'late 429', 'client errors', 'quota wait p50 s', 'quota wait p95 s'],
    [m.tally.requests, m.tally.ok, m.tally.late429, m.tally.clientErrors, round(percentile(m.tally.waitsMs, 0.5) / 1000) ?? '-', round(mixedP95) ?? '-'],
  ]);
  const hitP50 = await cache();
  console.log(`cache: hit p50 ${hitP50 === null ? 'n/a (no cache hit answered)' : `${round(hitP50, 2)} ms`}`);
  console.log('targets: TTFT added p50 ≤ 5 ms, p99 ≤ 25 ms; 0 upstream 429; 0 client errors; late 429 ≤ 1 %; utilisation ≥ 0.95; share A 0.50 ± 0.05; mixed wait p95 ≤ 2 s');
  printResult({
    overhead_ttft_p50_ms: added(0.5, 'ttft'),
    overhead_ttft_p99_ms: added(0.99, 'ttft'),
    overhead_total_p50_ms: added(0.5, 'total'),
    overhead_total_p99_ms: added(0.99, 'total'),
    upstream_429: s.upstream429,
    client_errors: s.tally.clientErrors + m.tally.clientErrors,
    late_429_share: round(s.tally.late429 / Math.max(1, s.tally.requests), 4),
    utilisation: round(s.utilisation),
    share_a: round(s.shareA),
    sync_wait_p95_s_mixed: round(mixedP95),
    cache_hit_p50_ms: hitP50 === null ? null : round(hitP50, 2),
    requests: s.tally.requests,
    smoke: SMOKE,
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
