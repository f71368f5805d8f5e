/** What the batch logic needs from storage, as plain interfaces (implemented in src/azure/, faked in tests). */
import type { JobRecord, JobStatus } from '../jobs';
import type { JsonlLine } from './lines';
import type { BatchRecord, FilePurpose, FileRecord, LineCounts, LineOutcome } from './model';

/** Thrown when a batch changed since it was read (ETag mismatch). */
export class StaleBatchError extends Error {
  constructor(readonly batchId: string) {
    super(`batch ${batchId} was changed by someone else`);
    this.name = 'StaleBatchError';
  }
}

export interface BatchRepository {
  create(batch: BatchRecord): Promise<void>;
  get(id: string): Promise<{ batch: BatchRecord; etag: string } | undefined>;
  /** Replaces the batch if unchanged since `etag`; throws StaleBatchError otherwise. Returns the new etag. */
  replace(batch: BatchRecord, etag: string): Promise<string>;
  /** Newest first: `limit` batches after the id `after` (only `team`'s when given), and whether more follow. */
  list(opts: { after?: string; limit: number; team?: string }): Promise<{ data: BatchRecord[]; hasMore: boolean }>;
  /** Records how lines ended; a line marked twice counts once (with its latest outcome). */
  markLines(batchId: string, lines: ReadonlyArray<{ customId: string; outcome: LineOutcome }>): Promise<void>;
  /** How the batch's lines ended so far; a constant number of reads for a batch with `lineCounters`. */
  countLines(batch: Pick<BatchRecord, 'id' | 'lineCounters'>): Promise<LineCounts>;
  /** Keeps the small index of batches the sweep must visit. */
  setActive(batchId: string, active: boolean): Promise<void>;
  listActive(): Promise<string[]>;
}

export interface FileWriter {
  write(line: string): Promise<void>;
  /** Commits the file and returns its record. */
  close(): Promise<FileRecord>;
}

export interface FileRepository {
  get(id: string): Promise<FileRecord | undefined>;
  /** Non-blank lines from `fromByte` (a ranged read), numbered from `fromLineNo`. */
  lines(id: string, fromByte?: number, fromLineNo?: number): AsyncIterable<JsonlLine>;
  /** A new file written as a stream, one line at a time. */
  writer(filename: string, purpose: FilePurpose, team?: string): FileWriter;
}

export interface BatchJobPort {
  /** Inserts the job unless a job with its id exists; true when inserted. */
  createIfAbsent(job: JobRecord): Promise<boolean>;
  /** Inserts many jobs, each unless its id exists (rows sharing a partition in transactions); true per inserted job. */
  createMany(jobs: readonly JobRecord[]): Promise<boolean[]>;
  get(id: string): Promise<JobRecord | undefined>;
  status(id: string): Promise<JobStatus | undefined>;
  /** Hands the job over to run (its team queue, or the batch queue of `lane`, the team's queue lane; default 0). */
  enqueue(job: JobRecord, lane?: number): Promise<void>;
  /** Hands many jobs of the batch over at once. */
  enqueueMany(jobs: readonly JobRecord[], lane?: number): Promise<void>;
  /** Fails a job no worker has started; `stopped` false when it already runs or ended. */
  stopIfNotStarted(id: string, error: { code: string; message: string }, now: number): Promise<{ stopped: boolean; status: JobStatus } | undefined>;
}
