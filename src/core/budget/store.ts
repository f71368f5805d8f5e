/**
 * Where the shared budget rows live. Every write is conditional (optimistic concurrency): `create` fails if the
 * row exists, `replace` fails if the ETag moved. Implementations: TableBudgetRowStore (src/azure/budgetTable.ts) and,
 * for tests, MemoryBudgetRowStore (test/support/memoryStores.ts).
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
