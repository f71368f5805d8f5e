/**
 * The listing index of files, in the batches table: one row per file and purpose in its team's partition and one in
 * the all-teams partition an admin lists (RK <file id>, which sorts newest first), holding the fields a File
 * object shows. A list call reads `limit` + 1 rows by key range per purpose (two purposes without a filter), so it
 * costs the same whatever other teams, or earlier years, stored; the blobs are never walked.
 *   PK "files:<team>:<purpose>"   a team's files
 *   PK "files:*:<purpose>"        every team's files
 * Files stored before the index get their rows once per table (indexEarlierFiles); a done-marker row says so.
 * Partition load: an upload or a delete writes one row in each of its two partitions; the all-teams partition thus
 * takes one operation per file uploaded or deleted anywhere, far under a partition's 2,000 operations/s.
 */
import { RestError, type TableClient } from '@azure/data-tables';
import type { FilePurpose, FileRecord } from '../core/batch/model';
import { readRow, tableCreator } from './conditionalRows';

export const FILE_PURPOSES: readonly FilePurpose[] = ['batch', 'batch_output'];
const ALL_TEAMS = '*';
const INDEX_DONE = { partitionKey: 'meta', rowKey: 'file-index' };

const partition = (team: string, purpose: string) => `files:${team}:${purpose}`;
const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

interface IndexRow {
  filename: string;
  bytes: number;
  createdAt: number;
  lines: number;
  team: string;
}

export class FileIndex {
  private readonly ensure: () => Promise<void>;
  private complete = false;

  constructor(private readonly table: TableClient) {
    this.ensure = tableCreator(table);
  }

  async put(file: FileRecord): Promise<void> {
    await this.ensure();
    const row: IndexRow = { filename: file.filename, bytes: file.bytes, createdAt: file.createdAt, lines: file.lines, team: file.team };
    await Promise.all(
      [file.team, ALL_TEAMS].map((team) => this.table.upsertEntity({ partitionKey: partition(team, file.purpose), rowKey: file.id, ...row }, 'Replace')),
    );
  }

  async remove(file: Pick<FileRecord, 'id' | 'team' | 'purpose'>): Promise<void> {
    await this.ensure();
    await Promise.all(
      [file.team, ALL_TEAMS].map((team) =>
        this.table.deleteEntity(partition(team, file.purpose), file.id).catch((err: unknown) => {
          if (!(err instanceof RestError && err.statusCode === 404)) throw err;
        }),
      ),
    );
  }

  /**
   * Newest first after the id `after`: `limit` files of `team` (every team's without) and whether more follow.
   * `backfill` writes the rows of files stored before the index, once per table.
   */
  async list(
    opts: { team?: string; purpose?: string; after?: string; limit: number },
    backfill: () => AsyncIterable<FileRecord>,
  ): Promise<{ data: FileRecord[]; hasMore: boolean }> {
    await this.ensure();
    await this.indexEarlierFiles(backfill);
    const purposes = opts.purpose === undefined ? FILE_PURPOSES : FILE_PURPOSES.filter((p) => p === opts.purpose);
    const team = opts.team ?? ALL_TEAMS;
    const pages = await Promise.all(purposes.map((p) => this.firstRows(partition(team, p), p, opts.after, opts.limit + 1)));
    // Each purpose's rows come in id order; merged they still are, and the first `limit` + 1 decide has_more.
    const merged = pages.flat().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { data: merged.slice(0, opts.limit), hasMore: merged.length > opts.limit };
  }

  private async firstRows(partitionKey: string, purpose: FilePurpose, after: string | undefined, n: number): Promise<FileRecord[]> {
    const filter = `PartitionKey eq ${quote(partitionKey)}${after ? ` and RowKey gt ${quote(after)}` : ''}`;
    const out: FileRecord[] = [];
    for await (const page of this.table.listEntities<IndexRow>({ queryOptions: { filter } }).byPage({ maxPageSize: Math.min(n, 1000) })) {
      for (const e of page) {
        out.push({ id: String(e.rowKey), purpose, filename: e.filename, bytes: Number(e.bytes), createdAt: Number(e.createdAt), lines: Number(e.lines), team: e.team });
        if (out.length >= n) return out;
      }
    }
    return out;
  }

  /** Files stored before the index: walked once per table, then a done-marker (read once per process) says so. */
  private async indexEarlierFiles(backfill: () => AsyncIterable<FileRecord>): Promise<void> {
    if (this.complete) return;
    if (!(await readRow(this.table, INDEX_DONE.partitionKey, INDEX_DONE.rowKey))) {
      for await (const file of backfill()) await this.put(file);
      await this.table.upsertEntity(INDEX_DONE, 'Replace');
    }
    this.complete = true;
  }
}
