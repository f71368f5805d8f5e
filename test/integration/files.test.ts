/**
 * The Files API at its edges, through the app's own handlers and real HTTP against Azurite: how much of an
 * oversized upload is read, and filenames that are not plain ASCII.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HttpRequest, InvocationContext } from '@azure/functions';
import type { RunningStack } from '../../local/stack';
import { startBatchStack } from '../batch/support';

const MAX_FILE_BYTES = 64 * 1024;
let stack: RunningStack;

before(async () => {
  stack = await startBatchStack({ env: { SLUICE_MAX_FILE_BYTES: String(MAX_FILE_BYTES) } });
});

after(async () => {
  await stack?.stop();
});

function quietContext(): InvocationContext {
  const log = () => undefined;
  return { error: log, warn: log, info: log, debug: log, trace: log, log } as unknown as InvocationContext;
}

test('a chunked upload past the file limit is 413 without the rest of the body being read', async () => {
  const { createFile } = await import('../../src/functions/files.js');
  const boundary = 'sluiceboundary';
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n`,
  );
  const line = Buffer.from(`${JSON.stringify({ custom_id: 'x', method: 'POST', url: '/v1/chat/completions', body: {} })}\n`.repeat(512));
  const total = 32 * 1024 * 1024;
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const chunk = pulled === 0 ? head : pulled >= total ? Buffer.from(`\r\n--${boundary}--\r\n`) : line;
        if (pulled > total) return controller.close();
        pulled += chunk.length;
        controller.enqueue(new Uint8Array(chunk));
      },
    },
    { highWaterMark: 0 },
  );
  const request = {
    method: 'POST',
    url: `${stack.baseUrl}/v1/files`,
    headers: new Headers({ 'content-type': `multipart/form-data; boundary=${boundary}`, 'api-key': stack.apiKey! }),
    query: new URLSearchParams(),
    params: {},
    body,
  } as unknown as HttpRequest;
  const res = await createFile(request, quietContext());
  assert.equal(res.status, 413, JSON.stringify(res.jsonBody));
  assert.equal((res.jsonBody as { error: { code: string } }).error.code, 'file_too_large');
  assert.ok(pulled < 4 * 1024 * 1024, `read ${pulled} of ${total} bytes for a ${MAX_FILE_BYTES}-byte limit`);
});
