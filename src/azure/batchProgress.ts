/**
 * Live request_counts of a batch as sharded counter rows next to its completion markers, in the batch's own
 * partition (PK <batch id>):
 *   RK "d:<sha256(custom_id)>"  one marker per finished line: how it ended (idempotent; a line ends once)
 *   RK "c:<shard>"              per-outcome counts of the lines whose marker falls in that shard
 * A marker and its shard's counter change in one entity-group transaction, the counter guarded by its ETag, so the
 * counts equal the markers exactly; a poll reads the COUNTER_SHARDS rows in one query however many lines finished.
 *
 * Contention: every line touches one shard picked by its marker's hash, so many workers draining a 50,000-line batch
 * spread over COUNTER_SHARDS rows and two writers clash only when they hit the same shard within one read-write
 * round trip; a clash costs a re-read, and after MARK_ATTEMPTS the line is left to the driver's reconcile (which
 * re-derives markers from the jobs). Partition load: a finished line costs two operations (read the shard, one
 * transaction), three or four on a clash, well under the 2,000 operations/s of a partition at the line rates
 * a deployment's quota allows (a few hundred lines/s at most).
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { RestError, type TableClient, type TransactionAction } from '@azure/data-tables';
import { emptyCounts, type LineCounts, type LineOutcome } from '../core/batch/model';
import { readRow } from './conditionalRows';

/** Counter rows per batch: enough to keep clashes rare at hundreds of lines/s, few enough for one query. */
export const COUNTER_SHARDS = 32;
/** Markers per transaction: an entity-group transaction holds 100 entities, one of them the counter. */
const MARKS_PER_TX = 99;
const MARK_ATTEMPTS = 8;
/** Spread of the pause after a clash, ms, times the attempt number. */
const CLASH_JITTER_MS = 10;
const OUTCOMES: readonly LineOutcome[] = ['succeeded', 'failed', 'cancelled', 'expired'];

export interface LineMark {
  customId: string;
  outcome: LineOutcome;
}

export function markerKey(customId: string): string {
  return `d:${createHash('sha256').update(customId).digest('hex')}`;
}

const shardKey = (shard: number) => `c:${String(shard).padStart(2, '0')}`;
/** The shard of a marker: the first byte of its hash. */
const shardOf = (marker: string) => parseInt(marker.slice(2, 4), 16) % COUNTER_SHARDS;

type CounterRow = Partial<Record<LineOutcome, number>>;

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

const isConflict = (err: unknown) => err instanceof RestError && (err.statusCode === 409 || err.statusCode === 412 || err.statusCode === 404);

export class BatchProgress {
  constructor(private readonly table: TableClient) {}

  /** Records how lines ended and counts each line once (a line marked again with another outcome moves). */
  async mark(batchId: string, lines: readonly LineMark[]): Promise<void> {
    const byShard = new Map<number, Map<string, LineOutcome>>();
    for (const l of lines) {
      const key = markerKey(l.customId);
      const shard = shardOf(key);
      let group = byShard.get(shard);
      if (!group) byShard.set(shard, (group = new Map()));
      group.set(key, l.outcome);
    }
    for (const [shard, group] of byShard) {
      const entries = [...group];
      for (let i = 0; i < entries.length; i += MARKS_PER_TX) await this.markShard(batchId, shard, entries.slice(i, i + MARKS_PER_TX));
    }
  }

  /** Summed counts of every shard: one query of at most COUNTER_SHARDS rows. */
  async counts(batchId: string): Promise<LineCounts> {
    const counts = emptyCounts();
    const filter = `PartitionKey eq ${quote(batchId)} and RowKey ge 'c:' and RowKey lt 'c;'`;
    for await (const row of this.table.listEntities<CounterRow>({ queryOptions: { filter, select: [...OUTCOMES] } })) {
      for (const o of OUTCOMES) counts[o] += Number(row[o] ?? 0);
    }
    return counts;
  }

  /** Counts by listing every marker: for batches created before the counters, whose counters miss earlier lines. */
  async countMarkers(batchId: string): Promise<LineCounts> {
    const counts = emptyCounts();
    const filter = `PartitionKey eq ${quote(batchId)} and RowKey ge 'd:' and RowKey lt 'd;'`;
    for await (const page of this.table.listEntities<{ outcome?: string }>({ queryOptions: { filter, select: ['outcome'] } }).byPage({ maxPageSize: 1000 })) {
      for (const e of page) {
        const outcome = e.outcome as LineOutcome;
        if (outcome in counts) counts[outcome] += 1;
      }
    }
    return counts;
  }

  private async markShard(batchId: string, shard: number, entries: ReadonlyArray<[string, LineOutcome]>): Promise<void> {
    const rowKey = shardKey(shard);
    for (let attempt = 0; attempt < MARK_ATTEMPTS; attempt += 1) {
      const counter = await readRow<CounterRow>(this.table, batchId, rowKey);
      // First try assumes every marker is new (the usual case: one line, ending once); after a clash, read them.
      const previous = attempt === 0 ? new Map<string, LineOutcome | undefined>() : await this.readMarkers(batchId, entries.map(([k]) => k));
      const next: CounterRow = {};
      for (const o of OUTCOMES) next[o] = Number(counter?.[o] ?? 0);
      const actions: TransactionAction[] = [];
      for (const [key, outcome] of entries) {
        const before = previous.get(key);
        if (before === outcome) continue;
        if (before) next[before]! -= 1;
        next[outcome]! += 1;
        const marker = { partitionKey: batchId, rowKey: key, outcome };
        actions.push(attempt === 0 ? ['create', marker] : ['upsert', marker, 'Replace']);
      }
      if (actions.length === 0) return;
      const row = { partitionKey: batchId, rowKey, ...next };
      actions.push(counter ? ['update', row, 'Replace', { etag: counter.etag }] : ['create', row]);
      try {
        await this.table.submitTransaction(actions);
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
      // The first retry is at once (the usual cause is a marker that exists); writers that keep clashing spread out.
      if (attempt > 0) await sleep(Math.random() * CLASH_JITTER_MS * attempt);
    }
    throw new Error(`batch ${batchId}: counter shard ${shard} kept changing under ${MARK_ATTEMPTS} attempts; the driver reconciles its lines`);
  }

  private async readMarkers(batchId: string, keys: readonly string[]): Promise<Map<string, LineOutcome | undefined>> {
    const rows = await Promise.all(keys.map((k) => readRow<{ outcome?: string }>(this.table, batchId, k)));
    return new Map(keys.map((k, i) => [k, rows[i]?.outcome as LineOutcome | undefined]));
  }
}
