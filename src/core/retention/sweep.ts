/**
 * The retention sweep: one bounded run that deletes expired job records (with their payload blobs), batch records
 * (with their line markers and line jobs), files and usage rows, and keeps a cursor so the next run resumes where
 * this one stopped. Each run looks at no more than `maxRows` rows or blobs; the run's budget is shared between the
 * passes, and what a pass with nothing to do leaves goes to the others.
 *
 * How each kind is found without reading live data (docs/retention.md):
 * - usage rows are partitioned by minute window: a key range below the cutoff window holds only expired rows;
 * - job ids carry no time, but every job a worker finished has a usage row in the minute it finished: the jobs pass
 *   walks the usage rows of windows older than the jobs cutoff, once, and deletes those jobs;
 * - batch ids sort newest first by creation time: a key range above the cutoff id holds only old batches; their
 *   lines' jobs (also those stopped by cancel or expiry, which no worker finished) live in known partitions;
 * - files may carry their own `expires_after`, so blob names say nothing about expiry: the files pass lists the
 *   container once per pass, at most one pass per FILES_PASS_INTERVAL_MS.
 */
import type { BatchRecord } from '../batch/model';
import { isBatchTerminal } from '../batch/model';
import { lineJobId, LINES_PER_PARTITION } from '../batch/validate';
import { windowOf } from '../telemetry/windows';
import { fileExpired, jobsFinishedBy, usageBefore, type RetentionPolicy } from './policy';

/** A table row's keys. */
export interface RowRef {
  pk: string;
  rk: string;
}

/** Where each pass stands; stored as one small row between runs. */
export interface SweepState {
  /** Last usage row the usage pass handled. */
  usage?: RowRef;
  /** Last usage row whose job the jobs pass handled. */
  jobs?: RowRef;
  /** Batches pass: last batch id finished in this pass; the batch being emptied and its next line partition. */
  batches?: { after?: string; current?: string; group?: number };
  /** Files pass: the listing's continuation marker, and when this pass started (epoch ms). */
  files?: { marker?: string; startedAt?: number };
}

/** A new files pass starts at most this often: a pass lists every file once. */
export const FILES_PASS_INTERVAL_MS = 3_600_000;

/** Deletes running side by side within a pass. */
const CONCURRENCY = 16;

export interface UsageRowKeys {
  /**
   * Keys of usage rows whose partition key sorts below `beforePartition`, after `after`, in key order, at most `max`.
   * Partition keys start with their minute window, so a window name as the bound means "older windows only".
   */
  keysBefore(beforePartition: string, after: RowRef | undefined, max: number): Promise<RowRef[]>;
  /** Deletes these rows (missing ones are fine); returns how many were deleted. */
  delete(keys: readonly RowRef[]): Promise<number>;
}

export interface RetentionJobStore {
  /** Deletes the job and its payload blobs if it ended at or before `finishedBy` (epoch ms). True when deleted. */
  deleteIfFinishedBy(id: string, finishedBy: number): Promise<boolean>;
  /** Deletes up to `max` rows (and their payload blobs) of one job-table partition; returns how many. */
  deletePartition(partition: string, max: number): Promise<number>;
}

export interface RetentionBatchStore {
  /** Batch records created at or before `createdBy` (epoch ms) whose id sorts after `after`, in id order, at most `max`. */
  createdBy(createdBy: number, after: string | undefined, max: number): Promise<BatchRecord[]>;
  /** Deletes up to `max` of the batch's line rows (completion markers and the like); returns how many. */
  deleteLineRows(batchId: string, max: number): Promise<number>;
  deleteRecord(batchId: string): Promise<void>;
}

export interface StoredFileTimes {
  /** Blob name (the sweep deletes by it, whatever the naming scheme). */
  name: string;
  createdAt: number;
  /** From the upload's `expires_after`; absent: the default period applies. */
  expiresAt?: number;
}

export interface RetentionFileStore {
  /** One page of the files listing from `marker` (undefined: the start), at most `max` items, and the next marker. */
  page(marker: string | undefined, max: number): Promise<{ items: StoredFileTimes[]; next?: string }>;
  deleteBlob(name: string): Promise<boolean>;
}

export interface SweepCursorStore {
  read(): Promise<{ state: SweepState; etag?: string }>;
  /** Writes the state if nobody wrote it since `etag` (inserts when undefined); false when someone did. */
  write(state: SweepState, etag: string | undefined): Promise<boolean>;
}

export interface RetentionDeps {
  policy: RetentionPolicy;
  /** Rows or blobs one run looks at, at most. */
  maxRows: number;
  clock: { now(): number };
  cursor: SweepCursorStore;
  usage: UsageRowKeys;
  jobs: RetentionJobStore;
  batches: RetentionBatchStore;
  files: RetentionFileStore;
  /** The rollup's last closed minute window, if it ever ran: usage rows it has not counted yet are kept. */
  closedThrough(): Promise<string | undefined>;
}

export interface SweepResult {
  deleted: { jobs: number; batches: number; batchLines: number; files: number; usageRows: number };
  /** Rows and blobs looked at (≤ maxRows). */
  looked: number;
  /** False when another run wrote the cursor first (this run's deletes stand; its progress is re-done). */
  cursorSaved: boolean;
}

