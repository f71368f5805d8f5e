/**
 * Files (uploaded batch inputs and produced outputs) as block blobs named by their id, with filename, purpose and
 * line count in blob metadata. Content always moves as a stream: uploads are staged in 4 MiB blocks and committed
 * at the end (a half-uploaded file is never visible), downloads and line reads are ranged streams. Listing reads
 * the file index (fileIndex.ts), written once a file is committed.
 */
import { once } from 'node:events';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { TableClient } from '@azure/data-tables';
import { RestError, type BlobItem, type ContainerClient } from '@azure/storage-blob';
import { ValidationError } from '../core/errors';
import { jsonlLines, type JsonlLine } from '../core/batch/lines';
import { newFileId, type FilePurpose, type FileRecord } from '../core/batch/model';
import type { FileRepository, FileWriter } from '../core/batch/ports';
import { FileIndex } from './fileIndex';
import { storageCounters } from './storage';

const BLOCK_BYTES = 4 * 1024 * 1024;
const UPLOAD_CONCURRENCY = 4;

export interface UploadLimits {
  maxBytes: number;
  maxLines: number;
}

/** Counts bytes and non-empty lines going through; fails the stream with a 413/400 ValidationError past a limit. */
class LimitCounter extends Transform {
  bytes = 0;
  lines = 0;
  private lineHasText = false;

  constructor(private readonly limits: UploadLimits) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limits.maxBytes) {
      return done(new ValidationError(`file: larger than the limit of ${this.limits.maxBytes} bytes`, 'file', 'file_too_large', 413));
    }
    for (const byte of chunk) {
      if (byte === 0x0a) {
        if (this.lineHasText) this.lines += 1;
        this.lineHasText = false;
      } else if (byte !== 0x0d && byte !== 0x20 && byte !== 0x09) this.lineHasText = true;
    }
    if (this.lines > this.limits.maxLines) {
      return done(new ValidationError(`file: more than ${this.limits.maxLines} lines`, 'file', 'too_many_lines'));
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.lineHasText) this.lines += 1;
    if (this.lines > this.limits.maxLines) return done(new ValidationError(`file: more than ${this.limits.maxLines} lines`, 'file', 'too_many_lines'));
    done();
  }
}

export class FileStore implements FileRepository {
  private ready: Promise<unknown> | undefined;
  private readonly index: FileIndex;

  /** `indexTable` holds the listing index (the batches table). */
  constructor(private readonly container: ContainerClient, indexTable: TableClient) {
    this.index = new FileIndex(indexTable);
  }

