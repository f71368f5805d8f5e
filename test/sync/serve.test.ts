/**
 * The sync path's logic with fakes for the clock, the budget, the upstream and the cache: the cache hook, the
 * deadline driven by a manual clock, and the stream relay's tally.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Admission, BudgetGate } from '../../src/core/budget/gate';
import { alwaysClosed } from '../../src/core/breaker/health';
import type { EndpointSettings } from '../../src/core/endpoints';
import { KNOWN_MODELS } from '../../src/core/models';
import type { CachedAnswer, SyncCache } from '../../src/core/sync/cacheContract';
import { embeddingTokens, parseChatRequest, parseEmbeddingsRequest } from '../../src/core/sync/request';
import { serveSync, type SyncServeDeps } from '../../src/core/sync/serve';
import { relayStream, type StreamTally } from '../../src/core/sync/stream';
import type { SyncUpstream, UpstreamAnswer } from '../../src/core/sync/types';
import { buildSyncUsageRow, type UsageRow } from '../../src/core/telemetry/usage';
import { ManualClock } from '../support/fakes';

const endpoint: EndpointSettings = {
  region: 'r1',
  endpoint: 'https://r1.example',
  deployment: 'd1',
  model: 'gpt-4o-mini',
  priority: 1,
  weight: 1,
  tpm: 100_000,
  rpm: 600,
  auth: 'key',
  apiKey: 'k',
};

const answer: UpstreamAnswer = {
  status: 200,
  header: () => null,
  body: { object: 'chat.completion', model: 'gpt-4o-mini-2024-07-18', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 9, completion_tokens: 2 } },
};

class CountingUpstream implements SyncUpstream {
  calls = 0;
  async complete(): Promise<UpstreamAnswer> {
    this.calls += 1;
    return answer;
  }
  async stream(): Promise<never> {
    throw new Error('not used');
  }
  async embed(): Promise<UpstreamAnswer> {
    this.calls += 1;
    return answer;
  }
}

class MemoryCache implements SyncCache {
  readonly entries = new Map<string, CachedAnswer>();
  async policy(_team: string, headers: { get(name: string): string | null }) {
    return headers.get('x-sluice-cache') === 'exact' ? 60_000 : undefined;
  }
  async lookup(team: string, model: string, version: string, kind: string, body: unknown) {
    return this.entries.get(JSON.stringify([team, model, version, kind, body]));
  }
  async save(team: string, model: string, version: string, kind: string, body: unknown, stored: CachedAnswer) {
    this.entries.set(JSON.stringify([team, model, version, kind, body]), stored);
  }
}

/** Refuses every admission until `openAt`, then grants. */
class ClosedUntil implements BudgetGate {
  asked = 0;
  constructor(private readonly openAt: number) {}
  async admit(_t: unknown, _tokens: number, _p: unknown, now: number): Promise<Admission> {
    this.asked += 1;
    return now >= this.openAt ? { granted: true } : { granted: false, retryAt: this.openAt, reason: 'tokens' };
  }
  async observe(): Promise<void> {}
}

function deps(clock: ManualClock, upstream: SyncUpstream, budget: BudgetGate, extra: Partial<SyncServeDeps> = {}) {
  const rows: UsageRow[] = [];
  const d: SyncServeDeps = {
    endpoints: [endpoint],
    budget,
    health: alwaysClosed,
    upstream,
    settings: { defaultMaxWaitMs: 30_000, maxWaitCapMs: 120_000, callTimeoutMs: 60_000, maxRetryDelayMs: 2_000, maxTransientFailures: 3 },
    clock,
    log: () => {},
    safety: 1,
    usageRow: (usage, now) => buildSyncUsageRow(usage, now),
    storeUsage: async (row) => void rows.push(row),
    ...extra,
  };
  return { d, rows };
}

const chatRequest = () => parseChatRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }], max_tokens: 10 }, { models: KNOWN_MODELS, served: ['gpt-4o-mini'] });
const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n] ?? null });

