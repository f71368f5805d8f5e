import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSubmitBody, prepareJob, jobIdFor, JOB_ID_PATTERN } from '../../src/core/submit';
import { ValidationError } from '../../src/core/errors';
import { KNOWN_MODELS } from '../../src/core/models';
import { countPromptTokens } from '../../src/core/tokens';
import { backlogVerdict, overQuotaCeiling } from '../../src/core/backpressure';

const models = { 'gpt-4o-mini': KNOWN_MODELS['gpt-4o-mini']! };
const ok = { request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 } };

function rejects(body: unknown, param: RegExp) {
  assert.throws(() => prepareJob(parseSubmitBody(body), { models, now: 0 }), (err: unknown) => {
    assert.ok(err instanceof ValidationError, String(err));
    assert.match(err.param ?? '', param);
    return true;
  });
}

test('a valid body becomes a queued job with prompt tokens counted and defaults applied', () => {
  const job = prepareJob(parseSubmitBody({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], temperature: 0.2 } }), { models, now: 42 });
  assert.equal(job.status, 'queued');
  assert.equal(job.priority, 'interactive');
  assert.equal(job.createdAt, 42);
  assert.match(job.id, JOB_ID_PATTERN);
  assert.equal(job.promptTokens, countPromptTokens({ messages: [{ role: 'user', content: 'hello there' }] }));
  assert.equal(job.request.max_tokens, models['gpt-4o-mini'].defaultMaxTokens, 'default max_tokens is sent, since Azure charges for it');
  assert.equal(job.request.temperature, 0.2, 'other OpenAI fields pass through');
  assert.equal(job.request.model, undefined, 'the deployment is chosen at run time');
});

test('charge counts max tokens times n', () => {
  const job = prepareJob(parseSubmitBody({ request: { ...ok.request, n: 3 } }), { models, now: 0 });
  assert.equal(job.maxOutputTokens, 30);
});

test('bad bodies are refused naming the field', () => {
  rejects({}, /^request$/);
  rejects({ request: { model: 'gpt-4o-mini', messages: [] } }, /request\.messages/);
  rejects({ request: { model: 'gpt-4o-mini', messages: [{ role: 'wizard', content: 'x' }] } }, /request\.messages\[0\]\.role/);
  rejects({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 0 } }, /request\.max_tokens/);
  rejects({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 1.5 } }, /request\.max_tokens/);
  rejects({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 999_999 } }, /request\.max_tokens/);
  rejects({ request: { model: 'nope', messages: [{ role: 'user', content: 'x' }] } }, /request\.model/);
  rejects({ ...ok, priority: 'urgent' }, /priority/);
  rejects({ ...ok, metadata: { team: 5 } }, /metadata\.team/);
  rejects({ ...ok, surprise: true }, /body/);
  rejects({ request: { ...ok.request, stream: true } }, /request\.stream/);
});

test('the context-window guard refuses at submit with both counts and the limit', () => {
  const small = { 'gpt-4o-mini': { contextWindow: 100, maxOutputTokens: 50, defaultMaxTokens: 10 } };
  assert.throws(
    () => prepareJob(parseSubmitBody({ request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'word '.repeat(80) }], max_tokens: 50 } }), { models: small, now: 0 }),
    (err: unknown) => err instanceof ValidationError && err.code === 'context_length_exceeded' && /maximum context length is 100 tokens/.test(err.message) && /in the messages, 50 in the completion/.test(err.message),
  );
});

test('idempotent ids are stable per team and key, random otherwise', () => {
  assert.equal(jobIdFor('a', 'k1'), jobIdFor('a', 'k1'));
  assert.notEqual(jobIdFor('a', 'k1'), jobIdFor('b', 'k1'));
  assert.notEqual(jobIdFor('a'), jobIdFor('a'));
});

test('backpressure refuses past the bound with a Retry-After from the drain rate', () => {
  assert.deepEqual(backlogVerdict(10, 0, 1000, 60_000), { accept: true }, '0 disables');
  assert.deepEqual(backlogVerdict(99, 100, 1000, 60_000), { accept: true });
  // 11 jobs over the bound at 1,000 tokens each, 60,000 TPM = 1,000 tokens/s → 11 s.
  assert.deepEqual(backlogVerdict(110, 100, 1000, 60_000), { accept: false, retryAfterS: 11 });
  assert.deepEqual(backlogVerdict(10_000_000, 100, 1000, 60_000), { accept: false, retryAfterS: 3600 }, 'capped at an hour');
});

test('a job larger than any deployment admits per minute is refused instead of waiting forever', () => {
  assert.equal(overQuotaCeiling(1000, [30_000, 10_000], 0.99), undefined);
  assert.equal(overQuotaCeiling(29_701, [30_000, 10_000], 0.99), 29_700);
});

test('a model name that is an Object.prototype property is no configured model', () => {
  for (const model of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
    assert.throws(
      () => prepareJob(parseSubmitBody({ request: { model, messages: [{ role: 'user', content: 'x' }] } }), { models, now: 0 }),
      (err: unknown) => err instanceof ValidationError && err.code === 'model_not_found' && err.param === 'request.model',
      model,
    );
  }
});

