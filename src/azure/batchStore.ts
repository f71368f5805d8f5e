/**
 * Batches in Table Storage (one table, four kinds of partition):
 *   PK "batch",      RK <batch id>   the batch record (ids sort newest first), ETag-guarded
 *   PK "team:<id>",  RK <batch id>   one empty row per batch of that team: its listing pages by key here, so a
 *                                    list call reads `limit` + 1 index rows and `limit` records whatever other
 *                                    teams or earlier years hold
 *   PK "active",     RK <batch id>   index of unfinished batches, visited by the sweep
 *   PK <batch id>                    completion markers and counter shards of its lines (batchProgress.ts)
 * Also the adapter that lets the batch driver create, enqueue and stop jobs.
 */
import { RestError, type TableClient, type TransactionAction } from '@azure/data-tables';
import type { JobRecord, JobStatus } from '../core/jobs';
import type { BatchRecord, LineCounts, LineOutcome } from '../core/batch/model';
import { emptyCounts } from '../core/batch/model';
import { StaleBatchError, type BatchJobPort, type BatchRepository } from '../core/batch/ports';
import { BatchProgress } from './batchProgress';
import { readRow } from './conditionalRows';
import type { JobStore } from './jobStore';
import { batchIdBoundary } from '../core/retention/policy';

const BATCH_PK = 'batch';
const ACTIVE_PK = 'active';
const teamPk = (team: string) => `team:${team}`;
/** Marks that the team partitions hold every batch (batches stored before them are indexed once, see list). */
const INDEX_DONE = { partitionKey: 'meta', rowKey: 'team-index' };
/** Stay under the 64 KiB table property limit (UTF-16). */
const MAX_ERRORS_CHARS = 30_000;

/** A key-range filter: the partition, and row keys after `after` when given. */
function pageFilter(partitionKey: string, after: string | undefined): string {
  const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
  return `PartitionKey eq ${quote(partitionKey)}${after ? ` and RowKey gt ${quote(after)}` : ''}`;
}

/** errors.data trimmed to fit one property (the first errors are the useful ones). */
function packErrors(errors: BatchRecord['errors']): string | undefined {
  if (!errors || errors.length === 0) return undefined;
  let list = errors;
  let text = JSON.stringify(list);
  while (text.length > MAX_ERRORS_CHARS && list.length > 1) {
    list = list.slice(0, Math.floor(list.length / 2));
    text = JSON.stringify(list);
  }
  return text.slice(0, MAX_ERRORS_CHARS);
}

export class BatchStore implements BatchRepository {
  private ready: Promise<unknown> | undefined;

  private readonly progress: BatchProgress;
  private indexed = false;

  constructor(private readonly table: TableClient) {
    this.progress = new BatchProgress(table);
  }