test('cache hook: a miss calls the deployment and saves; the same request then answers from the cache, spending no quota', async () => {
  const clock = new ManualClock();
  const upstream = new CountingUpstream();
  const budget = new ClosedUntil(0);
  const cache = new MemoryCache();
  const { d, rows } = deps(clock, upstream, budget, { cache });
  const call = () => ({ id: `sync_${rows.length}`, team: 'a', request: chatRequest(), receivedAt: clock.now(), maxWaitMs: 0, signal: new AbortController().signal, headers: headers({ 'x-sluice-cache': 'exact' }) });
  const first = await serveSync(d, call());
  assert.equal(first.kind, 'json');
  assert.equal(first.headers['x-sluice-cache'], 'miss');
  const second = await serveSync(d, call());
  assert.equal(second.kind, 'json');
  assert.equal(second.headers['x-sluice-cache'], 'hit');
  assert.equal(second.kind === 'json' && second.body, first.kind === 'json' && first.body);
  assert.equal(upstream.calls, 1);
  assert.equal(budget.asked, 1, 'a hit asked the budget');
  assert.equal(rows[1]!.cacheHit, true);
  assert.equal(rows[1]!.costUsd, 0);
  assert.ok((rows[1]!.savedUsd ?? 0) > 0);
  assert.equal(rows[1]!.savedUsd, rows[0]!.costUsd);

  // Without the header (and no team setting) the cache is not used; a stream never is.
  await serveSync(d, { ...call(), headers: headers({}) });
  assert.equal(upstream.calls, 2);
});

test('the deadline: the request sleeps until the budget says, and is refused once the deadline passes first', async () => {
  const clock = new ManualClock();
  const start = clock.now();
  const upstream = new CountingUpstream();
  const { d, rows } = deps(clock, upstream, new ClosedUntil(start + 5_000));
  const waited = await serveSync(d, { id: 'sync_w', team: 'a', request: chatRequest(), receivedAt: start, maxWaitMs: 10_000, signal: new AbortController().signal, headers: headers({}) });
  assert.equal(waited.kind, 'json');
  assert.equal(waited.headers['x-sluice-quota-wait-ms'], '5000');
  assert.equal(rows[0]!.queueWaitMs, 5_000);

  const late = new ManualClock();
  const { d: d2, rows: rows2 } = deps(late, upstream, new ClosedUntil(late.now() + 60_000));
  const refused = await serveSync(d2, { id: 'sync_r', team: 'a', request: chatRequest(), receivedAt: late.now(), maxWaitMs: 10_000, signal: new AbortController().signal, headers: headers({}) });
  assert.equal(refused.kind, 'error');
  assert.equal(refused.status, 429);
  assert.equal(refused.headers['retry-after'], '50');
  assert.equal(rows2[0]!.errorCode, 'quota_wait_exceeded');
  assert.equal(rows2[0]!.costUsd, 0);
  assert.equal(upstream.calls, 1);
});

async function relay(events: string[], includeUsage: boolean, cutAfter?: number) {
  const encoder = new TextEncoder();
  async function* upstream() {
    for (const [i, e] of events.entries()) {
      if (cutAfter !== undefined && i >= cutAfter) throw new Error('socket hang up');
      // Split events across chunks, as TCP may.
      const bytes = encoder.encode(e);
      yield bytes.slice(0, 3);
      yield bytes.slice(3);
    }
  }
  let tally: StreamTally | undefined;
  let out = '';
  const decoder = new TextDecoder();
  for await (const b of relayStream(upstream(), { includeUsage, now: () => 1, aborted: () => false, onEnd: (t) => void (tally = t) })) out += decoder.decode(b);
  return { out, tally: tally! };
}

