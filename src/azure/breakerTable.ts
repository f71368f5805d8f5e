/**
 * Circuit-breaker states in Table Storage, shared by every instance: one entity per deployment in a single
 * partition. Every write is conditional: inserts fail if the row exists (409) and updates carry the entity's ETag
 * (412 if it moved). @azure/data-tables defaults updates to an unconditional "*", which would let two instances
 * both win the half-open probe.
 */
import { RestError, type TableClient } from '@azure/data-tables';
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
  private ready: Promise<void> | undefined;

  constructor(private readonly table: TableClient) {}

  /** Creates the table once per process (an existing table is fine). */
  ensure(): Promise<void> {
    this.ready ??= this.table.createTable().catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  async read(key: string): Promise<StoredBreaker | undefined> {
    await this.ensure();
    this.stats.reads += 1;
    try {
      const entity = await this.table.getEntity<BreakerEntity>(PARTITION, rowKeyOf(key));
      return { state: fromEntity(entity), etag: entity.etag };
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  async write(key: string, state: BreakerState, etag: string | undefined): Promise<string | undefined> {
    await this.ensure();
    const entity = toEntity(key, state);
    try {
      const res =
        etag === undefined
          ? await this.table.createEntity(entity)
          : await this.table.updateEntity(entity, 'Replace', { etag });
      this.stats.writes += 1;
      return res.etag ?? etag ?? '';
    } catch (err) {
      // 409: someone inserted first; 412: the ETag moved; 404: the row vanished under an update.
      if (err instanceof RestError && (err.statusCode === 409 || err.statusCode === 412 || err.statusCode === 404)) {
        this.stats.conflicts += 1;
        return undefined;
      }
      throw err;
    }
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
