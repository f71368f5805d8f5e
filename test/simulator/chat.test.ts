// Chat completions over real HTTP: response shapes, headers, token counts, determinism, errors.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { countChatCompletionTokens, countTokens } from 'gpt-tokenizer/model/gpt-4o';
import { startSimulator, type RunningSimulator } from '../../local/simulator/index';
import { countChatPromptTokens } from '../../local/simulator/tokens';
import { chatUrl, postJson, testConfig } from './helpers';

const messages = [
  { role: 'system', content: 'You are a terse assistant.' },
  { role: 'user', name: 'alice', content: 'Summarise the quota policy in one paragraph, please.' },
];

describe('chat completions over HTTP', () => {
  let simulator: RunningSimulator;
  let baseUrl: string;

  before(async () => {
    simulator = await startSimulator(testConfig());
    baseUrl = simulator.regions[0]!.baseUrl;
  });
  after(() => simulator.close());

  it('answers 200 shaped like Azure chat.completion, with Azure headers', async () => {
    const response = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 300 }, { 'api-key': 'k', 'x-sluice-job-id': 'job-42' });
    assert.equal(response.status, 200);
    const body = response.body;
    assert.match(body.id, /^chatcmpl-/);
    assert.equal(body.object, 'chat.completion');
    assert.equal(typeof body.created, 'number');
    assert.equal(body.model, 'gpt-4o-mini-2024-07-18');
    assert.equal(typeof body.system_fingerprint, 'string');
    assert.equal(body.choices.length, 1);
    const choice = body.choices[0];
    assert.equal(choice.index, 0);
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.equal(choice.message.refusal, null);
    assert.equal(choice.logprobs, null);
    assert.ok(['stop', 'length'].includes(choice.finish_reason));
    assert.equal(choice.content_filter_results.hate.filtered, false);
    assert.equal(body.prompt_filter_results[0].prompt_index, 0);
    const usage = body.usage;
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert.equal(usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(typeof usage.completion_tokens_details.reasoning_tokens, 'number');
    assert.equal(usage.completion_tokens, countTokens(choice.message.content));
    assert.ok(usage.completion_tokens >= 5 && usage.completion_tokens <= 200);

    const headers = response.headers;
    assert.match(headers.get('content-type') ?? '', /^application\/json/);
    for (const name of ['x-request-id', 'apim-request-id', 'x-ratelimit-remaining-tokens', 'x-ratelimit-remaining-requests']) {
      assert.ok(headers.get(name), `missing ${name}`);
    }
    assert.equal(headers.get('x-ratelimit-limit-tokens'), '10000000');
    assert.equal(headers.get('x-ratelimit-limit-requests'), '100000');
    assert.equal(headers.get('x-ms-region'), 'sim-test');
    assert.equal(headers.get('x-ms-deployment-name'), 'chat');
    const charged = usage.prompt_tokens + 300;
    assert.equal(Number(headers.get('x-ratelimit-remaining-tokens')), 10_000_000 - charged);

    const record = simulator.requests().find((entry) => entry.requestId === headers.get('x-request-id'));
    assert.ok(record);
    assert.equal(record.jobId, 'job-42');
    assert.equal(record.status, 200);
    assert.equal(record.charged, charged);
    assert.equal(record.deployment, 'chat');
    assert.equal(record.region, 'sim-test');
  });

  it('counts prompt tokens exactly like gpt-tokenizer (o200k, with chat overhead)', async () => {
    const response = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 10 });
    const expected = countChatCompletionTokens!({ messages });
    assert.equal(response.body.usage.prompt_tokens, expected);
    assert.equal(countChatPromptTokens(messages), expected);
    // Cookbook formula: content + role (+ name) tokens, 3 per message, 1 per name, 3 priming.
    const manual = messages.reduce((sum, m) => sum + 3 + countTokens(m.content) + countTokens(m.role) + (m.name ? 1 + countTokens(m.name) : 0), 3);
    assert.equal(expected, manual);
  });

  it('is deterministic for the same request, and honours seed', async () => {
    const first = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 500 });
    const second = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 500 });
    assert.equal(first.body.choices[0].message.content, second.body.choices[0].message.content);
    const seeded = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 500, seed: 7 });
    const seededAgain = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 500, seed: 7 });
    const otherSeed = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 500, seed: 8 });
    assert.equal(seeded.body.choices[0].message.content, seededAgain.body.choices[0].message.content);
    assert.notEqual(seeded.body.choices[0].message.content, otherSeed.body.choices[0].message.content);
  });

  it('truncates at max_tokens / max_completion_tokens with finish_reason "length"', async () => {
    for (const param of ['max_tokens', 'max_completion_tokens']) {
      const response = await postJson(chatUrl(baseUrl, 'chat'), { messages, [param]: 3 });
      assert.equal(response.status, 200);
      const choice = response.body.choices[0];
      assert.equal(choice.finish_reason, 'length', param);
      assert.ok(response.body.usage.completion_tokens <= 3);
      assert.equal(countTokens(choice.message.content), response.body.usage.completion_tokens);
    }
    const full = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 1000 });
    assert.equal(full.body.choices[0].finish_reason, 'stop');
    const short = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 3 });
    assert.ok(full.body.choices[0].message.content.startsWith(short.body.choices[0].message.content));
  });

  it('returns n choices and sums their completion tokens', async () => {
    const response = await postJson(chatUrl(baseUrl, 'chat'), { messages, n: 3, max_tokens: 50 });
    assert.equal(response.body.choices.length, 3);
    assert.deepEqual(response.body.choices.map((choice: { index: number }) => choice.index), [0, 1, 2]);
    const sum = response.body.choices.reduce((total: number, choice: { message: { content: string } }) => total + countTokens(choice.message.content), 0);
    assert.equal(response.body.usage.completion_tokens, sum);
    const record = simulator.requests().at(-1)!;
    assert.equal(record.charged, response.body.usage.prompt_tokens + 50 * 3);
  });

  it('serves the v1 path with the deployment in `model`, without api-version', async () => {
    const response = await postJson(`${baseUrl}/openai/v1/chat/completions`, { model: 'chat', messages }, { authorization: 'Bearer token' });
    assert.equal(response.status, 200);
    assert.equal(response.body.object, 'chat.completion');
    assert.equal(response.headers.get('x-ms-deployment-name'), 'chat');
  });

  it('reports cached tokens for a long prompt seen before on the deployment', async () => {
    const longMessages = [{ role: 'user', content: 'quota '.repeat(1500) }];
    const first = await postJson(chatUrl(baseUrl, 'chat'), { messages: longMessages, max_tokens: 5 });
    const second = await postJson(chatUrl(baseUrl, 'chat'), { messages: longMessages, max_tokens: 5 });
    const promptTokens = first.body.usage.prompt_tokens;
    assert.ok(promptTokens >= 1024);
    assert.equal(first.body.usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(second.body.usage.prompt_tokens_details.cached_tokens, Math.floor(promptTokens / 128) * 128);
  });

  it('requires api-version on deployment paths (400)', async () => {
    const response = await postJson(chatUrl(baseUrl, 'chat', null), { messages });
    assert.equal(response.status, 400);
    assert.equal(typeof response.body.error.message, 'string');
    assert.match(response.body.error.message, /api-version/);
  });

  it('answers 401 without a key', async () => {
    const response = await postJson(chatUrl(baseUrl, 'chat'), { messages }, {});
    assert.equal(response.status, 401);
    assert.equal(response.body.error.code, '401');
    assert.match(response.body.error.message, /^Access denied due to invalid subscription key/);
  });

  it('answers 404 DeploymentNotFound for an unknown deployment, 404 for unknown paths', async () => {
    const response = await postJson(chatUrl(baseUrl, 'nope'), { messages });
    assert.equal(response.status, 404);
    assert.equal(response.body.error.code, 'DeploymentNotFound');
    const unknownPath = await postJson(`${baseUrl}/openai/whatever`, {});
    assert.equal(unknownPath.status, 404);
  });

  it('answers 400 for malformed JSON and for missing or empty messages', async () => {
    const malformed = await postJson(chatUrl(baseUrl, 'chat'), '{"messages": [');
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.error.type, 'invalid_request_error');
    for (const body of [{}, { messages: [] }, { messages: 'hi' }]) {
      const response = await postJson(chatUrl(baseUrl, 'chat'), body);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.equal(response.body.error.type, 'invalid_request_error');
      assert.equal(response.body.error.param, 'messages');
    }
  });

  it('answers 400 context_length_exceeded before charging', async () => {
    const before = simulator.counters()['sim-test']!['tiny']!;
    const response = await postJson(chatUrl(baseUrl, 'tiny'), { messages, max_tokens: 4_090 });
    assert.equal(response.status, 400);
    const error = response.body.error;
    assert.equal(error.code, 'context_length_exceeded');
    assert.equal(error.param, 'messages');
    assert.equal(error.type, 'invalid_request_error');
    const promptTokens = countChatPromptTokens(messages);
    assert.equal(
      error.message,
      `This model's maximum context length is 4096 tokens. However, you requested ${promptTokens + 4090} tokens (${promptTokens} in the messages, 4090 in the completion). Please reduce the length of the messages or completion.`,
    );
    const afterCounters = simulator.counters()['sim-test']!['tiny']!;
    assert.equal(afterCounters.tokensCharged, before.tokensCharged);
    assert.equal(afterCounters.status4xx, before.status4xx + 1);
    assert.equal(afterCounters.windows.requests60s, before.windows.requests60s);
  });

  it('answers 400 content_filter when a message contains the trigger', async () => {
    const response = await postJson(chatUrl(baseUrl, 'chat'), {
      messages: [{ role: 'user', content: 'please SLUICE_TRIGGER_CONTENT_FILTER now' }],
      max_tokens: 5,
    });
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, 'content_filter');
    assert.equal(response.body.error.param, 'prompt');
    assert.equal(response.body.error.status, 400);
    assert.equal(response.body.error.innererror.code, 'ResponsibleAIPolicyViolation');
    assert.equal(typeof response.body.error.innererror.content_filter_result, 'object');
  });

  it('streams SSE chunks, with a usage chunk when asked, ending with [DONE]', async () => {
    const response = await fetch(chatUrl(baseUrl, 'chat'), {
      method: 'POST',
      headers: { 'api-key': 'k', 'content-type': 'application/json' },
      body: JSON.stringify({ messages, max_tokens: 500, stream: true, stream_options: { include_usage: true } }),
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = (await response.text()).split('\n\n').filter((event) => event !== '').map((event) => event.replace(/^data: /, ''));
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event));
    const contentChunks = chunks.filter((chunk) => chunk.object === 'chat.completion.chunk' && chunk.choices.length > 0);
    assert.equal(contentChunks[0].choices[0].delta.role, 'assistant');
    const finish = contentChunks.at(-1).choices[0];
    assert.equal(finish.finish_reason, 'stop');
    const text = contentChunks.map((chunk) => chunk.choices[0].delta.content ?? '').join('');
    const usageChunk = chunks.at(-1);
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage.completion_tokens, countTokens(text));
    assert.equal(usageChunk.usage.prompt_tokens, countChatPromptTokens(messages));
    // Same request without streaming gives the same content.
    const plain = await postJson(chatUrl(baseUrl, 'chat'), { messages, max_tokens: 500 });
    assert.equal(plain.body.choices[0].message.content, text);
  });

  it('rejects a chat call to an embeddings deployment', async () => {
    const response = await postJson(chatUrl(baseUrl, 'emb'), { messages });
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, 'OperationNotSupported');
  });
});

describe('configured api keys', () => {
  let simulator: RunningSimulator;
  before(async () => {
    simulator = await startSimulator(testConfig({ apiKeys: ['right-key'] }));
  });
  after(() => simulator.close());

  it('accepts a configured key (api-key or Bearer) and answers 401 to a wrong one', async () => {
    const baseUrl = simulator.regions[0]!.baseUrl;
    const body = { messages, max_tokens: 5 };
    assert.equal((await postJson(chatUrl(baseUrl, 'chat'), body, { 'api-key': 'right-key' })).status, 200);
    assert.equal((await postJson(chatUrl(baseUrl, 'chat'), body, { authorization: 'Bearer right-key' })).status, 200);
    const wrong = await postJson(chatUrl(baseUrl, 'chat'), body, { 'api-key': 'wrong-key' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.code, '401');
  });
});
