// The official `openai` package's AzureOpenAI client must work against the simulator unchanged.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AzureOpenAI, RateLimitError } from 'openai';
import { startSimulator, type RunningSimulator } from '../../local/simulator/index';
import { countChatPromptTokens } from '../../local/simulator/tokens';
import { API_VERSION, testConfig } from './helpers';

const messages = [{ role: 'user' as const, content: 'Say something about shared quota.' }];

describe('openai AzureOpenAI client against the simulator', () => {
  let simulator: RunningSimulator;
  let endpoint: string;
  const client = (deployment: string) => new AzureOpenAI({ endpoint, apiKey: 'x', apiVersion: API_VERSION, deployment, maxRetries: 0 });

  before(async () => {
    simulator = await startSimulator(testConfig());
    endpoint = simulator.regions[0]!.baseUrl;
  });
  after(() => simulator.close());

  it('chat.completions.create returns a typed completion with usage', async () => {
    const completion = await client('chat').chat.completions.create({ model: 'chat', messages, max_tokens: 50 });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, 'gpt-4o-mini-2024-07-18');
    assert.equal(completion.choices[0]!.message.role, 'assistant');
    assert.ok((completion.choices[0]!.message.content ?? '').length > 0);
    assert.equal(completion.usage?.prompt_tokens, countChatPromptTokens(messages));
  });

  it('withResponse exposes the Azure rate-limit headers', async () => {
    const { response } = await client('chat').chat.completions.create({ model: 'chat', messages, max_tokens: 5 }).withResponse();
    assert.equal(response.headers.get('x-ms-region'), 'sim-test');
    assert.ok(Number(response.headers.get('x-ratelimit-remaining-tokens')) > 0);
  });

  it('streams with include_usage', async () => {
    const stream = await client('chat').chat.completions.create({
      model: 'chat',
      messages,
      max_tokens: 500,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finishReason: string | null = null;
    let completionTokens: number | undefined;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice !== undefined) {
        text += choice.delta.content ?? '';
        finishReason = choice.finish_reason ?? finishReason;
      }
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
    }
    assert.ok(text.length > 0);
    assert.equal(finishReason, 'stop');
    assert.ok(completionTokens !== undefined && completionTokens > 0);
  });

  it('embeddings.create decodes the (default base64) vectors', async () => {
    const result = await client('emb').embeddings.create({ model: 'emb', input: ['first text', 'second text'] });
    assert.equal(result.data.length, 2);
    assert.equal(result.data[0]!.embedding.length, 1536);
    assert.ok(result.usage.prompt_tokens > 0);
  });

  it('surfaces a 429 as RateLimitError with retry-after-ms in headers', async () => {
    // tiny allows 6 requests per 10 s; the 7th is refused.
    const tiny = client('tiny');
    for (let i = 0; i < 6; i++) await tiny.chat.completions.create({ model: 'tiny', messages, max_tokens: 5 });
    await assert.rejects(tiny.chat.completions.create({ model: 'tiny', messages, max_tokens: 5 }), (error: unknown) => {
      assert.ok(error instanceof RateLimitError, `expected RateLimitError, got ${String(error)}`);
      assert.equal(error.status, 429);
      const retryAfterMs = Number(error.headers?.get('retry-after-ms'));
      assert.ok(retryAfterMs > 0 && retryAfterMs <= 10_000);
      assert.ok(error.headers?.get('retry-after'));
      return true;
    });
  });
});