test('__proto__ keys in the body or its metadata change neither the job nor any prototype', () => {
  for (const proto of ['{"team":"other","batch_id":"b"}', '"x"']) {
    const body = JSON.parse(`{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]},"metadata":{"__proto__":${proto},"a":"b"}}`);
    const job = prepareJob(parseSubmitBody(body), { models, now: 0 });
    assert.deepEqual(Object.keys(job.metadata), ['a']);
    assert.equal(Object.getPrototypeOf(job.metadata), Object.prototype);
    assert.equal(job.metadata.team, undefined);
    assert.equal(job.team, 'default');
  }
  assert.equal(({} as Record<string, unknown>).team, undefined, 'Object.prototype untouched');
  // At the top level of the submit body, __proto__ is an unknown field.
  assert.throws(() => parseSubmitBody(JSON.parse('{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]},"__proto__":{"priority":"batch"}}')), ValidationError);
});

test('messages are checked as the chat-completions API defines them, naming the field', () => {
  const withMessages = (...messages: unknown[]) => ({ request: { model: 'gpt-4o-mini', messages } });
  const user = { role: 'user', content: 'hi' };
  const refused: Array<[unknown[], string]> = [
    [[user, { role: 'user' }], 'request.messages[1].content'],
    [[{ role: 'system' }], 'request.messages[0].content'],
    [[{ role: 'developer', content: null }], 'request.messages[0].content'],
    [[{ role: 'user', content: [] }], 'request.messages[0].content'],
    [[{ role: 'user', content: 5 }], 'request.messages[0].content'],
    [[{ role: 'user', content: [{ type: 'video', video: {} }] }], 'request.messages[0].content[0].type'],
    [[{ role: 'user', content: [{ type: 'text' }] }], 'request.messages[0].content[0].text'],
    [[{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }], 'request.messages[0].content[0].image_url.url'],
    [[{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'ogg' } }] }], 'request.messages[0].content[0].input_audio.format'],
    [[{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }], 'request.messages[0].content[0].type'],
    [[user, { role: 'assistant' }], 'request.messages[1].content'],
    [[user, { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] }], 'request.messages[1].tool_calls[0].id'],
    [[user, { role: 'tool', content: '42' }], 'request.messages[1].tool_call_id'],
    [[user, { role: 'tool', tool_call_id: 'call_1' }], 'request.messages[1].content'],
    [[{ role: 'function', name: 'f' }], 'request.messages[0].content'],
  ];
  for (const [messages, param] of refused) {
    assert.throws(() => parseSubmitBody(withMessages(...messages)), (err: unknown) => {
      assert.ok(err instanceof ValidationError, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.param, param, JSON.stringify(messages));
      assert.ok(err.message.startsWith(`${param}: `), err.message);
      return true;
    });
  }
  const accepted: unknown[][] = [
    [{ role: 'system', content: 'be brief' }, { role: 'developer', content: [{ type: 'text', text: 'terse' }] }, user],
    [{ role: 'user', content: '' }],
    [{ role: 'user', name: 'ann', content: [
      { type: 'text', text: 'what is this?' },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } },
      { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } },
      { type: 'file', file: { file_id: 'file-1' } },
    ] }],
    [user, { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'call_1', content: '42' }],
    [user, { role: 'assistant', content: [{ type: 'text', text: 'a' }, { type: 'refusal', refusal: 'no' }] }, user],
    [user, { role: 'assistant', refusal: 'no' }, user],
    [user, { role: 'assistant', content: null, function_call: { name: 'f', arguments: '{}' } }, { role: 'function', name: 'f', content: '1' }],
  ];
  for (const messages of accepted) {
    const job = prepareJob(parseSubmitBody(withMessages(...messages)), { models, now: 0 });
    assert.deepEqual(job.request.messages, messages, 'messages are sent as given');
  }
});

test('only chat-completions fields pass through to the model; any other is refused naming it', () => {
  for (const field of ['data_sources', 'surprise', '__proto__']) {
    const body = JSON.parse(`{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"${field}":{"type":"azure_search"}}}`);
    assert.throws(() => parseSubmitBody(body), (err: unknown) => {
      assert.ok(err instanceof ValidationError, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.param, `request.${field}`);
      assert.equal(err.code, 'unsupported_parameter');
      return true;
    });
  }
  const documented = {
    temperature: 0.2, top_p: 1, seed: 7, user: 'u1', stop: ['\n'], response_format: { type: 'json_object' }, logprobs: true, top_logprobs: 2,
    tools: [{ type: 'function', function: { name: 'f', parameters: {} } }], tool_choice: 'auto', parallel_tool_calls: false,
    presence_penalty: 0, frequency_penalty: 0, logit_bias: { '50256': -100 }, reasoning_effort: 'low', metadata: { a: 'b' }, store: false, stream: false,
  };
  const job = prepareJob(parseSubmitBody({ request: { ...ok.request, ...documented } }), { models, now: 0 });
  for (const [k, v] of Object.entries(documented)) assert.deepEqual(job.request[k], v, k);
});
