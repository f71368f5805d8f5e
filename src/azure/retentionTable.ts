/**
 * The retention sweep's storage: its cursor (one row, ETag-guarded, table `sluiceretention` by default), and the
 * ports of core/retention/sweep.ts over the job, batch, file, usage and rollup stores.
 */
import type { TableClient } from '@azure/data-tables';
import type { RetentionDeps, SweepCursorStore, SweepState } from '../core/retention/sweep';
import { WATERMARK } from '../core/telemetry/partitions';
import type { BatchRetention } from './batchStore';
import { readRow, tableCreator, writeRowIfUnchanged } from './conditionalRows';
import type { FileStore } from './fileStore';
import type { JobStore } from './jobStore';
import type { RollupTable } from './rollupTable';
import type { UsageTable } from './usageTable';

const CURSOR = { partitionKey: 'sweep', rowKey: 'cursor' } as const;

export class RetentionCursorTable implements SweepCursorStore {
  private readonly ensureTable: () => Promise<void>;

  constructor(private readonly table: TableClient) {
    this.ensureTable = tableCreator(table);
  }

  async read(): Promise<{ state: SweepState; etag?: string }> {
    await this.ensureTable();
    const row = await readRow<{ stateJson?: string }>(this.table, CURSOR.partitionKey, CURSOR.rowKey);
    return row ? { state: JSON.parse(row.stateJson ?? '{}') as SweepState, etag: row.etag } : { state: {} };
  }

  async write(state: SweepState, etag: string | undefined): Promise<boolean> {
    await this.ensureTable();
    return (await writeRowIfUnchanged(this.table, { ...CURSOR, stateJson: JSON.stringify(state) }, etag)) !== undefined;
  }
}

export interface RetentionStores {
  cursor: RetentionCursorTable;
  jobs: JobStore;
  batches: BatchRetention;
  files: FileStore;
  usage: UsageTable;
  rollup: RollupTable;
}

/** The sweep's storage ports. */
export function retentionPorts(s: RetentionStores): Pick<RetentionDeps, 'cursor' | 'usage' | 'jobs' | 'batches' | 'files' | 'closedThrough'> {
  return {
    cursor: s.cursor,
    usage: { keysBefore: (before, after, max) => s.usage.keysBefore(before, after, max), delete: (keys) => s.usage.deleteKeys(keys) },
    jobs: { deleteIfFinishedBy: (id, by) => s.jobs.deleteIfFinishedBy(id, by), deletePartition: (p, max) => s.jobs.deletePartition(p, max) },
    batches: s.batches,
    files: { page: (marker, max) => s.files.retentionPage(marker, max), deleteBlob: (name) => s.files.deleteBlob(name) },
    closedThrough: async () => {
      const wm = await s.rollup.get(WATERMARK.partition, WATERMARK.row);
      const closed = wm?.value.closedThrough;
      return typeof closed === 'string' && closed !== '' ? closed : undefined;
    },
  };
}
