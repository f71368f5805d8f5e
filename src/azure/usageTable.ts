/**
 * Usage rows in Table Storage (table `sluiceusage` by default).
 * PartitionKey = minute window + shard digit 0–7 (hash of the job id) so one busy minute spreads its writes over
 * eight partitions; RowKey = job id, written insert-only so recording a job twice is a no-op. The rollup reads a
 * window as eight partition queries run side by side, page by page, and counts only rows committed at or before the
 * window's cut (their server Timestamp).
 */
import { createHash } from 'node:crypto';
import type { TableClient, TableEntityResult } from '@azure/data-tables';
import { normalizeCommitTime } from '../core/telemetry/store';
import type { CallRef, UsageRow, UsageRowStore } from '../core/telemetry/usage';
import type { UsageRowSource } from '../core/telemetry/rollupDeps';
import { ROLLUP_FIELDS, type RollupRow } from '../core/telemetry/aggregate';
import { tableCreator } from './conditionalRows';

export const USAGE_SHARDS = 8;
/**
 * Entities per page when reading a window. Small pages keep the rollup's memory flat whatever the window holds: at
 * most one page per shard is in flight, so 250 rows × 8 shards. Larger pages grow memory with the window's size;
 * smaller ones cost more round trips (and on Azurite, which rescans a partition to resume a query, more time).
 */
const PAGE_SIZE = 250;

export function shardOf(jobId: string): number {
  return createHash('sha1').update(jobId).digest()[0]! % USAGE_SHARDS;
}

/** `W/"datetime'2026-11-23T20%3A48%3A22.8756587Z'"` → "2026-11-23T20:48:22.8756587Z". */
export function commitTimeOfEtag(etag: string | undefined): string | undefined {
  const m = /datetime'([^']+)'/.exec(etag ?? '');
  return m ? normalizeCommitTime(decodeURIComponent(m[1]!)) : undefined;
}

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

export function toEntity(row: UsageRow): Entity {
  const { jobId, costUsd, calls, lateFrom, ttftMs, savedUsd, ...rest } = row;
  return {
    partitionKey: `${row.window}${shardOf(jobId)}`,
    rowKey: jobId,
    ...rest,
    // Table properties cannot be null: an unknown cost is an absent costUsd with priced=false.
    ...(costUsd === null ? {} : { costUsd }),
    priced: costUsd !== null,
    queueWaitMs: row.queueWaitMs ?? -1,
    modelLatencyMs: row.modelLatencyMs ?? -1,
    totalLatencyMs: row.totalLatencyMs ?? -1,
    calls: JSON.stringify(calls),
    ...(lateFrom ? { lateFrom } : {}),
    ...(ttftMs !== undefined ? { ttftMs: ttftMs ?? -1 } : {}),
    ...(savedUsd !== undefined && savedUsd !== null ? { savedUsd } : {}),
  };
}

const n = (v: unknown) => (typeof v === 'number' ? v : Number(v ?? 0));
const optMs = (v: unknown) => (n(v) < 0 ? null : n(v));
/** A property older rows do not have (a $select names it anyway): null or undefined on read. */
const absent = (v: unknown) => v === undefined || v === null;

/** Table properties behind ROLLUP_FIELDS (costUsd comes with `priced`; the commit time is the server Timestamp). */
const ROLLUP_SELECT = [...ROLLUP_FIELDS, 'priced', 'Timestamp'];

/** The rollup's fields of an entity read with ROLLUP_SELECT. */
function rollupRowOf(e: Record<string, unknown>): RollupRow {
  return {
    team: String(e.team ?? ''),
    model: String(e.model ?? ''),
    region: String(e.region ?? ''),
    deployment: String(e.deployment ?? ''),
    status: e.status === 'succeeded' ? 'succeeded' : 'failed',
    promptTokens: n(e.promptTokens),
    cachedTokens: n(e.cachedTokens),
    completionTokens: n(e.completionTokens),
    reservedOutputTokens: n(e.reservedOutputTokens),
    reservedUnusedTokens: n(e.reservedUnusedTokens),
    estimatedPromptTokens: n(e.estimatedPromptTokens),
    costUsd: e.priced === false ? null : n(e.costUsd),
    queueWaitMs: optMs(e.queueWaitMs),
    modelLatencyMs: optMs(e.modelLatencyMs),
    totalLatencyMs: optMs(e.totalLatencyMs),
    attempts: n(e.attempts),
    throttles: n(e.throttles),
    regionsTried: n(e.regionsTried),
    calls: JSON.parse(String(e.calls ?? '[]')) as CallRef[],
    kind: e.kind === 'batch' || e.kind === 'sync' ? e.kind : 'job',
    ttftMs: absent(e.ttftMs) ? null : optMs(e.ttftMs),
    abandoned: e.abandoned === true,
    cacheHit: e.cacheHit === true,
    savedUsd: absent(e.savedUsd) ? null : n(e.savedUsd),
  };
}

