/**
 * The small key/value store the rollup keeps its state in (src/azure/rollupTable.ts on Table Storage; an in-memory
 * one in tests): entities addressed by (partition, row), written conditionally on an ETag.
 */

export type StateValue = Record<string, string | number | boolean>;

export interface Versioned<T = StateValue> {
  value: T;
  etag: string;
  /** Server commit time of the last write, ISO with 7 fractional digits. */
  committedAt: string;
}

/** The entity exists (create) or changed since it was read (replace). */
export class ConflictError extends Error {
  constructor(what: string) {
    super(`conflict on ${what}`);
    this.name = 'ConflictError';
  }
}

export interface WriteResult {
  etag: string;
  committedAt: string;
}

export interface StateStore {
  get(partition: string, row: string): Promise<Versioned | undefined>;
  /** Throws ConflictError if it exists. */
  create(partition: string, row: string, value: StateValue): Promise<WriteResult>;
  /** Throws ConflictError if the ETag moved. */
  replace(partition: string, row: string, value: StateValue, etag: string): Promise<WriteResult>;
  upsert(partition: string, row: string, value: StateValue): Promise<WriteResult>;
  /**
   * Entities with fromPartition ≤ partition < toPartition, page by page; with `where`, only those whose properties
   * equal its values (filtered by the service, so a team's query pages through its own rows, not every team's).
   */
  list(fromPartition: string, toPartition: string, where?: Readonly<Record<string, string>>): AsyncIterable<Array<{ partition: string; row: string; value: StateValue }>>;
}

/** "2026-11-23T20:48:22.87Z" → "2026-11-23T20:48:22.8700000Z", so server times compare as strings. */
export function normalizeCommitTime(t: string): string {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(t);
  if (!m) return t;
  return `${m[1]}.${(m[2] ?? '').padEnd(7, '0').slice(0, 7)}Z`;
}

/**
 * Read-modify-write that applies `update` once per window: the entity remembers the last window applied
 * (throughWindow) and windows are applied in order, so a retried or taken-over rollup skips what is done.
 * Returns the value written, or undefined if this window was already applied.
 */
export async function applyOnce(
  store: StateStore,
  partition: string,
  row: string,
  window: string,
  update: (previous: StateValue | undefined) => StateValue,
): Promise<StateValue | undefined> {
  for (let tries = 0; ; tries += 1) {
    const current = await store.get(partition, row);
    if (current && String(current.value.throughWindow ?? '') >= window) return undefined;
    const next = { ...update(current?.value), throughWindow: window };
    try {
      if (current) await store.replace(partition, row, next, current.etag);
      else await store.create(partition, row, next);
      return next;
    } catch (err) {
      if (!(err instanceof ConflictError) || tries >= 10) throw err;
    }
  }
}
