/**
 * Job records in Table Storage, one entity per job: PartitionKey = job id, or, for a grouped batch line
 * (`job_<partition>_<line>`, see lineJobId), PartitionKey = `job_<partition>` shared by 100 lines and RowKey = job id,
 * so that a batch fan-out writes its rows in entity-group transactions. Requests and responses larger than a
 * table property allows go to Blob Storage, so a large prompt never fails a submit. Every update is guarded by the
 * entity's ETag: @azure/data-tables defaults to an unconditional "*", which would let two workers both win.
 */
import { RestError, type TableClient, type TableEntityResult, type TransactionAction } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import { StaleJobError, type JobPriority, type JobRecord, type JobRepository, type JobStatus } from '../core/jobs';
import { storageCounters } from './storage';
import { isWaiting, WaitingTransitions, type WaitingChange } from './waitingJobs';

/** A table string property holds 64 KiB of UTF-16; stay well under it. */
const INLINE_LIMIT_CHARS = 30_000;

export interface StoredJob {
  job: JobRecord;
  etag: string;
}

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

const GROUPED_ID = /^(job_[0-9a-f]{16})_[0-9a-f]{24}$/;

/** Where a job's row lives. */
export function jobKeys(id: string): { partitionKey: string; rowKey: string } {
  const grouped = GROUPED_ID.exec(id);
  return grouped ? { partitionKey: grouped[1]!, rowKey: id } : { partitionKey: id, rowKey: '' };
}

/** What a direct end-of-job write reads to keep the waiting count (waitingJobs.ts). */
const WAITING_FIELDS = ['notBefore', 'team', 'createdAt'];

/** An entity-group transaction holds at most 100 entities and 4 MiB; stay under both. */
const TX_MAX_ROWS = 100;
const TX_MAX_BYTES = 3 * 1024 * 1024;
/** Transactions in flight per createMany call. */
const TX_CONCURRENCY = 8;
/** What the retention sweep reads of a job before deleting it. */
const RETENTION_SELECT = ['PartitionKey', 'RowKey', 'status', 'completedAt', 'createdAt', 'requestBlob', 'responseBlob'];

export class JobStore implements JobRepository {
  private ready: Promise<void> | undefined;
  private readonly waiting: WaitingTransitions | undefined;

  /** `onWaitingChange` hears each job this store sees start (+1) or stop (-1) waiting for quota. */
  constructor(private readonly table: TableClient, private readonly payloads: ContainerClient, onWaitingChange?: WaitingChange) {
    this.waiting = onWaitingChange ? new WaitingTransitions(onWaitingChange) : undefined;
  }

  /** Creates the table and container once per process. */
  ensure(): Promise<void> {
    this.ready ??= (async () => {
      await this.table.createTable();
      storageCounters.blob += 1;
      await this.payloads.createIfNotExists();
    })().catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  /** Inserts a new job; returns false when a job with that id already exists. */
  async create(job: JobRecord): Promise<boolean> {
    return (await this.insert(job)) !== undefined;
  }

  /** Inserts a new job; returns its ETag, or undefined when a job with that id already exists. */
  async insert(job: JobRecord): Promise<string | undefined> {
    await this.ensure();
    const etag = await this.insertEntity(await this.toEntity(job));
    if (etag !== undefined) this.waiting?.saw(job.id, etag, isWaiting(job));
    return etag;
  }

  /**
   * Inserts many jobs, those sharing a partition in entity-group transactions (all or nothing each). A transaction
   * that meets an existing row (a resumed fan-out) is redone row by row. Returns, per job, whether it was inserted.
   */
  async createMany(jobs: readonly JobRecord[]): Promise<boolean[]> {
    await this.ensure();
    const entities = await Promise.all(jobs.map((job) => this.toEntity(job)));
    const created = jobs.map(() => false);
    const groups: number[][] = [];
    const open = new Map<string, { rows: number[]; bytes: number }>();
    entities.forEach((entity, i) => {
      const bytes = Buffer.byteLength(JSON.stringify(entity));
      let group = open.get(entity.partitionKey);
      if (!group || group.rows.length >= TX_MAX_ROWS || group.bytes + bytes > TX_MAX_BYTES) {
        group = { rows: [], bytes: 0 };
        open.set(entity.partitionKey, group);
        groups.push(group.rows);
      }
      group.rows.push(i);
      group.bytes += bytes;
    });
    let next = 0;
    const runGroup = async (rows: number[]) => {
      if (rows.length > 1) {
        try {
          await this.table.submitTransaction(rows.map((i): TransactionAction => ['create', entities[i]!]));
          for (const i of rows) created[i] = true;
          return;
        } catch (err) {
          if (!(err instanceof RestError && err.statusCode === 409)) throw err;
        }
      }
      for (const i of rows) created[i] = (await this.insertEntity(entities[i]!)) !== undefined;
    };
    await Promise.all(
      Array.from({ length: Math.min(TX_CONCURRENCY, groups.length) }, async () => {
        for (let g = next++; g < groups.length; g = next++) await runGroup(groups[g]!);
      }),
    );
    return created;
  }

  private async insertEntity(entity: Entity): Promise<string | undefined> {
    try {
      return (await this.table.createEntity(entity)).etag ?? '*';
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 409) return undefined;
      throw err;
    }
  }

