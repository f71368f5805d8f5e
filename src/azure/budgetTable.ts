/**
 * Shared budget rows (src/core/budget/window.ts) in Table Storage: one entity per deployment in one partition.
 * Every write is conditional: create fails if the row exists (409), replace carries the entity's ETag (412 if it
 * moved). @azure/data-tables defaults updates to an unconditional "*", which would let two instances both spend
 * the same slice, so the ETag is always passed. Each call is counted in `storageCounters.budgetTable` (through
 * the counting HTTP client of storage.ts) and in this store's `stats`.
 */
import type { TableClient } from '@azure/data-tables';
import { readRow, tableCreator, writeRowIfUnchanged } from './conditionalRows';
import type { BudgetRowStore, BudgetStoreStats, StoredBudgetRow } from '../core/budget/store';
import type { BudgetRow, LeaseRecord } from '../core/budget/window';
import type { StorageClients } from './storage';

const PARTITION = 'budget';

interface BudgetEntity {
  partitionKey: string;
  rowKey: string;
  /** DeploymentRef.key as given. */
  ref: string;
  base: number;
  /** Settled tokens per slot, comma-separated base-36 integers. */
  tokens: string;
  requests: string;
  /** JSON array of lease records. */
  leases: string;
  pauseUntil: number;
}

export class TableBudgetRowStore implements BudgetRowStore {
  readonly stats: BudgetStoreStats = { reads: 0, writes: 0, conflicts: 0 };
  /** Creates the table once per process (an existing table is fine). */
  readonly ensure: () => Promise<void>;

  constructor(private readonly table: TableClient) {
    this.ensure = tableCreator(table);
  }

  async read(key: string): Promise<StoredBudgetRow | undefined> {
    await this.ensure();
    this.stats.reads += 1;
    const entity = await readRow<BudgetEntity>(this.table, PARTITION, encodeURIComponent(key));
    return entity && { row: fromEntity(entity), etag: entity.etag };
  }

  /** Inserts the row if absent; undefined when another instance created it first. */
  create(key: string, row: BudgetRow): Promise<string | undefined> {
    return this.write(key, row, undefined);
  }

  /** Replaces the row if unchanged since `etag`; undefined when it moved. */
  replace(key: string, row: BudgetRow, etag: string): Promise<string | undefined> {
    return this.write(key, row, etag);
  }

  private async write(key: string, row: BudgetRow, etag: string | undefined): Promise<string | undefined> {
    await this.ensure();
    const written = await writeRowIfUnchanged(this.table, toEntity(key, row), etag);
    if (written === undefined) this.stats.conflicts += 1;
    else this.stats.writes += 1;
    return written;
  }
}

/** The store on the configured account; its calls count in `storageCounters.budgetTable`. */
export function createTableBudgetStore(storage: StorageClients, tableName: string): TableBudgetRowStore {
  return new TableBudgetRowStore(storage.table(tableName, 'budgetTable'));
}


const encodeInts = (values: readonly number[]) => values.map((v) => Math.round(v).toString(36)).join(',');
const decodeInts = (text: string) => (text === '' ? [] : text.split(',').map((v) => parseInt(v, 36)));

function toEntity(key: string, row: BudgetRow): BudgetEntity {
  return {
    partitionKey: PARTITION,
    rowKey: encodeURIComponent(key),
    ref: key,
    base: row.base,
    tokens: encodeInts(row.tokens),
    requests: encodeInts(row.requests),
    leases: JSON.stringify(row.leases),
    pauseUntil: row.pauseUntil,
  };
}

function fromEntity(e: BudgetEntity): BudgetRow {
  return {
    base: Number(e.base),
    tokens: decodeInts(e.tokens ?? ''),
    requests: decodeInts(e.requests ?? ''),
    leases: JSON.parse(e.leases || '[]') as LeaseRecord[],
    pauseUntil: Number(e.pauseUntil ?? 0),
  };
}
