// In-memory stores with the real compare-and-swap semantics, for unit tests and simulations; Azure uses the Table
// stores in src/azure. They live here so that the deployed package carries no test doubles.
import type { BreakerState } from '../../src/core/breaker';
import type { BreakerStore, BreakerStoreStats, StoredBreaker } from '../../src/core/breaker/store';
import type { BudgetRowStore, BudgetStoreStats, StoredBudgetRow } from '../../src/core/budget/store';
import type { BudgetRow } from '../../src/core/budget/window';

/** In-process store with real ETag semantics. Rows are copied in and out, as a remote store would. */
export class MemoryBudgetRowStore implements BudgetRowStore {
  readonly stats: BudgetStoreStats = { reads: 0, writes: 0, conflicts: 0 };
  /** The longest `leases` JSON ever written, chars (Table Storage caps a string property at 32,768). */
  maxLeaseChars = 0;
  /** The most distinct lease holders a written row ever had. */
  maxHolders = 0;
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
    this.maxLeaseChars = Math.max(this.maxLeaseChars, JSON.stringify(row.leases).length);
    this.maxHolders = Math.max(this.maxHolders, new Set(row.leases.map((l) => l.owner)).size);
    this.version += 1;
    const etag = `W/"${this.version}"`;
    this.rows.set(key, { row: structuredClone(row), etag });
    return etag;
  }
}

/** In-memory compare-and-swap store. Each call yields to the event loop first, so concurrent callers interleave. */
export class MemoryBreakerStore implements BreakerStore {
  readonly stats: BreakerStoreStats = { reads: 0, writes: 0, conflicts: 0, lists: 0 };
  private readonly rows = new Map<string, StoredBreaker>();
  private version = 0;

  async read(key: string): Promise<StoredBreaker | undefined> {
    await tick();
    this.stats.reads += 1;
    const row = this.rows.get(key);
    return row && structuredClone(row);
  }

  async write(key: string, state: BreakerState, etag: string | undefined): Promise<string | undefined> {
    await tick();
    if (this.rows.get(key)?.etag !== etag) {
      this.stats.conflicts += 1;
      return undefined;
    }
    this.stats.writes += 1;
    const next = `W/"${++this.version}"`;
    this.rows.set(key, { state: structuredClone(state), etag: next });
    return next;
  }

  async list(): Promise<Array<{ key: string } & StoredBreaker>> {
    await tick();
    this.stats.lists += 1;
    return [...this.rows].map(([key, row]) => ({ key, ...structuredClone(row) }));
  }
}

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
