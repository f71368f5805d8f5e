/**
 * Team queues and the dispatch lease in one table (SLUICE_TEAM_QUEUE_TABLE), one queue per team and model:
 *   PK "q~<team>~<model>"  RK <entry key>   a waiting job, or up to 100 lines of a batch (`items` JSON, ≤ ~6 KB: far
 *                                          under the 64 KiB property limit), with `next`, the first item not released
 *   PK "m~<team>~<model>"  RK "m"           the queue's marker: rewritten after every add, so its ETag changes; the
 *                                          dispatcher reads every marker in one range query and re-reads only the
 *                                          queues that changed
 *   PK "lease"             RK "dispatch"    who dispatches, until when
 * (<model> URI-encoded: a key may not hold "/", "\\", "#" or "?".)
 * Partition load: a queue's partition takes its submits plus one write per released job (a removal, or one entry
 * write per tick for a batch's lines); its marker partition one write per submit. A team submitting faster than
 * ~1,000 jobs/s to one model would meet the 2,000 operations/s partition target; HTTP submits and the batch driver
 * (one marker write per 100 lines) stay far below it.
 */
import { RestError, TableTransaction, type TableClient } from '@azure/data-tables';
import type { DispatchLease } from '../core/dispatch/loop';
import type { QueuedJob, QueueRef, TeamMarker, TeamQueueEntry, TeamQueueStore } from '../core/dispatch/teamQueue';
import { readRow, tableCreator, writeRowIfUnchanged } from './conditionalRows';

const queuePartition = (q: QueueRef) => `q~${q.team}~${encodeURIComponent(q.model)}`;
const markerPartition = (q: QueueRef) => `m~${q.team}~${encodeURIComponent(q.model)}`;
const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
const LEASE = { partitionKey: 'lease', rowKey: 'dispatch' };
/** Entities per transaction (Table Storage's limit). */
const TRANSACTION_MAX = 100;

interface EntryRow {
  priority: string;
  items: string;
  next: number;
  replay?: boolean;
}

const ignoreMissing = (err: unknown) => {
  if (!(err instanceof RestError && err.statusCode === 404)) throw err;
};

export class TeamQueueTable implements TeamQueueStore, DispatchLease {
  private readonly ensure: () => Promise<void>;

  constructor(private readonly table: TableClient) {
    this.ensure = tableCreator(table);
  }

  async add(entries: readonly TeamQueueEntry[]): Promise<void> {
    await this.ensure();
    // A transaction holds entities of one partition: entries are grouped by queue.
    const byQueue = new Map<string, TeamQueueEntry[]>();
    for (const e of entries) {
      const list = byQueue.get(queuePartition(e));
      if (list) list.push(e);
      else byQueue.set(queuePartition(e), [e]);
    }
    await Promise.all(
      [...byQueue].map(async ([partitionKey, list]) => {
        if (list.length === 1) {
          await this.table.upsertEntity({ partitionKey, rowKey: list[0]!.key, ...toRow(list[0]!) }, 'Replace');
          return;
        }
        for (let i = 0; i < list.length; i += TRANSACTION_MAX) {
          const tx = new TableTransaction();
          for (const e of list.slice(i, i + TRANSACTION_MAX)) tx.upsertEntity({ partitionKey, rowKey: e.key, ...toRow(e) }, 'Replace');
          await this.table.submitTransaction(tx.actions);
        }
      }),
    );
  }

  async bump(queue: QueueRef): Promise<void> {
    await this.ensure();
    await this.table.upsertEntity({ partitionKey: markerPartition(queue), rowKey: 'm', team: queue.team, model: queue.model, at: Date.now() }, 'Replace');
  }

  async markers(): Promise<TeamMarker[]> {
    await this.ensure();
    const out: TeamMarker[] = [];
    const filter = `PartitionKey ge 'm~' and PartitionKey lt 'm~~'`;
    for await (const e of this.table.listEntities<{ team: string; model: string }>({ queryOptions: { filter, select: ['team', 'model'] } })) {
      out.push({ team: e.team, model: e.model, version: e.etag });
    }
    return out;
  }

  async read(queue: QueueRef, limit: number, afterKey?: string): Promise<TeamQueueEntry[]> {
    await this.ensure();
    const filter = `PartitionKey eq ${quote(queuePartition(queue))}${afterKey ? ` and RowKey gt ${quote(afterKey)}` : ''}`;
    const out: TeamQueueEntry[] = [];
    for await (const page of this.table.listEntities<EntryRow>({ queryOptions: { filter } }).byPage({ maxPageSize: limit })) {
      for (const e of page) {
        if (out.length >= limit) break;
        const entry = fromRow(queue, e.rowKey!, e);
        if (entry) out.push(entry);
      }
      break;
    }
    return out;
  }

  async remove(queue: QueueRef, key: string): Promise<void> {
    await this.table.deleteEntity(queuePartition(queue), key).catch(ignoreMissing);
  }

  async advance(queue: QueueRef, key: string, next: number): Promise<void> {
    await this.table.updateEntity({ partitionKey: queuePartition(queue), rowKey: key, next }, 'Merge').catch(ignoreMissing);
  }

  async acquire(owner: string, until: number, now: number): Promise<boolean> {
    await this.ensure();
    const row = await readRow<{ owner: string; until: number }>(this.table, LEASE.partitionKey, LEASE.rowKey);
    if (row && row.owner !== owner && row.until > now) return false;
    return (await writeRowIfUnchanged(this.table, { ...LEASE, owner, until }, row?.etag)) !== undefined;
  }

  async release(owner: string): Promise<void> {
    const row = await readRow<{ owner: string; until: number }>(this.table, LEASE.partitionKey, LEASE.rowKey);
    if (row?.owner === owner) await writeRowIfUnchanged(this.table, { ...LEASE, owner, until: 0 }, row.etag);
  }
}

function toRow(e: TeamQueueEntry): EntryRow {
  return {
    priority: e.priority,
    items: JSON.stringify(e.items.map((i) => [i.id, i.charge])),
    next: e.next,
    ...(e.replay ? { replay: true } : {}),
  };
}

function fromRow(queue: QueueRef, key: string, row: EntryRow): TeamQueueEntry | undefined {
  let items: QueuedJob[];
  try {
    items = (JSON.parse(row.items) as Array<[string, number]>).map(([id, charge]) => ({ id, charge: Number(charge) || 0, model: queue.model }));
  } catch {
    return undefined;
  }
  return {
    team: queue.team,
    model: queue.model,
    key,
    priority: row.priority === 'interactive' ? 'interactive' : 'batch',
    items,
    next: Number(row.next) || 0,
    ...(row.replay === true ? { replay: true } : {}),
  };
}