  /**
   * Reads a job. `withRequest: false` skips loading the request payload (the API view never shows it). A job that
   * finished at or before `finishedBy` (epoch ms: past retention) comes without payloads, which may be deleted already.
   */
  async get(id: string, opts: { withRequest?: boolean; finishedBy?: number } = {}): Promise<StoredJob | undefined> {
    await this.ensure();
    let entity: TableEntityResult<Record<string, unknown>>;
    try {
      const { partitionKey, rowKey } = jobKeys(id);
      entity = await this.table.getEntity<Record<string, unknown>>(partitionKey, rowKey);
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 404) return undefined;
      throw err;
    }
    // A payload that can't be loaded is an error, never "no such job".
    const expired = opts.finishedBy !== undefined && (entity.status === 'succeeded' || entity.status === 'failed') && Number(entity.completedAt ?? entity.createdAt) <= opts.finishedBy;
    const job = await this.fromEntity(entity, !expired && (opts.withRequest ?? true), !expired);
    this.waiting?.saw(id, entity.etag, isWaiting(job));
    return { job, etag: entity.etag };
  }

  /** Replaces the job if nobody changed it since `etag` was read; returns the new etag. */
  async replace(job: JobRecord, etag: string): Promise<string> {
    const entity = await this.toEntity(job);
    try {
      const res = await this.table.updateEntity(entity, 'Replace', { etag });
      this.waiting?.replaced(job, etag, res.etag ?? etag);
      return res.etag ?? etag;
    } catch (err) {
      if (err instanceof RestError && (err.statusCode === 412 || err.statusCode === 409)) throw new StaleJobError(job.id);
      throw err;
    }
  }

  /**
   * Marks a job failed without reading its payloads, unless it already ended. Used for poisoned messages, whose
   * record may be the very thing that cannot be read. Returns false if the job is unknown or already terminal.
   */
  async failIfNotTerminal(id: string, error: { code: string; message: string }, now: number): Promise<boolean> {
    const keys = jobKeys(id);
    for (let tries = 0; tries < 5; tries += 1) {
      let current: TableEntityResult<Record<string, unknown>>;
      try {
        current = await this.table.getEntity<Record<string, unknown>>(keys.partitionKey, keys.rowKey, { queryOptions: { select: ['status', ...WAITING_FIELDS] } });
      } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return false;
        throw err;
      }
      if (current.status === 'succeeded' || current.status === 'failed') return false;
      try {
        await this.table.updateEntity(
          { ...keys, status: 'failed', errorCode: error.code, errorMessage: error.message, completedAt: now, claimId: '', claimUntil: 0 },
          'Merge',
          { etag: current.etag },
        );
        this.endedWaiting(id, current);
        return true;
      } catch (err) {
        if (!(err instanceof RestError && err.statusCode === 412)) throw err;
      }
    }
    throw new StaleJobError(id);
  }

  /**
   * For batch cancel and expiry: fails a job that no worker has started (queued, waiting, or held for quota by its
   * worker), ETag-guarded so a worker's claim wins the race; the worker then skips it as terminal. Returns the job's status afterwards
   * ('failed' when this call stopped it), or undefined when there is no such job.
   */
  async stopIfNotStarted(id: string, error: { code: string; message: string }, now: number): Promise<{ stopped: boolean; status: JobStatus } | undefined> {
    const keys = jobKeys(id);
    for (let tries = 0; tries < 5; tries += 1) {
      let current: TableEntityResult<Record<string, unknown>>;
      try {
        current = await this.table.getEntity<Record<string, unknown>>(keys.partitionKey, keys.rowKey, { queryOptions: { select: ['status', ...WAITING_FIELDS] } });
      } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return undefined;
        throw err;
      }
      const status = current.status as JobStatus;
      // A running job with notBefore is held by its worker for quota, not calling the model: it has not started.
      // The worker clears notBefore in the same ETag-guarded write that precedes its call, so one of the two wins.
      const held = status === 'running' && typeof current.notBefore === 'number';
      if (status !== 'queued' && status !== 'waiting' && !held) return { stopped: false, status };
      try {
        await this.table.updateEntity(
          { ...keys, status: 'failed', errorCode: error.code, errorMessage: error.message, completedAt: now },
          'Merge',
          { etag: current.etag },
        );
        this.endedWaiting(id, current);
        return { stopped: true, status: 'failed' };
      } catch (err) {
        if (!(err instanceof RestError && err.statusCode === 412)) throw err;
      }
    }
    throw new StaleJobError(id);
  }

  /**
   * Removes a job that was never enqueued (a failed submit), so nothing half-written remains. With `etag`, only if
   * nobody touched the row since (an idempotent replay adopts the row by rewriting it). Returns false when the row
   * is gone or changed.
   */
  async delete(id: string, etag?: string): Promise<boolean> {
    try {
      const { partitionKey, rowKey } = jobKeys(id);
      await this.table.deleteEntity(partitionKey, rowKey, etag ? { etag } : undefined);
      return true;
    } catch (err) {
      if (err instanceof RestError && (err.statusCode === 404 || err.statusCode === 412)) return false;
      throw err;
    }
  }

  /** For the waiting count: a job this store just ended with a direct write, from the fields it read first. */
  private endedWaiting(id: string, read: Record<string, unknown>): void {
    this.waiting?.ended(id, { team: typeof read.team === 'string' ? read.team : 'default', createdAt: Number(read.createdAt ?? 0) }, isWaiting(read));
  }

  // Retention (core/retention/sweep.ts): deleting finished jobs with their payload blobs.

  /**
   * Deletes a job that ended at or before `finishedBy` (epoch ms), then its payload blobs. The row goes first and
   * only if unchanged since read (a new job reusing an idempotent id is never taken for the old one); a crash between
   * the two leaves blobs the storage lifecycle policy removes. True when this call deleted the job.
   */
  async deleteIfFinishedBy(id: string, finishedBy: number): Promise<boolean> {
    const keys = jobKeys(id);
    let e: TableEntityResult<Record<string, unknown>>;
    try {
      e = await this.table.getEntity<Record<string, unknown>>(keys.partitionKey, keys.rowKey, { queryOptions: { select: RETENTION_SELECT } });
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 404) return false;
      throw err;
    }
    if (e.status !== 'succeeded' && e.status !== 'failed') return false;
    if (Number(e.completedAt ?? e.createdAt) > finishedBy) return false;
    if (!(await this.delete(id, e.etag))) return false;
    await this.deletePayloads([e]);
    return true;
  }

  /** Deletes up to `max` rows of one partition (a grouped batch's lines, see jobKeys) and their payload blobs. */
  async deletePartition(partition: string, max: number): Promise<number> {
    const filter = `PartitionKey eq '${partition.replace(/'/g, "''")}'`;
    const rows: TableEntityResult<Record<string, unknown>>[] = [];
    const pages = this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter, select: RETENTION_SELECT } }).byPage({ maxPageSize: Math.min(max, TX_MAX_ROWS) });
    for await (const page of pages) {
      rows.push(...page.slice(0, max - rows.length));
      if (rows.length >= max) break;
    }
    if (!rows.length) return 0;
    try {
      await this.table.submitTransaction(rows.map((r): TransactionAction => ['delete', { partitionKey: partition, rowKey: String(r.rowKey) }]));
    } catch (err) {
      // One row gone since the read fails the whole transaction: delete the rest one by one.
      if (!(err instanceof RestError && err.statusCode === 404)) throw err;
      for (const r of rows) await this.delete(String(r.rowKey) || partition);
    }
    await this.deletePayloads(rows);
    return rows.length;
  }

  private async deletePayloads(rows: ReadonlyArray<Record<string, unknown>>): Promise<void> {
    const paths = rows.flatMap((r) => [r.requestBlob, r.responseBlob]).filter((p): p is string => typeof p === 'string' && p !== '');
    for (const path of paths) {
      storageCounters.blob += 1;
      await this.payloads.getBlockBlobClient(path).deleteIfExists();
    }
  }

  private async putPayload(path: string, text: string): Promise<void> {
    storageCounters.blob += 1;
    await this.payloads.getBlockBlobClient(path).upload(text, Buffer.byteLength(text), {
      blobHTTPHeaders: { blobContentType: 'application/json' },
    });
  }

  private async getPayload(path: string): Promise<string> {
    storageCounters.blob += 1;
    const buf = await this.payloads.getBlockBlobClient(path).downloadToBuffer();
    return buf.toString('utf8');
  }

  private async packJson(id: string, kind: 'request' | 'response', value: unknown, entity: Entity): Promise<void> {
    if (value === undefined) return;
    const text = JSON.stringify(value);
    if (text.length <= INLINE_LIMIT_CHARS) {
      entity[`${kind}Json`] = text;
    } else {
      const path = `${kind}s/${id}.json`;
      await this.putPayload(path, text);
      entity[`${kind}Blob`] = path;
    }
  }

  private async unpackJson(entity: Record<string, unknown>, kind: 'request' | 'response'): Promise<Record<string, unknown> | undefined> {
    const inline = entity[`${kind}Json`];
    if (typeof inline === 'string') return JSON.parse(inline) as Record<string, unknown>;
    const blob = entity[`${kind}Blob`];
    if (typeof blob === 'string') return JSON.parse(await this.getPayload(blob)) as Record<string, unknown>;
    return undefined;
  }

  private async toEntity(job: JobRecord): Promise<Entity> {
    const entity: Entity = {
      ...jobKeys(job.id),
      status: job.status,
      priority: job.priority,
      model: job.model,
      team: job.team,
      createdAt: job.createdAt,
      attempts: job.attempts,
      promptTokens: job.promptTokens,
      maxOutputTokens: job.maxOutputTokens,
      throttles: job.throttles,
      metadataJson: JSON.stringify(job.metadata),
      regionsTriedJson: JSON.stringify(job.regionsTried),
    };
    const optional: Array<keyof JobRecord> = ['startedAt', 'completedAt', 'region', 'deployment', 'latencyMs', 'notBefore', 'claimId', 'claimUntil', 'bodyHash', 'transientFailures', 'dequeueCount',
      // Batch line and submission-queue fields.
      'batchId', 'customId', 'replyTo', 'clientId'];
    for (const key of optional) if (job[key] !== undefined) entity[key] = job[key];
    if (job.usage) entity.usageJson = JSON.stringify(job.usage);
    if (job.error) {
      entity.errorCode = job.error.code;
      entity.errorMessage = job.error.message.slice(0, INLINE_LIMIT_CHARS);
    }
    await this.packJson(job.id, 'request', job.request, entity);
    await this.packJson(job.id, 'response', job.response, entity);
    return entity;
  }

  private async fromEntity(e: TableEntityResult<Record<string, unknown>>, withRequest: boolean, withResponse = true): Promise<JobRecord> {
    const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    return {
      id: e.rowKey || e.partitionKey!,
      status: e.status as JobStatus,
      priority: e.priority as JobPriority,
      model: String(e.model),
      team: str(e.team) ?? 'default',
      request: (withRequest ? await this.unpackJson(e, 'request') : undefined) ?? {},
      metadata: JSON.parse(str(e.metadataJson) ?? '{}') as Record<string, string>,
      createdAt: Number(e.createdAt),
      startedAt: num(e.startedAt),
      completedAt: num(e.completedAt),
      attempts: Number(e.attempts ?? 0),
      promptTokens: Number(e.promptTokens ?? 0),
      maxOutputTokens: Number(e.maxOutputTokens ?? 0),
      region: str(e.region),
      deployment: str(e.deployment),
      response: withResponse ? await this.unpackJson(e, 'response') : undefined,
      usage: e.usageJson ? (JSON.parse(String(e.usageJson)) as Record<string, unknown>) : undefined,
      latencyMs: num(e.latencyMs),
      error: e.errorCode ? { code: String(e.errorCode), message: String(e.errorMessage ?? '') } : undefined,
      notBefore: num(e.notBefore),
      claimId: str(e.claimId) || undefined,
      claimUntil: num(e.claimUntil) || undefined,
      regionsTried: JSON.parse(str(e.regionsTriedJson) ?? '[]') as JobRecord['regionsTried'],
      throttles: Number(e.throttles ?? 0),
      transientFailures: num(e.transientFailures),
      dequeueCount: num(e.dequeueCount),
      bodyHash: str(e.bodyHash),
      batchId: str(e.batchId),
      customId: str(e.customId),
      replyTo: str(e.replyTo),
      clientId: str(e.clientId),
    };
  }
}
