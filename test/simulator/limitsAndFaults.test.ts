// Rate limiting, fault injection and the admin endpoint over real HTTP. Tiny limits make the request counts decide
// every outcome, and the simulators run on a manual clock, so retry-after values are exact.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startSimulator, type RunningSimulator } from '../../local/simulator/index';
import { countChatPromptTokens } from '../../local/simulator/tokens';
import { chatUrl, postJson, testConfig } from './helpers';

const messages = [{ role: 'user', content: 'How much quota is left?' }];
const promptTokens = countChatPromptTokens(messages);

async function adminGet(simulator: RunningSimulator, path: string) {
  const response = await fetch(`${simulator.adminUrl}${path}`);
  return { status: response.status, body: (await response.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

async function adminPost(simulator: RunningSimulator, path: string, body: unknown = {}) {
  const response = await fetch(`${simulator.adminUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** The network error code behind a failed fetch (undici wraps it in `cause`). */
async function connectionErrorCode(url: string): Promise<string | undefined> {
  try {
    await postJson(url, { messages });
    return undefined;
  } catch (error) {
    return ((error as { cause?: { code?: string } }).cause ?? (error as { code?: string })).code;
  }
}

/** A manual clock for the simulators' rate-limit windows and request log; tests step it. */
let clockMs = 1_700_000_000_000;
const now = () => clockMs;

describe('rate limiting over HTTP', () => {
  let simulator: RunningSimulator;
  let baseUrl: string;
  before(async () => {
    simulator = await startSimulator(testConfig(), { now });
    baseUrl = simulator.regions[0]!.baseUrl;
  });
  beforeEach(() => adminPost(simulator, '/reset'));
  after(() => simulator.close());

  it('refuses a burst over the 10 s request window with a call-rate 429, and does not charge it', async () => {
    // tiny: 6,000 TPM → 36 RPM → 6 requests per 10 s.
    const statuses: number[] = [];
    let refusal: Awaited<ReturnType<typeof postJson>> | undefined;
    for (let i = 0; i < 7; i++) {
      const response = await postJson(chatUrl(baseUrl, 'tiny'), { messages, max_tokens: 10 });
      statuses.push(response.status);
      if (response.status === 429) refusal = response;
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429]);
    assert.ok(refusal);
    assert.equal(refusal.body.error.code, '429');
    assert.match(refusal.body.error.message, /^Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing tier\. Please retry after \d+ seconds\./);
    assert.equal(refusal.headers.get('x-ratelimit-remaining-requests'), '0');
    assert.equal(refusal.headers.get('x-ratelimit-limit-requests'), '36');

    // All seven arrived at the same instant on the manual clock: the oldest admission leaves the window in 10 s.
    assert.equal(refusal.headers.get('retry-after-ms'), '10000');
    assert.equal(refusal.headers.get('retry-after'), '10');

    const counters = simulator.counters()['sim-test']!['tiny']!;
    assert.equal(counters.requests, 7);
    assert.equal(counters.status200, 6);
    assert.equal(counters.status429, 1);
    assert.equal(counters.tokensCharged, 6 * (promptTokens + 10));
    assert.equal(counters.windows.requests10s, 6);
    const refusedRecord = simulator.requests().at(-1)!;
    assert.equal(refusedRecord.status, 429);
    assert.equal(refusedRecord.charged, 0);
  });

  it('refuses on the sliding token window with retry-after-ms until the window admits', async () => {
    const first = await postJson(chatUrl(baseUrl, 'tiny'), { messages, max_tokens: 3_000 });
    assert.equal(first.status, 200);
    clockMs += 1_500;
    assert.equal(Number(first.headers.get('x-ratelimit-remaining-tokens')), 6_000 - (promptTokens + 3_000));
    const second = await postJson(chatUrl(baseUrl, 'tiny'), { messages, max_tokens: 3_000 });
    assert.equal(second.status, 429);
    assert.match(second.body.error.message, /exceeded token rate limit/);
    // 1.5 s after the first call: it leaves the minute window in 58.5 s.
    assert.equal(second.headers.get('retry-after-ms'), '58500');
    assert.equal(second.headers.get('retry-after'), '59');
    // A smaller request still fits in what is left of the minute.
    assert.equal((await postJson(chatUrl(baseUrl, 'tiny'), { messages, max_tokens: 100 })).status, 200);
    assert.equal(simulator.counters()['sim-test']!['tiny']!.tokensCharged, 2 * promptTokens + 3_100);
  });

  it('charges defaultMaxTokens (capped by context) when no max tokens is given', async () => {
    const response = await postJson(chatUrl(baseUrl, 'tiny'), { messages });
    assert.equal(response.status, 200);
    // Default 4096 exceeds tiny's 4,096 context minus the prompt, so the cap applies.
    assert.equal(simulator.requests().at(-1)!.charged, promptTokens + (4_096 - promptTokens));
  });

  it('refuses a single request larger than TPM with retry-after 60 (limits set at runtime)', async () => {
    simulator.setLimits('sim-test', 'tiny', { tpm: 1_000 });
    const response = await postJson(chatUrl(baseUrl, 'tiny'), { messages, max_tokens: 2_000 });
    assert.equal(response.status, 429);
    assert.equal(response.headers.get('retry-after'), '60');
    assert.equal(response.headers.get('retry-after-ms'), '60000');
    assert.equal(response.headers.get('x-ratelimit-limit-tokens'), '1000');
  });
});

describe('fault injection and admin endpoint', () => {
  let simulator: RunningSimulator;
  let baseUrl: string;
  before(async () => {
    simulator = await startSimulator(testConfig(), { now });
    baseUrl = simulator.regions[0]!.baseUrl;
  });
  beforeEach(() => adminPost(simulator, '/reset'));
  after(() => simulator.close());

  it("down: '503' answers 503 until cleared", async () => {
    simulator.setFault('sim-test', { down: '503' });
    const down = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 5 });
    assert.equal(down.status, 503);
    assert.equal(typeof down.body.error.message, 'string');
    simulator.setFault('sim-test', {});
    assert.equal((await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 5 })).status, 200);
    const counters = simulator.counters()['sim-test']!['chat']!;
    assert.equal(counters.status5xx, 1);
    assert.equal(counters.status200, 1);
  });

  it("down: 'refuse' closes the port (ECONNREFUSED) and clearing reopens the same port", async () => {
    const url = chatUrl(baseUrl, 'chat');
    assert.equal((await postJson(url, { messages, max_tokens: 5 })).status, 200); // leaves a keep-alive socket
    const set = await adminPost(simulator, '/regions/sim-test/fault', { down: 'refuse' });
    assert.equal(set.status, 200);
    assert.equal(await connectionErrorCode(url), 'ECONNREFUSED');
    await adminPost(simulator, '/regions/sim-test/fault', {});
    assert.equal((await postJson(url, { messages, max_tokens: 5 })).status, 200);

    // In-process API does the same.
    simulator.setFault('sim-test', { down: 'refuse' });
    assert.equal(await connectionErrorCode(url), 'ECONNREFUSED');
    simulator.setFault('sim-test', {});
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await postJson(url, { messages, max_tokens: 5 })).status, 200);
  });

  it('errorRate 1.0 for 500 fails every request without charging; cleared again', async () => {
    await adminPost(simulator, '/regions/sim-test/fault', { errorRate: { '500': 1 } });
    for (let i = 0; i < 3; i++) {
      const response = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 5 });
      assert.equal(response.status, 500);
      assert.equal(response.body.error.code, 'InternalServerError');
    }
    let counters = simulator.counters()['sim-test']!['chat']!;
    assert.equal(counters.status5xx, 3);
    assert.equal(counters.tokensCharged, 0);
    await adminPost(simulator, '/regions/sim-test/fault', {});
    assert.equal((await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 5 })).status, 200);
    counters = simulator.counters()['sim-test']!['chat']!;
    assert.equal(counters.tokensCharged, promptTokens + 5);
  });

  it('injected 429s carry retryAfterSeconds; slow requests still succeed', async () => {
    simulator.setFault('sim-test', { errorRate: { '429': 1 }, retryAfterSeconds: 3 });
    const limited = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 5 });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '3');
    assert.equal(limited.headers.get('retry-after-ms'), '3000');
    simulator.setFault('sim-test', { slowRate: 1, slowMs: 5 });
    assert.equal((await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 5 })).status, 200);
  });

  it('GET /_admin/state shows config, faults, limits and counters', async () => {
    await adminPost(simulator, '/regions/sim-test/fault', { errorRate: { '503': 0.5 } });
    const limits = await adminPost(simulator, '/regions/sim-test/deployments/tiny/limits', { tpm: 12_000, rpm: 72 });
    assert.equal(limits.status, 200);
    const { status, body } = await adminGet(simulator, '/state');
    assert.equal(status, 200);
    assert.equal(body.config.regions[0].name, 'sim-test');
    const region = body.regions[0];
    assert.deepEqual(region.fault, { errorRate: { '503': 0.5 } });
    assert.equal(region.baseUrl, baseUrl);
    assert.deepEqual(region.deployments.find((d: { name: string }) => d.name === 'tiny').limits, { tpm: 12_000, rpm: 72 });
    assert.equal(body.counters['sim-test'].chat.requests, 0);
    assert.equal(body.counters['sim-test'].tiny.windows.requestLimit10s, 12);
  });

  it('GET /_admin/requests filters by since; POST /_admin/reset restores config', async () => {
    await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 5 }, { 'api-key': 'k', 'x-sluice-job-id': 'job-a' });
    const since = now() + 1;
    clockMs += 5;
    await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 5 }, { 'api-key': 'k', 'x-sluice-job-id': 'job-b' });
    const all = await adminGet(simulator, '/requests');
    assert.deepEqual(all.body.requests.map((r: { jobId: string }) => r.jobId), ['job-a', 'job-b']);
    const recent = await adminGet(simulator, `/requests?since=${since}`);
    assert.deepEqual(recent.body.requests.map((r: { jobId: string }) => r.jobId), ['job-b']);

    simulator.setLimits('sim-test', 'tiny', { tpm: 1 });
    simulator.setFault('sim-test', { down: '503' });
    const reset = await adminPost(simulator, '/reset');
    assert.equal(reset.status, 200);
    assert.equal(simulator.requests().length, 0);
    assert.equal(simulator.counters()['sim-test']!['chat']!.requests, 0);
    const state = await adminGet(simulator, '/state');
    assert.deepEqual(state.body.regions[0].fault, {});
    assert.equal(state.body.counters['sim-test'].tiny.windows.tpm, 6_000);
  });

  it('answers 404 for unknown regions/routes and 400 for invalid bodies', async () => {
    assert.equal((await adminPost(simulator, '/regions/nowhere/fault', {})).status, 404);
    assert.equal((await adminPost(simulator, '/regions/sim-test/deployments/nope/limits', { tpm: 5 })).status, 404);
    assert.equal((await adminPost(simulator, '/regions/sim-test/fault', { down: 'sometimes' })).status, 400);
    assert.equal((await adminGet(simulator, '/nothing')).status, 404);
  });
});
