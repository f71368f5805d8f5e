/**
 * Backlog counts per team in Table Storage (core/backlog.ts): PartitionKey = team, RowKey = the bucket's start
 * (epoch ms, zero-padded so that string order is time order), `count` = jobs added minus jobs ended.
 *
 * Partition limits: a partition (one team) takes up to 2,000 operations/s. Each process writes a team's row at most
 * once per flush interval (one read and one ETag-guarded write, plus a retry when another process wrote first), so
 * a team costs about 2 × processes / flushSeconds operations/s however many jobs it submits: under the limit up to
 * several hundred processes at a 1 s flush. Reads are one query over all teams' live rows per process per refresh;
 * rows past the horizon are deleted when a team opens a new bucket, so the table stays near a dozen rows per team.
 *
 * The waiting-jobs count (core/backlog.ts WAITING_COUNT) shares the table with RowKey "w:<bucket>": the same team
 * partitions, one more row written per team per flush, and at most 25 rows per team that the rollup reads once a
 * minute in one query (plus a page per thousand rows).
 */
import { odata, RestError, type TableClient } from '@azure/data-tables';
import type { BacklogRow, BacklogStore } from '../core/backlog';
import { readRow, tableCreator, writeRowIfUnchanged } from './conditionalRows';

/** Attempts at one ETag-guarded addition before it is left for the next flush. */
const WRITE_ATTEMPTS = 5;

/** Which count a table object reads and writes: rows keyed by the zero-padded bucket, or by "w:" and the bucket. */
export type CountKind = 'backlog' | 'waiting';
const PREFIX: Record<CountKind, { start: string; end: string }> = {
  // Digits sort before ':', so the backlog's range ends where other kinds of row begin.
  backlog: { start: '', end: ':' },
  waiting: { start: 'w:', end: 'w;' },
};

export class BacklogTable implements BacklogStore {
  private readonly ensure: () => Promise<void>;
  private readonly prefix: { start: string; end: string };

  constructor(private readonly table: TableClient, kind: CountKind = 'backlog') {
    this.ensure = tableCreator(table);
    this.prefix = PREFIX[kind];
  }

  private rowKey(bucket: number): string {
    return `${this.prefix.start}${String(bucket).padStart(15, '0')}`;
  }

  async add(team: string, bucket: number, delta: number): Promise<void> {
    await this.ensure();
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt += 1) {
      const row = await readRow<{ count: number }>(this.table, team, this.rowKey(bucket));
      const count = Number(row?.count ?? 0) + delta;
      if ((await writeRowIfUnchanged(this.table, { partitionKey: team, rowKey: this.rowKey(bucket), count }, row?.etag)) !== undefined) return;
    }
    throw new Error(`backlog count of team "${team}" kept changing under ${WRITE_ATTEMPTS} attempts; kept for the next flush`);
  }

  async rows(sinceBucket: number): Promise<BacklogRow[]> {
    await this.ensure();
    const rows: BacklogRow[] = [];
    const filter = odata`RowKey ge ${this.rowKey(sinceBucket)} and RowKey lt ${this.prefix.end}`;
    for await (const e of this.table.listEntities<{ count: number }>({ queryOptions: { filter, select: ['PartitionKey', 'RowKey', 'count'] } })) {
      rows.push({ team: e.partitionKey!, bucket: Number(e.rowKey!.slice(this.prefix.start.length)), count: Number(e.count ?? 0) });
    }
    return rows;
  }

  async prune(team: string, beforeBucket: number): Promise<void> {
    await this.ensure();
    const filter = odata`PartitionKey eq ${team} and RowKey ge ${this.prefix.start} and RowKey lt ${this.rowKey(beforeBucket)}`;
    for await (const e of this.table.listEntities({ queryOptions: { filter, select: ['PartitionKey', 'RowKey'] } })) {
      await this.table.deleteEntity(team, e.rowKey!).catch((err) => {
        if (!(err instanceof RestError && err.statusCode === 404)) throw err;
      });
    }
  }
}
