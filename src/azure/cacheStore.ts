/**
 * Cached answers in Table Storage (table `sluicecache` by default): PartitionKey = team + "~" + first two hex digits
 * of the key hash, RowKey = the hash. A string property holds at most 64 KiB (32,768 UTF-16 characters), so a body is
 * split across properties b0, b1, … of CHUNK_CHARS each; core/sync/cache.ts keeps bodies small enough for the 1 MiB
 * entity limit. expiresAt is an Int64 so the sweep can filter on it.
 */
import type { TableClient } from '@azure/data-tables';
import type { CacheEntry, CacheStore } from '../core/sync/cache';
import { tableCreator } from './conditionalRows';

const CHUNK_CHARS = 30_000;

const int64 = (n: number) => ({ value: String(Math.trunc(n)), type: 'Int64' as const });
const num = (v: unknown): number => Number(typeof v === 'object' && v !== null && 'value' in v ? (v as { value: unknown }).value : v);
const status = (err: unknown) => (err as { statusCode?: number }).statusCode;

export class CacheTable implements CacheStore {
  private readonly ensureTable: () => Promise<void>;

  constructor(private readonly table: TableClient) {
    this.ensureTable = tableCreator(table);
  }

  async get(partition: string, row: string): Promise<CacheEntry | undefined> {
    await this.ensureTable();
    let e: Record<string, unknown>;
    try {
      e = await this.table.getEntity<Record<string, unknown>>(partition, row);
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw err;
    }
    const chunks = num(e.chunks);
    let body = '';
    for (let i = 0; i < chunks; i += 1) body += String(e[`b${i}`] ?? '');
    return {
      partition,
      row,
      team: String(e.team ?? ''),
      expiresAt: num(e.expiresAt),
      answer: {
        body,
        promptTokens: num(e.promptTokens),
        completionTokens: num(e.completionTokens),
        costUsd: e.priced === false ? null : num(e.costUsd),
        modelVersion: String(e.modelVersion ?? ''),
        storedAt: num(e.storedAt),
      },
    };
  }

  async put(entry: CacheEntry): Promise<void> {
    await this.ensureTable();
    const { answer } = entry;
    const chunks: Record<string, string> = {};
    let n = 0;
    for (let at = 0; at < answer.body.length; n += 1) {
      let end = Math.min(at + CHUNK_CHARS, answer.body.length);
      // Never split a surrogate pair: each property must be valid UTF-16 on its own.
      if (end < answer.body.length && /[\uD800-\uDBFF]/.test(answer.body[end - 1]!)) end -= 1;
      chunks[`b${n}`] = answer.body.slice(at, end);
      at = end;
    }
    await this.table.upsertEntity(
      {
        partitionKey: entry.partition,
        rowKey: entry.row,
        team: entry.team,
        expiresAt: int64(entry.expiresAt),
        storedAt: int64(answer.storedAt),
        promptTokens: answer.promptTokens,
        completionTokens: answer.completionTokens,
        // Table properties cannot be null: an unknown cost is an absent costUsd with priced=false.
        ...(answer.costUsd === null ? {} : { costUsd: answer.costUsd }),
        priced: answer.costUsd !== null,
        modelVersion: answer.modelVersion,
        chunks: n,
        ...chunks,
      },
      'Replace',
    );
  }

  async delete(partition: string, row: string): Promise<void> {
    await this.ensureTable();
    try {
      await this.table.deleteEntity(partition, row);
    } catch (err) {
      if (status(err) !== 404) throw err;
    }
  }

  async sweep(partition: string, now: number, limit: number): Promise<number> {
    await this.ensureTable();
    const filter = `PartitionKey eq '${partition.replace(/'/g, "''")}' and expiresAt lt ${Math.trunc(now)}L`;
    const pages = this.table.listEntities({ queryOptions: { filter, select: ['RowKey'] } }).byPage({ maxPageSize: limit });
    let deleted = 0;
    for await (const page of pages) {
      for (const e of page.slice(0, limit)) {
        await this.delete(partition, e.rowKey!);
        deleted += 1;
      }
      break; // one page per sweep: bounded work
    }
    return deleted;
  }
}
