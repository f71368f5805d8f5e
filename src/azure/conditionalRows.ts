/**
 * Shared-state rows on Table Storage with optimistic concurrency: read a row with its ETag, and write it only if
 * nobody changed it since (insert-if-absent without an ETag, replace-if-ETag-matches with one). Used by the
 * breaker and budget stores, which keep fleet-wide state one row per deployment.
 */
import { RestError, type TableClient, type TableEntity, type TableEntityResult } from '@azure/data-tables';

/** Creates the table once per process (an existing table is fine); a failed attempt is retried next call. */
export function tableCreator(table: TableClient): () => Promise<void> {
  let ready: Promise<void> | undefined;
  return () => {
    ready ??= table.createTable().catch((err) => {
      ready = undefined;
      throw err;
    });
    return ready;
  };
}

/** The row, or undefined when it does not exist. */
export async function readRow<T extends object>(table: TableClient, partitionKey: string, rowKey: string): Promise<TableEntityResult<T> | undefined> {
  try {
    return await table.getEntity<T>(partitionKey, rowKey);
  } catch (err) {
    if (err instanceof RestError && err.statusCode === 404) return undefined;
    throw err;
  }
}

/**
 * Inserts the row when `etag` is undefined, else replaces it if its ETag still matches (never the SDK's default
 * "*"). Returns the new ETag, or undefined when another writer got there first (409 inserted, 412 changed,
 * 404 deleted under an update).
 */
export async function writeRowIfUnchanged<T extends object>(table: TableClient, entity: TableEntity<T>, etag: string | undefined): Promise<string | undefined> {
  try {
    const res = etag === undefined ? await table.createEntity(entity) : await table.updateEntity(entity, 'Replace', { etag });
    return res.etag ?? etag ?? '';
  } catch (err) {
    if (err instanceof RestError && (err.statusCode === 409 || err.statusCode === 412 || err.statusCode === 404)) return undefined;
    throw err;
  }
}
