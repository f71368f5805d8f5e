/**
 * Circuit-breaker states in Table Storage, shared by every instance: one entity per deployment in a single
 * partition. Every write is conditional: inserts fail if the row exists (409) and updates carry the entity's ETag
 * (412 if it moved). @azure/data-tables defaults updates to an unconditional "*", which would let two instances
 * both win the half-open probe.
 */
import type { TableClient } from '@azure/data-tables';
import { readRow, tableCreator, writeRowIfUnchanged } from './conditionalRows';
import type { BreakerState } from '../core/breaker';
import type { BreakerStore, BreakerStoreStats, StoredBreaker } from '../core/breaker/store';
import type { StorageClients } from './storage';

/** Table of breaker states. Setting `SLUICE_BREAKER_TABLE`. */
export const DEFAULT_BREAKER_TABLE = 'sluicebreakers';

const PARTITION = 'breaker';

interface BreakerEntity {
  partitionKey: string;
  rowKey: string;
  /** DeploymentRef.key as given (the row key is its encoded form). */
  ref: string;
  state: string;
  /** JSON array of epoch ms. */
  recent5xx: string;
  openedAt?: number;
  until?: number;
  probeOwner?: string;
  lastError?: string;
  lastErrorAt?: number;
}

/** `BreakerStore` on a Table; build it with `createTableBreakerStore` or from a TableClient. */
export class TableBreakerStore implements BreakerStore {
  /** One count per storage transaction this store made. */
  readonly stats: BreakerStoreStats = { reads: 0, writes: 0, conflicts: 0, lists: 0 };
  /** Creates the table once per process (an existing table is fine). */
  readonly ensure: () => Promise<void>;

  constructor(private readonly table: TableClient) {
    this.ensure = tableCreator(table);
  }

  async read(key: string): Promise<StoredBreaker | undefined> {
    await this.ensure();
    this.stats.reads += 1;
    const entity = await readRow<BreakerEntity>(this.table, PARTITION, rowKeyOf(key));
    return entity && { state: fromEntity(entity), etag: entity.etag };
  }

  async write(key: string, state: BreakerState, etag: string | undefined): Promise<string | undefined> {
    await this.ensure();
    const written = await writeRowIfUnchanged(this.table, toEntity(key, state), etag);
    if (written === undefined) this.stats.conflicts += 1;
    else this.stats.writes += 1;
    return written;
  }

  async list(): Promise<Array<{ key: string } & StoredBreaker>> {
    await this.ensure();
    this.stats.lists += 1;
    const rows: Array<{ key: string } & StoredBreaker> = [];
    const pages = this.table.listEntities<BreakerEntity>({ queryOptions: { filter: `PartitionKey eq '${PARTITION}'` } });
    for await (const entity of pages) rows.push({ key: entity.ref, state: fromEntity(entity), etag: entity.etag });
    return rows;
  }
}

/** The Table store on the configured storage account. Pass `counter` to count its calls apart from job tables. */
export function createTableBreakerStore(
  storage: StorageClients,
  tableName = DEFAULT_BREAKER_TABLE,
  counter?: Parameters<StorageClients['table']>[1],
): TableBreakerStore {
  return new TableBreakerStore(storage.table(tableName, counter));
}

/** Row keys may not contain / \ # ? or control characters; DeploymentRef keys are URLs. */
function rowKeyOf(key: string): string {
  return encodeURIComponent(key);
}

function toEntity(key: string, s: BreakerState): BreakerEntity {
  return {
    partitionKey: PARTITION,
    rowKey: rowKeyOf(key),
    ref: key,
    state: s.state,
    recent5xx: JSON.stringify(s.recent5xx),
    openedAt: s.openedAt,
    until: s.until,
    probeOwner: s.probeOwner,
    lastError: s.lastError,
    lastErrorAt: s.lastErrorAt,
  };
}

function fromEntity(e: BreakerEntity): BreakerState {
  const state = e.state === 'open' || e.state === 'half-open' ? e.state : 'closed';
  let recent5xx: number[] = [];
  try {
    const parsed: unknown = JSON.parse(e.recent5xx ?? '[]');
    if (Array.isArray(parsed)) recent5xx = parsed.filter((t): t is number => typeof t === 'number');
  } catch {
    // A damaged counter only forgets recent 5xx answers.
  }
  return {
    state,
    recent5xx,
    ...(num(e.openedAt) !== undefined && { openedAt: num(e.openedAt) }),
    ...(num(e.until) !== undefined && { until: num(e.until) }),
    ...(typeof e.probeOwner === 'string' && { probeOwner: e.probeOwner }),
    ...(typeof e.lastError === 'string' && { lastError: e.lastError }),
    ...(num(e.lastErrorAt) !== undefined && { lastErrorAt: num(e.lastErrorAt) }),
  };
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