const chunk = (content: string, finish: string | null = null) => `data: ${JSON.stringify({ model: 'm-1', choices: [{ index: 0, delta: { content }, finish_reason: finish }], usage: null })}\n\n`;
const usageChunk = `data: ${JSON.stringify({ model: 'm-1', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7 } })}\n\n`;

test('relay: events pass through; the usage chunk only when asked; tokens from usage, else counted from the content', async () => {
  const events = [chunk('Hello'), chunk(' world'), chunk('', 'stop'), usageChunk, 'data: [DONE]\n\n'];
  const hidden = await relay(events, false);
  assert.doesNotMatch(hidden.out, /"prompt_tokens"/);
  assert.match(hidden.out, /Hello[\s\S]* world[\s\S]*\[DONE\]/);
  assert.equal(hidden.tally.outcome, 'completed');
  assert.equal(hidden.tally.completionTokens, 7);
  assert.equal(hidden.tally.finishReason, 'stop');
  assert.equal(hidden.tally.modelVersion, 'm-1');
  const shown = await relay(events, true);
  assert.match(shown.out, /"prompt_tokens":5/);

  const broken = await relay(events, false, 2);
  assert.equal(broken.tally.outcome, 'upstream_error');
  assert.equal(broken.tally.completionTokens, 2, 'tokens of "Hello world" counted from the chunks');
  assert.match(broken.out, /data: \{"error":\{"message":"the deployment's stream broke: socket hang up","type":"server_error"/);
  assert.doesNotMatch(broken.out, /\[DONE\]/);
});

test('request parsing: stream asks upstream for usage; embeddings charge token arrays by length', () => {
  const streamed = parseChatRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true }, { models: KNOWN_MODELS, served: ['gpt-4o-mini'] });
  assert.deepEqual(streamed.upstreamBody.stream_options, { include_usage: true });
  assert.equal(streamed.includeUsage, false);
  assert.equal(streamed.upstreamBody.max_tokens, KNOWN_MODELS['gpt-4o-mini']!.defaultMaxTokens);
  const azure = parseChatRequest({ messages: [{ role: 'user', content: 'x' }] }, { models: KNOWN_MODELS, served: ['gpt-4o-mini'], pathModel: 'gpt-4o-mini' });
  assert.equal(azure.model, 'gpt-4o-mini');
  assert.equal(embeddingTokens([[1, 2, 3], [4]]), 4);
  assert.equal(embeddingTokens([1, 2, 3]), 3);
  const e = parseEmbeddingsRequest({ model: 'text-embedding-3-small', input: ['a b', 'c'] }, { served: ['text-embedding-3-small'] });
  assert.ok(e.promptTokens >= 2);
  assert.equal(e.maxOutputTokens, 0);
});

test("embeddings: the answering endpoint's configured model version is the header and the row's", async () => {
  const clock = new ManualClock();
  const embeddingsEndpoint = { ...endpoint, deployment: 'e1', model: 'text-embedding-3-small', modelVersion: '1' } as EndpointSettings;
  const upstream: SyncUpstream = {
    complete: async () => answer,
    stream: async () => {
      throw new Error('not used');
    },
    embed: async () => ({ status: 200, header: () => null, body: { object: 'list', model: 'text-embedding-3-small', data: [], usage: { prompt_tokens: 3, total_tokens: 3 } } }),
  };
  const { d, rows } = deps(clock, upstream, new ClosedUntil(0), { endpoints: [embeddingsEndpoint] });
  const request = parseEmbeddingsRequest({ model: 'text-embedding-3-small', input: 'abc' }, { served: ['text-embedding-3-small'] });
  const res = await serveSync(d, { id: 'sync_e', team: 'a', request, receivedAt: clock.now(), maxWaitMs: 0, signal: new AbortController().signal, headers: headers({}) });
  assert.equal(res.headers['x-sluice-model-version'], '1');
  assert.equal(rows[0]!.modelVersion, '1');
  assert.equal(rows[0]!.promptTokens, 3);
});