  ensure(): Promise<unknown> {
    this.ready ??= this.container.createIfNotExists().catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private toRecord(id: string, metadata: Record<string, string> | undefined, bytes: number | undefined, created: Date | undefined): FileRecord {
    const m = metadata ?? {};
    return {
      id,
      filename: decodeURIComponent(m.filename ?? id),
      purpose: (m.purpose as FilePurpose) ?? 'batch',
      bytes: bytes ?? 0,
      createdAt: Number(m.createdat ?? created?.getTime() ?? 0),
      lines: Number(m.lines ?? 0),
      team: m.team ?? 'default',
      ...(m.expiresat ? { expiresAt: Number(m.expiresat) } : {}),
    };
  }

  /** Streams `content` into a new file, enforcing the limits as it goes. Nothing is left behind on failure. */
  /** `team` owns the file: only it (and admins) can see it. */
  async upload(content: Readable, filename: string, purpose: FilePurpose, limits: UploadLimits, now = Date.now(), team = 'default'): Promise<FileRecord> {
    await this.ensure();
    const id = newFileId(now);
    const counter = new LimitCounter(limits);
    content.on('error', (err) => counter.destroy(err));
    counter.on('error', () => {
      // Keep draining the source so a multipart parser upstream can finish and the request can be answered.
      content.unpipe(counter);
      content.resume();
    });
    content.pipe(counter);
    const blob = this.container.getBlockBlobClient(id);
    // Metadata is part of the commit, so a listed file always has it; line count travels in metadata too.
    const metadata = { filename: encodeURIComponent(filename), purpose, createdat: String(now), team };
    storageCounters.blob += 1;
    try {
      await blob.uploadStream(counter, BLOCK_BYTES, UPLOAD_CONCURRENCY, { metadata, blobHTTPHeaders: { blobContentType: 'application/jsonl' } });
    } catch (err) {
      // The SDK reports a source-stream failure as its own error; surface the limit that was hit.
      throw counter.errored ?? err;
    }
    if (counter.errored) throw counter.errored;
    const file = { id, filename, purpose, bytes: counter.bytes, createdAt: now, lines: counter.lines, team };
    await this.commit(blob, metadata, file);
    return file;
  }

  /** The line count joins the metadata, then the file is listed; a file that cannot be listed is removed. */
  private async commit(blob: ReturnType<ContainerClient['getBlockBlobClient']>, metadata: Record<string, string>, file: FileRecord): Promise<void> {
    await blob.setMetadata({ ...metadata, lines: String(file.lines) });
    try {
      await this.index.put(file);
    } catch (err) {
      await blob.deleteIfExists().catch(() => undefined);
      throw err;
    }
  }

  async get(id: string): Promise<FileRecord | undefined> {
    await this.ensure();
    try {
      const p = await this.container.getBlockBlobClient(id).getProperties();
      return this.toRecord(id, p.metadata, p.contentLength, p.createdOn);
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  /** Newest first (ids carry an inverted timestamp): `limit` files after the id `after`, only `team`'s when given. */
  async list(opts: { purpose?: string; after?: string; limit: number; team?: string }): Promise<{ data: FileRecord[]; hasMore: boolean }> {
    await this.ensure();
    return this.index.list(opts, () => this.everyBlob());
  }

  /** Every stored file, from the blobs themselves: only to index files stored before the index existed. */
  private async *everyBlob(): AsyncIterable<FileRecord> {
    for await (const item of this.container.listBlobsFlat({ includeMetadata: true })) {
      yield this.toRecord(item.name, item.metadata, item.properties.contentLength, item.properties.createdOn);
    }
  }

  /** Returns false when there was no such file. Its index rows go first, so a listed file can always be read. */
  async delete(id: string): Promise<boolean> {
    const file = await this.get(id);
    if (!file) return false;
    await this.index.remove(file);
    const res = await this.container.getBlockBlobClient(id).deleteIfExists();
    return res.succeeded;
  }

  /** The file's bytes from `offset` as a Node stream. */
  async download(id: string, offset = 0): Promise<Readable> {
    storageCounters.blob += 1;
    const res = await this.container.getBlockBlobClient(id).download(offset, undefined, { maxRetryRequests: 5 });
    return res.readableStreamBody as Readable;
  }

  async *lines(id: string, fromByte = 0, fromLineNo = 1): AsyncIterable<JsonlLine> {
    const stream = await this.download(id, fromByte);
    try {
      yield* jsonlLines(stream, fromByte, fromLineNo);
    } finally {
      stream.destroy();
    }
  }

  writer(filename: string, purpose: FilePurpose, team = 'default'): FileWriter {
    const now = Date.now();
    const id = newFileId(now);
    const pass = new PassThrough();
    let bytes = 0;
    let lines = 0;
    const blob = this.container.getBlockBlobClient(id);
    const metadata = { filename: encodeURIComponent(filename), purpose, createdat: String(now), team };
    const store = this;
    const uploaded = this.ensure().then(() => blob.uploadStream(pass, BLOCK_BYTES, UPLOAD_CONCURRENCY, { metadata, blobHTTPHeaders: { blobContentType: 'application/jsonl' } }));
    uploaded.catch(() => undefined); // observed in write()/close()
    return {
      async write(line: string) {
        const text = `${line}\n`;
        bytes += Buffer.byteLength(text);
        lines += 1;
        if (!pass.write(text)) await Promise.race([once(pass, 'drain'), uploaded.then(() => Promise.reject(new Error('upload ended early')))]);
      },
      async close() {
        pass.end();
        await uploaded;
        const file = { id, filename, purpose, bytes, createdAt: now, lines, team };
        await store.commit(blob, metadata, file);
        return file;
      },
    };
  }

  // Retention (core/retention/policy.ts, sweep.ts): a file's own expiry, and the sweep's listing.

  /** Records an upload's `expires_after` as the file's expiry time (epoch ms), beside its other metadata. */
  async setExpiresAt(id: string, expiresAt: number): Promise<void> {
    const blob = this.container.getBlockBlobClient(id);
    storageCounters.blob += 2;
    const { metadata } = await blob.getProperties();
    await blob.setMetadata({ ...metadata, expiresat: String(expiresAt) });
  }

  /** One page of the whole container's listing from `marker`: each blob's name and times, and the next marker. */
  async retentionPage(marker: string | undefined, max: number): Promise<{ items: Array<{ name: string; createdAt: number; expiresAt?: number }>; next?: string }> {
    await this.ensure();
    storageCounters.blob += 1;
    const pages = this.container.listBlobsFlat({ includeMetadata: true }).byPage({ maxPageSize: Math.min(max, 5000), ...(marker ? { continuationToken: marker } : {}) });
    const { value: page } = await pages.next();
    if (!page) return { items: [] };
    const items = page.segment.blobItems.map((b: BlobItem) => {
      const m = b.metadata ?? {};
      return { name: b.name, createdAt: Number(m.createdat ?? b.properties.createdOn?.getTime() ?? 0), ...(m.expiresat ? { expiresAt: Number(m.expiresat) } : {}) };
    });
    return { items, ...(page.continuationToken ? { next: page.continuationToken } : {}) };
  }

  /** Deletes an expired file by its blob name (its id), listing index rows first; false when it was gone. */
  async deleteBlob(name: string): Promise<boolean> {
    return this.delete(name);
  }
}
