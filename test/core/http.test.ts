/** The HTTP plumbing: what an error answer may show a caller, and how much of a body is read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HttpRequest, InvocationContext } from '@azure/functions';
import { ConfigError, loadConfig } from '../../src/config';
import { attachmentDisposition, errorResponse, readJsonBody } from '../../src/runtime/http';
import { ValidationError } from '../../src/core/errors';

/** Short enough that the JSON parser quotes all of it in its message. */
const SECRET = 'sk-7f3a9c';

function recordingContext() {
  const lines: string[] = [];
  const log = (m: string) => void lines.push(m);
  return { lines, context: { error: log, warn: log, info: log, debug: log, trace: log, log } as unknown as InvocationContext };
}

test('a config error answers a generic 503 and logs the detail, never the setting value', () => {
  let err: unknown;
  try {
    loadConfig({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', SLUICE_ENDPOINTS: SECRET });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError && err.message.includes(SECRET), `precondition: the detail quotes the value (${String(err)})`);
  const { lines, context } = recordingContext();
  const res = errorResponse(err, context);
  assert.equal(res.status, 503);
  assert.equal(res.headers && (res.headers as Record<string, string>)['retry-after'], '60');
  const body = JSON.stringify(res.jsonBody);
  assert.ok(!body.includes(SECRET), body);
  assert.ok(!body.includes('SLUICE_ENDPOINTS'), body);
  assert.equal((res.jsonBody as { error: { code: string; param: unknown } }).error.code, 'service_misconfigured');
  assert.equal((res.jsonBody as { error: { param: unknown } }).error.param, null);
  assert.ok(lines.some((l) => l.includes('SLUICE_ENDPOINTS')), 'the log names the setting');
});

/** A request whose body is a stream of `total` bytes in 64 KiB chunks, counting how many bytes were pulled. */
function streamingRequest(total: number, headers: Record<string, string>) {
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (pulled >= total) return controller.close();
        pulled += chunk.byteLength;
        controller.enqueue(chunk.slice());
      },
    },
    { highWaterMark: 0 },
  );
  const request = { headers: new Headers(headers), body, arrayBuffer: () => new Response(body).arrayBuffer() } as unknown as HttpRequest;
  return { request, pulled: () => pulled };
}

test('a chunked JSON body past the limit is 413 without being read to its end', async () => {
  const limit = 256 * 1024;
  const { request, pulled } = streamingRequest(64 * 1024 * 1024, { 'content-type': 'application/json' });
  await assert.rejects(readJsonBody(request, limit), (err: unknown) => err instanceof ValidationError && err.status === 413 && err.code === 'request_too_large');
  assert.ok(pulled() <= limit + 64 * 1024, `read ${pulled()} bytes of a body over the ${limit}-byte limit`);
});

test('a chunked JSON body within the limit is read whole', async () => {
  const { request } = streamingRequest(128 * 1024, { 'content-type': 'application/json' });
  // 128 KiB of spaces is not JSON: reaching the parser proves every byte was read.
  await assert.rejects(readJsonBody(request, 256 * 1024), (err: unknown) => err instanceof ValidationError && err.code === 'invalid_json');
});

test('a download Content-Disposition keeps any filename intact and the header printable ASCII', () => {
  for (const name of ['prompts.jsonl', 'a "quoted" name.jsonl', 'two\r\nlines.jsonl', 'résumé ✓ 日本.jsonl', "it's (1)*.jsonl", 'back\\slash%41.jsonl']) {
    const header = attachmentDisposition(name);
    assert.match(header, /^[\x20-\x7e]+$/, header);
    const exact = /filename\*=UTF-8''([^;\s]+)$/.exec(header);
    assert.ok(exact, header);
    assert.match(exact[1]!, /^[A-Za-z0-9!#$&+\-.^_`|~%]+$/, 'only RFC 5987 attr-chars and escapes');
    assert.equal(decodeURIComponent(exact[1]!), name);
    const ascii = /filename="([^"]*)"/.exec(header);
    assert.ok(ascii && !/["\\]/.test(ascii[1]!), header);
  }
  assert.equal(decodeURIComponent(/filename\*=UTF-8''(\S+)$/.exec(attachmentDisposition('\ud800.jsonl'))![1]!), '\ufffd.jsonl');
});
