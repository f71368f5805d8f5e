/**
 * HTTP plumbing shared by the HTTP functions: JSON answers in the OpenAI error shape, bounded body reading,
 * and the mapping from any thrown error to a 4xx/503 answer (a storage outage is 503 with Retry-After, never 500).
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { ConfigError } from '../config';
import { SluiceError, ValidationError } from '../core/errors';
import { isStorageUnavailable } from '../azure/storage';
import type { JobLogger } from '../core/worker';

export function json(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponseInit {
  return { status, jsonBody: body, headers: { 'content-type': 'application/json', ...headers } };
}

export function errorBody(code: string, message: string, param?: string, type = 'invalid_request_error') {
  return { error: { message, type, param: param ?? null, code } };
}

/** Lone UTF-16 surrogates, which no encoding can carry, become U+FFFD. */
export function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/**
 * A Content-Disposition for downloading `filename` that any name keeps intact: an ASCII `filename` (characters that
 * are not printable ASCII, quotes and backslashes become `_`) for old clients, and the exact name as RFC 5987
 * `filename*` (UTF-8, percent-encoded), which clients prefer. No CR/LF or non-ASCII byte reaches the header.
 */
export function attachmentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_') || 'download';
  const exact = encodeURIComponent(wellFormed(filename)).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${exact}`;
}

/** Reads and parses a JSON body of at most `maxBytes`; throws ValidationError (400/413/415) otherwise. */
export async function readJsonBody(request: HttpRequest, maxBytes: number): Promise<unknown> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new ValidationError(`body: ${declared} bytes exceeds the limit of ${maxBytes} bytes`, 'body', 'request_too_large', 413);
  }
  const type = request.headers.get('content-type');
  if (type && !/^application\/(.+\+)?json\b/i.test(type)) {
    throw new ValidationError(`content-type: expected application/json, got "${type}"`, 'content-type', 'unsupported_media_type', 415);
  }
  const buf = await readBounded(request, maxBytes);
  if (buf.length === 0) throw new ValidationError('body: empty; expected a JSON object', 'body');
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new ValidationError(`body: not valid JSON (${(err as Error).message})`, 'body', 'invalid_json');
  }
}

/**
 * The body's bytes, reading no further than `maxBytes`: a body without Content-Length (chunked) that runs past the
 * limit is a 413 as soon as it does, and the rest is never read.
 */
async function readBounded(request: HttpRequest, maxBytes: number): Promise<Buffer> {
  if (!request.body) return Buffer.alloc(0);
  const reader = (request.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, total);
    total += value.byteLength;
    if (total > maxBytes) {
      reader.cancel().catch(() => undefined);
      throw new ValidationError(`body: more than the limit of ${maxBytes} bytes`, 'body', 'request_too_large', 413);
    }
    chunks.push(value);
  }
}

/** Maps anything thrown by a handler to an answer. */
export function errorResponse(err: unknown, context: InvocationContext): HttpResponseInit {
  if (err instanceof ValidationError) return json(err.status, errorBody(err.code, err.message, err.param));
  if (err instanceof SluiceError && err.status < 500) return json(err.status, errorBody(err.code, err.message));
  if (isStorageUnavailable(err)) {
    context.warn(`storage unavailable: ${(err as Error).message}`);
    return json(503, errorBody('storage_unavailable', 'Storage is not reachable right now; nothing was written. Retry shortly.', undefined, 'server_error'), {
      'retry-after': '5',
    });
  }
  if (err instanceof ConfigError) {
    // The detail may quote a setting's value (an endpoint's apiKey); it goes to the log, never to the caller.
    context.error(err.message);
    return json(503, errorBody('service_misconfigured', 'Sluice is misconfigured and cannot serve requests; an operator must fix its settings. Nothing was written.', undefined, 'server_error'), {
      'retry-after': '60',
    });
  }
  context.error(`unexpected error: ${(err as Error)?.stack ?? String(err)}`);
  return json(503, errorBody('internal_error', 'Sluice could not handle this request right now; nothing was written. Retry shortly.', undefined, 'server_error'), {
    'retry-after': '5',
  });
}

/** A JobLogger that writes through the invocation's context, tagging job, attempt and region. */
export function contextLogger(context: InvocationContext): JobLogger {
  return (level, message, f) => {
    const tags = `[job=${f.jobId}${f.attempt !== undefined ? ` attempt=${f.attempt}` : ''}${f.region ? ` region=${f.region}` : ''}]`;
    context[level](`${tags} ${message}`);
  };
}
