/**
 * Where breaker states live so every instance sees the same one: a compare-and-swap store keyed by
 * `DeploymentRef.key`. The Table implementation is `src/azure/breakerTable.ts`; `MemoryBreakerStore` is for unit
 * tests and single-process runs.
 */
import type { BreakerState } from '../breaker';

export interface StoredBreaker {
  state: BreakerState;
  /** Opaque version; a write must present it. */
  etag: string;
}

export interface BreakerStore {
  /** The stored state, or undefined when the deployment never failed (a missing row means closed). */
  read(key: string): Promise<StoredBreaker | undefined>;
  /**
   * Writes `state` only if the stored version is still `etag` (`undefined`: only if no row exists yet).
   * Returns the new etag, or undefined when someone else wrote first (the caller re-reads and decides again).
   */
  write(key: string, state: BreakerState, etag: string | undefined): Promise<string | undefined>;
  /** Every stored breaker (for the health page). */
  list(): Promise<Array<{ key: string } & StoredBreaker>>;
}

/** Operation counts, for tests and benchmarks (one count = one storage transaction in the Table store). */
export interface BreakerStoreStats {
  reads: number;
  writes: number;
  conflicts: number;
  lists: number;
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
