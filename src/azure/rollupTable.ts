/**
 * The rollup's state in Table Storage (table `sluicerollup` by default): the watermark, minute/hour/day rollup rows
 * with their sketches, month-to-date cost per scope, sent-alert markers and quota-advice streaks. Every write that
 * must not be lost to a race is ETag-conditional (412/409 → ConflictError).
 */
import type { TableClient } from '@azure/data-tables';
import { ConflictError, type StateStore, type StateValue, type Versioned, type WriteResult } from '../core/telemetry/store';
import { commitTimeOfEtag } from './usageTable';
import { tableCreator } from './conditionalRows';

const SYSTEM = new Set(['partitionKey', 'rowKey', 'etag', 'timestamp', 'odata.metadata', 'odata.etag']);

function valueOf(e: Record<string, unknown>): StateValue {
  const out: StateValue = {};
  for (const [k, v] of Object.entries(e)) {
    if (SYSTEM.has(k)) continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  return out;
}

function conflict(err: unknown, what: string): never {
  const status = (err as { statusCode?: number }).statusCode;
  if (status === 409 || status === 412) throw new ConflictError(what);
  throw err;
}

export class RollupTable implements StateStore {
  /** Creates the table once per process (an existing table is fine). */
  readonly ensureTable: () => Promise<void>;

  constructor(readonly client: TableClient) {
    this.ensureTable = tableCreator(client);
  }

  private result(etag: string | undefined, what: string): WriteResult {
    const committedAt = commitTimeOfEtag(etag);
    if (!etag || !committedAt) throw new Error(`no commit time in the ETag of ${what}`);
    return { etag, committedAt };
  }

  async get(partition: string, row: string): Promise<Versioned | undefined> {
    await this.ensureTable();
    try {
      const e = await this.client.getEntity<Record<string, unknown>>(partition, row);
      return { value: valueOf(e), etag: e.etag, committedAt: commitTimeOfEtag(e.etag) ?? String(e.timestamp ?? '') };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  async create(partition: string, row: string, value: StateValue): Promise<WriteResult> {
    await this.ensureTable();
    try {
      const r = await this.client.createEntity({ partitionKey: partition, rowKey: row, ...value });
      return this.result(r.etag, `${partition}/${row}`);
    } catch (err) {
      conflict(err, `${partition}/${row}`);
    }
  }

  async replace(partition: string, row: string, value: StateValue, etag: string): Promise<WriteResult> {
    await this.ensureTable();
    try {
      const r = await this.client.updateEntity({ partitionKey: partition, rowKey: row, ...value }, 'Replace', { etag });
      return this.result(r.etag, `${partition}/${row}`);
    } catch (err) {
      conflict(err, `${partition}/${row}`);
    }
  }

  async upsert(partition: string, row: string, value: StateValue): Promise<WriteResult> {
    await this.ensureTable();
    const r = await this.client.upsertEntity({ partitionKey: partition, rowKey: row, ...value }, 'Replace');
    return this.result(r.etag, `${partition}/${row}`);
  }

  async *list(fromPartition: string, toPartition: string, where: Readonly<Record<string, string>> = {}): AsyncIterable<Array<{ partition: string; row: string; value: StateValue }>> {
    await this.ensureTable();
    const quote = (v: string) => `'${v.replace(/'/g, "''")}'`;
    const equals = Object.entries(where).map(([name, value]) => ` and ${name} eq ${quote(value)}`);
    const filter = `PartitionKey ge ${quote(fromPartition)} and PartitionKey lt ${quote(toPartition)}${equals.join('')}`;
    for await (const page of this.client.listEntities<Record<string, unknown>>({ queryOptions: { filter } }).byPage({ maxPageSize: 1000 })) {
      yield page.map((e) => ({ partition: String(e.partitionKey), row: String(e.rowKey), value: valueOf(e) }));
    }
  }
}
