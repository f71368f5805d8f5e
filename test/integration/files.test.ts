/**
 * The Files API at its edges, through the app's own handlers and real HTTP against Azurite: how much of an
 * oversized upload is read, and filenames that are not plain ASCII.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HttpRequest, InvocationContext } from '@azure/functions';
import OpenAI, { toFile } from 'openai';
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

/** The name a download's Content-Disposition gives, preferring RFC 5987 `filename*` as clients do. */
function downloadName(header: string | null): string | undefined {
  const exact = /filename\*=UTF-8''([^;\s]+)/i.exec(header ?? '');
  return exact ? decodeURIComponent(exact[1]!) : /filename="([^"]*)"/.exec(header ?? '')?.[1];
}

test('filenames with quotes, CR/LF and non-ASCII upload, list and download intact; logs cannot be forged', async () => {
  const content = `${JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: {} })}\n`;
  const name = 'résumé "final" ✓\r\n[job=job_forged] succeeded team=x.jsonl';
  // A multipart form as a client may send it: the exact name in RFC 2231 filename*, which the parser decodes.
  const boundary = 'sluicenames';
  const form =
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename*=UTF-8''${encodeURIComponent(name).replace(/'/g, '%27')}\r\n` +
    `Content-Type: application/jsonl\r\n\r\n${content}\r\n--${boundary}--\r\n`;
  const created = await fetch(`${stack.baseUrl}/v1/files`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'api-key': stack.apiKey! },
    body: form,
  });
  const file = (await created.json()) as { id: string; filename: string };
  assert.equal(created.status, 200, JSON.stringify(file));
  assert.equal(file.filename, name);

  const download = await fetch(`${stack.baseUrl}/v1/files/${file.id}/content`, { headers: { 'api-key': stack.apiKey! } });
  assert.equal(download.status, 200);
  const disposition = download.headers.get('content-disposition');
  assert.match(disposition ?? '', /^attachment; [\x20-\x7e]+$/);
  assert.equal(downloadName(disposition), name);
  assert.equal(await download.text(), content);

  // The openai SDK, unchanged: a UTF-8 name round-trips, and the content comes back whole.
  const client = new OpenAI({ baseURL: `${stack.baseUrl}/v1`, apiKey: stack.apiKey!, maxRetries: 0 });
  const viaSdk = await client.files.create({ file: await toFile(Buffer.from(content), 'données ✓ 日本.jsonl'), purpose: 'batch' });
  assert.equal(viaSdk.filename, 'données ✓ 日本.jsonl');
  assert.equal((await client.files.retrieve(viaSdk.id)).filename, 'données ✓ 日本.jsonl');
  const sdkDownload = await client.files.content(file.id);
  assert.equal(downloadName(sdkDownload.headers.get('content-disposition')), name);
  assert.equal(await sdkDownload.text(), content);

  const lines = stack.logs().flatMap((l) => l.split(/\r?\n|\r/));
  assert.ok(lines.some((l) => l.includes(file.id) && l.includes(JSON.stringify(name))), 'the upload is logged with the name JSON-escaped');
  assert.ok(!lines.some((l) => /^\s*\[job=job_forged\]/.test(l)), 'no log line is forged');
});