  ensure(): Promise<unknown> {
    this.ready ??= this.table.createTable().catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private toEntity(b: BatchRecord) {
    const { errors, ...rest } = b;
    return { partitionKey: BATCH_PK, rowKey: b.id, status: b.status, recordJson: JSON.stringify(rest), errorsJson: packErrors(errors) ?? '' };
  }

  /** A stored batch row as a record (for the retention sweep's key-range reads). */
  recordOf(e: Record<string, unknown>): BatchRecord {
    return this.fromEntity(e);
  }

  private fromEntity(e: Record<string, unknown>): BatchRecord {
    const rest = JSON.parse(String(e.recordJson)) as BatchRecord;
    const errors = typeof e.errorsJson === 'string' && e.errorsJson ? (JSON.parse(e.errorsJson) as BatchRecord['errors']) : undefined;
    return { ...rest, counts: rest.counts ?? emptyCounts(), ...(errors ? { errors } : {}) };
  }

  /** The team's index row goes first: a failed create leaves at most an index row that listing skips. */
  async create(batch: BatchRecord): Promise<void> {
    await this.ensure();
    await this.table.upsertEntity({ partitionKey: teamPk(batch.team), rowKey: batch.id }, 'Replace');
    await this.table.createEntity(this.toEntity(batch));
  }

  async get(id: string): Promise<{ batch: BatchRecord; etag: string } | undefined> {
    await this.ensure();
    try {
      const e = await this.table.getEntity<Record<string, unknown>>(BATCH_PK, id);
      return { batch: this.fromEntity(e), etag: e.etag };
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  async replace(batch: BatchRecord, etag: string): Promise<string> {
    try {
      const res = await this.table.updateEntity(this.toEntity(batch), 'Replace', { etag });
      return res.etag ?? etag;
    } catch (err) {
      if (err instanceof RestError && (err.statusCode === 412 || err.statusCode === 409)) throw new StaleBatchError(batch.id);
      throw err;
    }
  }

  /**
   * Newest first, after the cursor: `limit` batches and whether more follow. With `team`, only that team's (read
   * through its index partition); without, every team's. One key-range query of `limit` + 1 rows, then, for a team,
   * one point read per batch on the page.
   */
  async list(opts: { after?: string; limit: number; team?: string }): Promise<{ data: BatchRecord[]; hasMore: boolean }> {
    await this.ensure();
    if (opts.team === undefined) {
      const rows = await this.firstRows<Record<string, unknown>>(pageFilter(BATCH_PK, opts.after), opts.limit + 1);
      return { data: rows.slice(0, opts.limit).map((e) => this.fromEntity(e)), hasMore: rows.length > opts.limit };
    }
    await this.indexEarlierBatches();
    const ids = (await this.firstRows(pageFilter(teamPk(opts.team), opts.after), opts.limit + 1, ['RowKey'])).map((e) => String(e.rowKey));
    // An index row whose record was never written (a create that failed half-way) is skipped.
    const stored = await Promise.all(ids.slice(0, opts.limit).map((id) => this.get(id)));
    return { data: stored.flatMap((s) => (s ? [s.batch] : [])), hasMore: ids.length > opts.limit };
  }

  /** The first `n` rows a filter matches, in key order (one call for n <= 1000 unless the service splits it). */
  private async firstRows<T extends object>(filter: string, n: number, select?: string[]): Promise<Array<T & { rowKey?: string }>> {
    const out: Array<T & { rowKey?: string }> = [];
    const pages = this.table.listEntities<T>({ queryOptions: { filter, ...(select ? { select } : {}) } }).byPage({ maxPageSize: Math.min(n, 1000) });
    for await (const page of pages) {
      out.push(...page);
      if (out.length >= n) break;
    }
    return out.slice(0, n);
  }

  /**
   * Batches stored before the team partitions existed get their index rows once per table: the first team listing
   * walks the batch partition, writes the rows and a done-marker; later calls read only the marker (once per process).
   */
  private async indexEarlierBatches(): Promise<void> {
    if (this.indexed) return;
    if (!(await readRow(this.table, INDEX_DONE.partitionKey, INDEX_DONE.rowKey))) {
      const rows = this.table.listEntities<{ recordJson?: string }>({ queryOptions: { filter: pageFilter(BATCH_PK, undefined), select: ['RowKey', 'recordJson'] } });
      for await (const e of rows) {
        const team = (JSON.parse(String(e.recordJson)) as Partial<BatchRecord>).team ?? 'default';
        await this.table.upsertEntity({ partitionKey: teamPk(team), rowKey: String(e.rowKey) }, 'Replace');
      }
      await this.table.upsertEntity(INDEX_DONE, 'Replace');
    }
    this.indexed = true;
  }

  /** Records how lines ended; each line counts once in the batch's counters. */
  async markLines(batchId: string, lines: ReadonlyArray<{ customId: string; outcome: LineOutcome }>): Promise<void> {
    await this.ensure();
    await this.progress.mark(batchId, lines);
  }

  /** Live counts: the counter shards (one query), or the markers for a batch older than its counters. */
  async countLines(batch: Pick<BatchRecord, 'id' | 'lineCounters'>): Promise<LineCounts> {
    await this.ensure();
    return batch.lineCounters ? this.progress.counts(batch.id) : this.progress.countMarkers(batch.id);
  }

  async setActive(batchId: string, active: boolean): Promise<void> {
    await this.ensure();
    if (active) {
      await this.table.upsertEntity({ partitionKey: ACTIVE_PK, rowKey: batchId }, 'Replace');
      return;
    }
    try {
      await this.table.deleteEntity(ACTIVE_PK, batchId);
    } catch (err) {
      if (!(err instanceof RestError && err.statusCode === 404)) throw err;
    }
  }

  async listActive(): Promise<string[]> {
    await this.ensure();
    const ids: string[] = [];
    const filter = `PartitionKey eq '${ACTIVE_PK}'`;
    for await (const e of this.table.listEntities({ queryOptions: { filter } })) ids.push(String(e.rowKey));
    return ids;
  }
}

/** Retention (core/retention/sweep.ts): old batch records and their line rows, found by key range. */
export class BatchRetention {
  constructor(private readonly store: BatchStore, private readonly table: TableClient) {}

  /** Batches created at or before `createdBy`: ids sort newest first, so they are the ids above its boundary. */
  async createdBy(createdBy: number, after: string | undefined, max: number): Promise<BatchRecord[]> {
    await this.store.ensure();
    const boundary = batchIdBoundary(createdBy);
    const from = after !== undefined && after > boundary ? after : boundary;
    const filter = `PartitionKey eq '${BATCH_PK}' and RowKey gt '${from.replace(/'/g, "''")}'`;
    const out: BatchRecord[] = [];
    for await (const page of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter } }).byPage({ maxPageSize: Math.min(max, 1000) })) {
      for (const e of page) {
        out.push(this.store.recordOf(e));
        if (out.length >= max) return out;
      }
    }
    return out;
  }