export class UsageTable implements UsageRowStore, UsageRowSource {
  /** Creates the table once per process (an existing table is fine). */
  readonly ensureTable: () => Promise<void>;

  constructor(readonly client: TableClient) {
    this.ensureTable = tableCreator(client);
  }

  async insert(row: UsageRow): Promise<{ result: 'inserted' | 'exists'; committedAt?: string }> {
    await this.ensureTable();
    try {
      const r = await this.client.createEntity(toEntity(row));
      return { result: 'inserted', committedAt: commitTimeOfEtag(r.etag) };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 409) return { result: 'exists' };
      throw err;
    }
  }

  /** Inserts many rows of one partition, 100 per transaction (benchmarks and tests). */
  async insertBatch(rows: UsageRow[]): Promise<void> {
    await this.ensureTable();
    const byPartition = new Map<string, Entity[]>();
    for (const r of rows) {
      const e = toEntity(r);
      const list = byPartition.get(e.partitionKey) ?? [];
      list.push(e);
      byPartition.set(e.partitionKey, list);
    }
    for (const list of byPartition.values()) {
      for (let i = 0; i < list.length; i += 100) {
        await this.client.submitTransaction(list.slice(i, i + 100).map((e) => ['create', e] as ['create', Entity]));
      }
    }
  }

  async *rows(window: string, cut: string): AsyncIterable<RollupRow[]> {
    await this.ensureTable();
    const shards = Array.from({ length: USAGE_SHARDS }, (_, s) =>
      this.client
        .listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${window}${s}'`, select: ROLLUP_SELECT } })
        .byPage({ maxPageSize: PAGE_SIZE })
        [Symbol.asyncIterator](),
    );
    // Read the shards side by side; at most one page per shard is in memory at a time.
    const pending = new Map<number, Promise<{ s: number; r: IteratorResult<TableEntityResult<Record<string, unknown>>[]> }>>();
    const pull = (s: number) => pending.set(s, shards[s]!.next().then((r) => ({ s, r })));
    shards.forEach((_, s) => pull(s));
    while (pending.size > 0) {
      const { s, r } = await Promise.race(pending.values());
      pending.delete(s);
      if (r.done) continue;
      pull(s);
      const page: RollupRow[] = [];
      for (const e of r.value) {
        const ts = normalizeCommitTime(String(e.timestamp ?? ''));
        if (ts <= cut) page.push(rollupRowOf(e));
      }
      yield page;
    }
  }

  // Retention (core/retention/sweep.ts): old minute windows, found by partition key range.

  /**
   * Keys of rows whose partition sorts below `beforePartition` and after `after`, in key order, at most `max`: the rest
   * of `after`'s partition, then the partitions after it. Two plain range queries (no OR), so each seeks to its start.
   */
  async keysBefore(beforePartition: string, after: { pk: string; rk: string } | undefined, max: number): Promise<Array<{ pk: string; rk: string }>> {
    await this.ensureTable();
    const q = (v: string) => `'${v.replace(/'/g, "''")}'`;
    const out: Array<{ pk: string; rk: string }> = [];
    const read = async (filter: string) => {
      for await (const page of this.client.listEntities({ queryOptions: { filter, select: ['PartitionKey', 'RowKey'] } }).byPage({ maxPageSize: Math.min(max - out.length, 1000) })) {
        for (const e of page) {
          out.push({ pk: String(e.partitionKey), rk: String(e.rowKey) });
          if (out.length >= max) return;
        }
      }
    };
    if (after && after.pk < beforePartition) await read(`PartitionKey eq ${q(after.pk)} and RowKey gt ${q(after.rk)}`);
    if (out.length < max) await read(`PartitionKey ${after ? `gt ${q(after.pk)}` : `ge ''`} and PartitionKey lt ${q(beforePartition)}`);
    return out;
  }

  /** Deletes rows, 100 per entity-group transaction within a partition; returns how many were deleted. */
  async deleteKeys(keys: ReadonlyArray<{ pk: string; rk: string }>): Promise<number> {
    const byPartition = new Map<string, string[]>();
    for (const k of keys) byPartition.set(k.pk, [...(byPartition.get(k.pk) ?? []), k.rk]);
    let deleted = 0;
    for (const [pk, rks] of byPartition) {
      for (let i = 0; i < rks.length; i += 100) {
        const group = rks.slice(i, i + 100);
        try {
          await this.client.submitTransaction(group.map((rk) => ['delete', { partitionKey: pk, rowKey: rk }] as ['delete', { partitionKey: string; rowKey: string }]));
          deleted += group.length;
        } catch (err) {
          // A row gone since the read fails the whole transaction: delete the rest one by one.
          if ((err as { statusCode?: number }).statusCode !== 404) throw err;
          for (const rk of group) {
            try {
              await this.client.deleteEntity(pk, rk);
              deleted += 1;
            } catch (e) {
              if ((e as { statusCode?: number }).statusCode !== 404) throw e;
            }
          }
        }
      }
    }
    return deleted;
  }
}
