/**
 * OpenAI-compatible Files API under /api/v1/files: upload (multipart, purpose=batch), list, retrieve, content,
 * delete. The upload is stream-parsed (busboy) from the request body straight into a block blob; see
 * docs/batch.md on `enableHttpStream` for a fully streamed request in Azure.
 */
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import busboy from 'busboy';
import { ValidationError } from '../core/errors';
import { FILE_ID_PATTERN, toFileView, type FileRecord } from '../core/batch/model';
import { attachmentDisposition, errorBody, errorResponse, json, wellFormed } from '../runtime/http';
import { getBatchServices, getServices } from '../runtime/services';
import { authorize, canSee } from '../runtime/auth';
import type { Principal } from '../core/teams/auth';
import { expiresAtOfUpload, fileCertainlyExpired, fileCreatedAtOfId, fileExpired, fileExpiresAt } from '../core/retention/policy';

/** Room for the multipart framing and the small fields around the file part, bytes. */
const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;

const notFound = (id: string) => json(404, errorBody('file_not_found', `No such File object: ${id}`, 'id'));
const expired = (id: string) => json(404, errorBody('file_expired', `File ${id} has expired and is deleted (its expires_after, or the default retention)`, 'id'));

/** The File object with its expiry: the upload's `expires_after`, else the default retention. */
function fileView(file: FileRecord): Record<string, unknown> {
  return { ...toFileView(file), expires_at: Math.floor(fileExpiresAt(file, getServices().retention.policy) / 1000) };
}

/** Parses the multipart body as it arrives; the `file` part is streamed to storage, never buffered whole. */
async function receiveUpload(request: HttpRequest, team: string): Promise<{ file: FileRecord; purpose: string | undefined; expiresAfter: { anchor?: string; seconds?: string } }> {
  const { files, settings } = getBatchServices();
  const type = request.headers.get('content-type') ?? '';
  if (!/^multipart\/form-data/i.test(type)) {
    throw new ValidationError(`content-type: expected multipart/form-data, got "${type}"`, 'content-type', 'unsupported_media_type', 415);
  }
  if (!request.body) throw new ValidationError('body: empty; expected a multipart form with "file" and "purpose"', 'file');
  // The whole request is bounded, not only the file part: a chunked body is cut off at the limit, never read to its end.
  const maxBodyBytes = settings.maxFileBytes + MULTIPART_OVERHEAD_BYTES;
  const tooLarge = () => new ValidationError(`body: larger than the limit of ${settings.maxFileBytes} bytes for a file`, 'file', 'file_too_large', 413);
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBodyBytes) throw tooLarge();
  // Clients send filenames as UTF-8 (browsers, undici's FormData, the openai SDKs), not busboy's default latin1.
  const parser = busboy({ headers: { 'content-type': type }, defParamCharset: 'utf8', limits: { files: 1, fields: 16, fileSize: settings.maxFileBytes + 1 } });
  let purpose: string | undefined;
  const expiresAfter: { anchor?: string; seconds?: string } = {};
  let upload: Promise<FileRecord> | undefined;
  parser.on('field', (name, value) => {
    if (name === 'purpose') purpose = value;
    // The OpenAI SDKs send expires_after as expires_after[anchor] and expires_after[seconds].
    if (name === 'expires_after[anchor]') expiresAfter.anchor = value;
    if (name === 'expires_after[seconds]') expiresAfter.seconds = value;
  });
  parser.on('file', (name, stream, info) => {
    if (name !== 'file' || upload) return void stream.resume();
    // Only purpose "batch" is accepted, so the file can be stored before the purpose field (which may come later).
    upload = files.upload(stream, wellFormed(info.filename || 'upload.jsonl'), 'batch', { maxBytes: settings.maxFileBytes, maxLines: settings.maxFileLines }, Date.now(), team);
    upload.catch(() => undefined); // awaited below
  });
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on('close', resolve);
    parser.on('error', reject);
  });
  const source = Readable.fromWeb(request.body as WebReadableStream<Uint8Array>);
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.length;
      done(received > maxBodyBytes ? tooLarge() : null, chunk);
    },
  });
  source.on('error', (err) => meter.destroy(err));
  meter.on('error', (err) => {
    source.destroy(); // stop reading the request
    parser.destroy(err);
  });
  source.pipe(meter).pipe(parser);
  try {
    await parsed;
  } catch (err) {
    if (upload) await upload.then((f) => files.delete(f.id)).catch(() => undefined);
    if (err instanceof ValidationError) throw err;
    throw new ValidationError(`body: not a valid multipart form (${(err as Error).message})`, 'body');
  }
  if (!upload) throw new ValidationError('file: is required (a multipart part named "file")', 'file');
  return { file: await upload, purpose, expiresAfter };
}