/** One run of the sweep. */
export async function runRetentionSweep(deps: RetentionDeps): Promise<SweepResult> {
  const now = deps.clock.now();
  const { state, etag } = await deps.cursor.read();
  const next: SweepState = structuredClone(state);
  const result: SweepResult = { deleted: { jobs: 0, batches: 0, batchLines: 0, files: 0, usageRows: 0 }, looked: 0, cursorSaved: true };
  // The jobs pass reads usage rows, so it goes before the usage pass, which never deletes rows it has not read.
  const passes = [jobsPass, batchesPass, filesPass, usagePass];
  // First each pass gets its share of what is left; then what idle passes left goes to those with more to do.
  const busy: Pass[] = [];
  for (let i = 0; i < passes.length; i += 1) {
    const share = Math.ceil((deps.maxRows - result.looked) / (passes.length - i));
    if (share <= 0) continue;
    const looked = await passes[i]!(deps, next, share, now, result);
    result.looked += looked;
    if (looked >= share) busy.push(passes[i]!);
  }
  for (const pass of busy) {
    const rest = deps.maxRows - result.looked;
    if (rest > 0) result.looked += await pass(deps, next, rest, now, result);
  }
  if (JSON.stringify(next) !== JSON.stringify(state)) result.cursorSaved = await deps.cursor.write(next, etag);
  return result;
}

type Pass = (deps: RetentionDeps, state: SweepState, budget: number, now: number, result: SweepResult) => Promise<number>;

/** Jobs a worker finished: found through their usage rows, in windows older than the jobs cutoff. */
const jobsPass: Pass = async (deps, state, budget, now, result) => {
  const finishedBy = jobsFinishedBy(deps.policy, now);
  const keys = await deps.usage.keysBefore(windowOf(finishedBy), state.jobs, budget);
  const deleted = await mapLimited(keys, (k) => deps.jobs.deleteIfFinishedBy(k.rk, finishedBy));
  result.deleted.jobs += deleted.filter(Boolean).length;
  if (keys.length) state.jobs = keys.at(-1)!;
  return keys.length;
};

/** Usage rows older than their retention, once the rollup has counted them and the jobs pass has read them. */
const usagePass: Pass = async (deps, state, budget, now, result) => {
  let before = windowOf(usageBefore(deps.policy, now));
  const closed = await deps.closedThrough();
  if (closed !== undefined && closed < before) before = `${closed}~`; // every partition of windows ≤ closed
  const jobsAt = state.jobs?.pk ?? '';
  if (jobsAt < before) before = jobsAt; // partitions the jobs pass has not finished stay
  const keys = await deps.usage.keysBefore(before, state.usage, budget);
  if (!keys.length) return 0;
  result.deleted.usageRows += await deps.usage.delete(keys);
  state.usage = keys.at(-1)!;
  return keys.length;
};

/** Terminal batches created before the jobs cutoff: line rows, line jobs, then the record (so a crash resumes). */
const batchesPass: Pass = async (deps, state, budget, now, result) => {
  const createdBy = jobsFinishedBy(deps.policy, now);
  const at = (state.batches ??= {});
  let looked = 0;
  while (looked < budget) {
    const [batch] = await deps.batches.createdBy(createdBy, at.after, 1);
    looked += 1;
    if (!batch) {
      // The pass is over: the next one starts again from the (later) cutoff; what this one deleted is gone.
      state.batches = {};
      break;
    }
    if (!isBatchTerminal(batch.status)) {
      at.after = batch.id;
      continue;
    }
    if (at.current !== batch.id) Object.assign(at, { current: batch.id, group: 0 });
    const rows = await deps.batches.deleteLineRows(batch.id, budget - looked);
    looked += Math.max(1, rows);
    result.deleted.batchLines += rows;
    if (looked >= budget) break;
    const groups = lineGroups(batch);
    while (at.group! < groups.length && looked < budget) {
      const n = await deps.jobs.deletePartition(groups[at.group!]!, budget - looked);
      looked += Math.max(1, n);
      result.deleted.batchLines += n;
      if (looked >= budget) break;
      at.group! += 1;
    }
    if (at.group! < groups.length) break;
    await deps.batches.deleteRecord(batch.id);
    result.deleted.batches += 1;
    Object.assign(at, { after: batch.id, current: undefined, group: undefined });
  }
  return looked;
};

/** Job-table partitions of a grouped batch's lines (older batches' lines are found through their usage rows). */
function lineGroups(batch: BatchRecord): string[] {
  if (batch.jobIds !== 2) return [];
  const lines = Math.max(batch.total, batch.cursorLineNo - 1);
  return Array.from({ length: Math.ceil(lines / LINES_PER_PARTITION) }, (_, g) => lineJobId(batch, '', g * LINES_PER_PARTITION + 1).slice(0, 'job_'.length + 16));
}

/** Files past their expiry: one listing of the container per pass. */
const filesPass: Pass = async (deps, state, budget, now, result) => {
  const at = (state.files ??= {});
  if (at.marker === undefined) {
    if (at.startedAt !== undefined && now - at.startedAt < FILES_PASS_INTERVAL_MS) return 0;
    at.startedAt = now;
  }
  const page = await deps.files.page(at.marker, budget);
  const expired = page.items.filter((f) => fileExpired(f, deps.policy, now));
  result.deleted.files += (await mapLimited(expired, (f) => deps.files.deleteBlob(f.name))).filter(Boolean).length;
  if (page.next) at.marker = page.next;
  else delete at.marker;
  return Math.max(1, page.items.length);
};

async function mapLimited<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
    }),
  );
  return out;
}
