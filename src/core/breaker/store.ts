/**
 * Where breaker states live so every instance sees the same one: a compare-and-swap store keyed by
 * `DeploymentRef.key`. The Table implementation is `src/azure/breakerTable.ts`; tests use `MemoryBreakerStore`
 * (test/support/memoryStores.ts).
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
