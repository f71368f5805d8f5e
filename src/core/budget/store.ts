/**
 * Where the shared budget rows live. Every write is conditional (optimistic concurrency): `create` fails if the
 * row exists, `replace` fails if the ETag moved. Implementations: MemoryBudgetRowStore (tests) and
 * TableBudgetRowStore (src/azure/budgetTable.ts).
 */
import type { BudgetRow } from './window';

export interface StoredBudgetRow {
  row: BudgetRow;
  etag: string;
}

export interface BudgetRowStore {
  read(key: string): Promise<StoredBudgetRow | undefined>;
  /** Inserts; returns the new ETag, or undefined if the row already exists. */
  create(key: string, row: BudgetRow): Promise<string | undefined>;
  /** Replaces if `etag` still matches; returns the new ETag, or undefined on a conflict (moved or gone). */
  replace(key: string, row: BudgetRow, etag: string): Promise<string | undefined>;
}

/** Store calls, by kind; `conflicts` counts failed conditional writes (they are transactions too). */
export interface BudgetStoreStats {
  reads: number;
  writes: number;
  conflicts: number;
}

export function transactions(stats: BudgetStoreStats): number {
  return stats.reads + stats.writes + stats.conflicts;
}

/** In-process store with real ETag semantics. Rows are copied in and out, as a remote store would. */
export class MemoryBudgetRowStore implements BudgetRowStore {
  readonly stats: BudgetStoreStats = { reads: 0, writes: 0, conflicts: 0 };
  private readonly rows = new Map<string, { row: BudgetRow; etag: string }>();
  private version = 0;

  async read(key: string): Promise<StoredBudgetRow | undefined> {
    this.stats.reads += 1;
    const stored = this.rows.get(key);
    return stored && { row: structuredClone(stored.row), etag: stored.etag };
  }

  async create(key: string, row: BudgetRow): Promise<string | undefined> {
    if (this.rows.has(key)) {
      this.stats.conflicts += 1;
      return undefined;
    }
    this.stats.writes += 1;
    return this.put(key, row);
  }

  async replace(key: string, row: BudgetRow, etag: string): Promise<string | undefined> {
    if (this.rows.get(key)?.etag !== etag) {
      this.stats.conflicts += 1;
      return undefined;
    }
    this.stats.writes += 1;
    return this.put(key, row);
  }

  /** The stored row (for assertions). */
  peek(key: string): BudgetRow | undefined {
    const stored = this.rows.get(key);
    return stored && structuredClone(stored.row);
  }

  private put(key: string, row: BudgetRow): string {
    this.version += 1;
    const etag = `W/"${this.version}"`;
    this.rows.set(key, { row: structuredClone(row), etag });
    return etag;
  }
}
