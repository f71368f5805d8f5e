/** A batch input line passes exactly the checks of a single submit; its own keys cannot reach any prototype. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBatchLine, type LineContext } from '../../src/core/batch/validate';
import { KNOWN_MODELS } from '../../src/core/models';

const ctx: LineContext = {
  batchId: 'batch_1',
  jobIds: 2,
  endpoint: '/v1/chat/completions',
  team: 'default',
  models: { 'gpt-4o-mini': { ...KNOWN_MODELS['gpt-4o-mini']!, spillover: true } },
  now: 0,
};
const line = (body: unknown, extra = '') =>
  `{"custom_id":"c1","method":"POST","url":"/v1/chat/completions",${extra}"body":${typeof body === 'string' ? body : JSON.stringify(body)}}`;
const hi = [{ role: 'user', content: 'hi' }];

test('a line naming an Object.prototype property as its model fails with model_not_found', () => {
  for (const model of ['constructor', '__proto__', 'toString']) {
    const result = parseBatchLine(line({ model, messages: hi }), 1, ctx);
    assert.equal(result.ok, false, model);
    assert.equal(!result.ok && result.error.code, 'model_not_found', model);
    assert.equal(!result.ok && result.error.param, 'body.model');
  }
});

test('__proto__ keys in a line or its body have no effect', () => {
  const viaLine = parseBatchLine(line({ model: 'gpt-4o-mini', messages: hi }, '"__proto__":{"custom_id":"forged","body":{}},'), 1, ctx);
  assert.ok(viaLine.ok);
  assert.equal(viaLine.customId, 'c1');
  // A body whose fields sit only under __proto__ has no model and no messages of its own.
  const viaBody = parseBatchLine(line(`{"__proto__":{"model":"gpt-4o-mini","messages":${JSON.stringify(hi)}}}`), 1, ctx);
  assert.equal(viaBody.ok, false);
  assert.equal(({} as Record<string, unknown>).model, undefined, 'Object.prototype untouched');
});

test('a line whose messages are malformed fails naming the field under body', () => {
  const result = parseBatchLine(line({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: [{ type: 'video' }] }] }), 3, ctx);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.error.param, 'body.messages[0].content[0].type');
  assert.equal(!result.ok && result.error.line, 3);
  const noContent = parseBatchLine(line({ model: 'gpt-4o-mini', messages: [{ role: 'user' }] }), 1, ctx);
  assert.equal(!noContent.ok && noContent.error.param, 'body.messages[0].content');
});

test('a line whose body carries a field the API does not define fails naming it', () => {
  const result = parseBatchLine(line({ model: 'gpt-4o-mini', messages: hi, data_sources: [{ type: 'azure_search', parameters: {} }] }), 2, ctx);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.error.code, 'unsupported_parameter');
  assert.equal(!result.ok && result.error.param, 'body.data_sources');
});