  /** Deletes up to `max` rows of the batch's own partition (its line markers); returns how many. */
  async deleteLineRows(batchId: string, max: number): Promise<number> {
    await this.store.ensure();
    const filter = `PartitionKey eq '${batchId.replace(/'/g, "''")}'`;
    const keys: string[] = [];
    for await (const page of this.table.listEntities({ queryOptions: { filter, select: ['RowKey'] } }).byPage({ maxPageSize: Math.min(max, 1000) })) {
      keys.push(...page.slice(0, max - keys.length).map((e) => String(e.rowKey)));
      if (keys.length >= max) break;
    }
    for (let i = 0; i < keys.length; i += 100) {
      const group = keys.slice(i, i + 100);
      try {
        await this.table.submitTransaction(group.map((rowKey): TransactionAction => ['delete', { partitionKey: batchId, rowKey }]));
      } catch (err) {
        // A row gone since the read fails the whole transaction: delete the rest one by one.
        if (!(err instanceof RestError && err.statusCode === 404)) throw err;
        for (const rowKey of group) await this.deleteRow(batchId, rowKey);
      }
    }
    return keys.length;
  }

  async deleteRecord(batchId: string): Promise<void> {
    await this.deleteRow(BATCH_PK, batchId);
  }

  private async deleteRow(partitionKey: string, rowKey: string): Promise<void> {
    try {
      await this.table.deleteEntity(partitionKey, rowKey);
    } catch (err) {
      if (!(err instanceof RestError && err.statusCode === 404)) throw err;
    }
  }
}

/** The batch driver's view of jobs: the job table (insert-if-absent, ETag stops) and the intake (runtime/dispatch.ts). */
export function batchJobPort(jobs: JobStore, intake: { send(job: JobRecord, opts: { lane: number }): Promise<void>; sendMany(jobs: readonly JobRecord[], lane: number): Promise<void> }): BatchJobPort {
  return {
    createIfAbsent: (job: JobRecord) => jobs.create(job),
    get: async (id) => (await jobs.get(id, { withRequest: false }))?.job,
    status: async (id): Promise<JobStatus | undefined> => (await jobs.get(id, { withRequest: false }))?.job.status,
    createMany: (list) => jobs.createMany(list),
    enqueue: (job, lane = 0) => intake.send(job, { lane }),
    enqueueMany: (list, lane = 0) => intake.sendMany(list, lane),
    stopIfNotStarted: (id, error, now) => jobs.stopIfNotStarted(id, error, now),
  };
}