export async function createFile(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const { file, purpose, expiresAfter } = await receiveUpload(request, auth.principal.team.id);
    const { files } = getBatchServices();
    if (purpose !== 'batch') {
      await files.delete(file.id);
      throw new ValidationError(purpose === undefined ? 'purpose: is required ("batch")' : `purpose: "${purpose}" is not supported; use "batch"`, 'purpose');
    }
    let expiresAt: number | undefined;
    try {
      expiresAt = expiresAtOfUpload(expiresAfter.anchor, expiresAfter.seconds, file.createdAt);
    } catch (err) {
      await files.delete(file.id);
      throw err;
    }
    if (expiresAt !== undefined) {
      await files.setExpiresAt(file.id, expiresAt);
      file.expiresAt = expiresAt;
    }
    // The name is the caller's: JSON-escaped, it cannot start a forged log line.
    context.debug(`[file=${file.id}] stored ${file.bytes} bytes, ${file.lines} lines, filename ${JSON.stringify(file.filename)}`);
    return json(200, fileView(file));
  } catch (err) {
    return errorResponse(err, context);
  }
}

export async function listFiles(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    // As OpenAI: 1 to 10,000, default 10,000; `after` is the last id of the previous page.
    const limit = Math.min(10_000, Math.max(1, Number(request.query.get('limit') ?? 10_000) || 10_000));
    const after = request.query.get('after') || undefined;
    const purpose = request.query.get('purpose') || undefined;
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    // Admins see every team's files; anyone else reads only their team's index partitions.
    const team = auth.principal.role === 'admin' ? undefined : auth.principal.team.id;
    const page = await getBatchServices().files.list({ purpose, after, limit, ...(team !== undefined ? { team } : {}) });
    const data = page.data.map(fileView);
    return json(200, { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.hasMore });
  } catch (err) {
    return errorResponse(err, context);
  }
}

export async function getFile(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const id = request.params.id ?? '';
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const file = await visibleFile(auth.principal, id);
    if (file === 'expired') return expired(id);
    return file ? json(200, fileView(file)) : notFound(id);
  } catch (err) {
    return errorResponse(err, context);
  }
}

export async function getFileContent(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const id = request.params.id ?? '';
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const { files } = getBatchServices();
    const file = await visibleFile(auth.principal, id);
    if (file === 'expired') return expired(id);
    if (!file) return notFound(id);
    const stream = await files.download(id);
    return {
      status: 200,
      body: Readable.toWeb(stream) as HttpResponseInit['body'],
      headers: { 'content-type': 'application/jsonl', 'content-disposition': attachmentDisposition(file.filename) },
    };
  } catch (err) {
    return errorResponse(err, context);
  }
}

export async function deleteFile(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const id = request.params.id ?? '';
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const file = await visibleFile(auth.principal, id);
    if (file === 'expired') return expired(id);
    const deleted = file !== undefined && (await getBatchServices().files.delete(id));
    return deleted ? json(200, { id, object: 'file', deleted: true }) : notFound(id);
  } catch (err) {
    return errorResponse(err, context);
  }
}

/**
 * The file if it exists and the caller may see it; another team's file is answered like a missing one. 'expired' for
 * one past its expiry, whether the sweep has deleted it yet or not (ids carry their creation time).
 */
async function visibleFile(principal: Principal, id: string): Promise<FileRecord | 'expired' | undefined> {
  if (!FILE_ID_PATTERN.test(id)) return undefined;
  const policy = getServices().retention.policy;
  const now = Date.now();
  const file = await getBatchServices().files.get(id);
  if (!file) {
    const createdAt = fileCreatedAtOfId(id);
    return createdAt !== undefined && fileCertainlyExpired(createdAt, policy, now) ? 'expired' : undefined;
  }
  if (!canSee(principal, file.team)) return undefined;
  return fileExpired(file, policy, now) ? 'expired' : file;
}

app.http('createFile', { methods: ['POST'], route: 'v1/files', authLevel: 'anonymous', handler: createFile });
app.http('listFiles', { methods: ['GET'], route: 'v1/files', authLevel: 'anonymous', handler: listFiles });
app.http('getFile', { methods: ['GET'], route: 'v1/files/{id}', authLevel: 'anonymous', handler: getFile });
app.http('getFileContent', { methods: ['GET'], route: 'v1/files/{id}/content', authLevel: 'anonymous', handler: getFileContent });
app.http('deleteFile', { methods: ['DELETE'], route: 'v1/files/{id}', authLevel: 'anonymous', handler: deleteFile });
