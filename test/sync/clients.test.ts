/**
 * The official `openai` package against Sluice with nothing but a base URL and a team key: OpenAI and AzureOpenAI
 * clients, chat completions streamed and not, embeddings, each leaving a usage row of kind "sync".
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { AzureOpenAI } from 'openai';
import { startSyncStack, usageRowOf, type SyncStack } from './support';

let s: SyncStack;
let openai: OpenAI;
let azure: AzureOpenAI;

before(async () => {
  s = await startSyncStack();
  openai = new OpenAI({ baseURL: `${s.baseUrl}/v1`, apiKey: s.apiKey, maxRetries: 0 });
  azure = new AzureOpenAI({ endpoint: s.baseUrl, apiKey: s.apiKey, apiVersion: '2024-10-21', maxRetries: 0 });
});

after(async () => {
  await s?.stop();
});

test('OpenAI client: a chat completion answers with the deployment, region and charge in x-sluice-* headers', async () => {
  const { data, response } = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 20 }).withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.ok(data.choices[0]!.message.content!.length > 0);
  assert.ok(data.usage!.completion_tokens > 0);
  assert.equal(response.headers.get('x-sluice-region'), 'sim-eastus');
  assert.equal(response.headers.get('x-sluice-deployment'), 'gpt-4o-mini');
  assert.ok(Number(response.headers.get('x-sluice-quota-wait-ms')) >= 0);
  assert.ok(Number(response.headers.get('x-sluice-charge-tokens')) >= 20);
  assert.ok(Number(response.headers.get('x-sluice-cost-usd')) > 0);
  const id = response.headers.get('x-sluice-request-id')!;
  const row = await usageRowOf(s.stack, id);
  assert.equal(row.kind, 'sync');
  assert.equal(row.team, 'default');
  assert.equal(row.status, 'succeeded');
  assert.equal(row.completionTokens, data.usage!.completion_tokens);
  assert.equal(row.promptTokens, data.usage!.prompt_tokens);
  assert.ok((row.costUsd ?? 0) > 0);
});

test('OpenAI client: a stream arrives chunk by chunk; the usage chunk only when asked for; the row has tokens, cost and TTFT', async () => {
  const plain = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Tell a story' }], max_tokens: 40, stream: true });
  let text = '';
  let chunks = 0;
  let sawUsage = false;
  for await (const chunk of plain) {
    chunks += 1;
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) sawUsage = true;
  }
  assert.ok(chunks > 2, `only ${chunks} chunks`);
  assert.ok(text.length > 0);
  assert.equal(sawUsage, false, 'the usage chunk reached a client that did not ask for it');

  const { data: withUsage, response } = await openai.chat.completions
    .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Tell a story' }], max_tokens: 40, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of withUsage) if (chunk.usage) usage = chunk.usage;
  assert.ok(usage && usage.completion_tokens > 0, 'no usage chunk although the client asked for it');
  const row = await usageRowOf(s.stack, response.headers.get('x-sluice-request-id')!);
  assert.equal(row.status, 'succeeded');
  assert.equal(row.abandoned, false);
  assert.equal(row.completionTokens, usage.completion_tokens);
  assert.ok((row.costUsd ?? 0) > 0, 'a streamed answer recorded no cost');
  assert.ok(typeof row.ttftMs === 'number' && row.ttftMs >= 0);
  assert.ok(row.finishReason.length > 0);
});

test('AzureOpenAI client: chat completions, streamed and not, on the Azure-style path', async () => {
  const answer = await azure.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 10 });
  assert.equal(answer.object, 'chat.completion');
  const stream = await azure.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 10, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.ok(text.length > 0);
});

test('embeddings, OpenAI and AzureOpenAI clients: vectors, the model version header, token-array input charged by length', async () => {
  const { data, response } = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two words'] }).withResponse();
  assert.equal(data.data.length, 2);
  assert.ok(data.data[0]!.embedding.length > 0);
  // The answering endpoint's configured version when it has one (embeddings answers name only the model).
  const region = response.headers.get('x-sluice-region');
  const configured = (JSON.parse(s.stack.env.SLUICE_ENDPOINTS!) as Array<{ region: string; model: string; modelVersion?: string }>).find((e) => e.region === region && e.model === 'text-embedding-3-small')?.modelVersion;
  const version = configured ?? 'text-embedding-3-small';
  assert.equal(response.headers.get('x-sluice-model-version'), version);
  const row = await usageRowOf(s.stack, response.headers.get('x-sluice-request-id')!);
  assert.equal(row.kind, 'sync');
  assert.equal(row.modelVersion, version);
  assert.equal(row.promptTokens, data.usage.prompt_tokens);

  const tokens = await azure.embeddings.create({ model: 'text-embedding-3-small', input: [[1, 2, 3, 4, 5]] });
  assert.equal(tokens.data.length, 1);
  assert.equal(tokens.usage.prompt_tokens, 5);
});

test('exact cache: the same non-streamed request with x-sluice-cache answers from the cache, spends nothing, records the saving', async () => {
  const body: OpenAI.ChatCompletionCreateParamsNonStreaming = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Cache this answer' }], max_tokens: 20 };
  const options = { headers: { 'x-sluice-cache': 'exact; ttl=60' } };
  const since = Date.now();
  const first = await openai.chat.completions.create(body, options).withResponse();
  assert.equal(first.response.headers.get('x-sluice-cache'), 'miss');
  const second = await openai.chat.completions.create(body, options).withResponse();
  assert.equal(second.response.headers.get('x-sluice-cache'), 'hit');
  assert.deepEqual(second.data, first.data);
  assert.equal(s.sim.requests().filter((r) => r.at >= since).length, 1, 'a hit reached the deployment');
  const row = await usageRowOf(s.stack, second.response.headers.get('x-sluice-request-id')!);
  assert.equal(row.cacheHit, true);
  assert.equal(row.costUsd ?? 0, 0);
  const firstRow = await usageRowOf(s.stack, first.response.headers.get('x-sluice-request-id')!);
  assert.ok((firstRow.costUsd ?? 0) > 0);
  assert.equal((row as unknown as { savedUsd?: number }).savedUsd, firstRow.costUsd);
  // A stream never uses the cache.
  const streamed = await openai.chat.completions.create({ ...body, stream: true }, options).withResponse();
  for await (const _chunk of streamed.data) {
    // drain
  }
  assert.equal(streamed.response.headers.get('x-sluice-cache'), null);
});
