/**
 * Batches and files as Sluice stores them, and their OpenAI-shaped public views. Times are epoch milliseconds
 * inside, Unix seconds in views (as OpenAI). Storage lives in src/azure/batchStore.ts and src/azure/fileStore.ts.
 */
import { createHash, randomBytes } from 'node:crypto';

export type BatchStatus = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';
const TERMINAL_BATCH_STATUSES: ReadonlySet<BatchStatus> = new Set(['failed', 'completed', 'expired', 'cancelled']);

/** The one endpoint batches run against today. */
export const BATCH_ENDPOINTS = ['/v1/chat/completions'] as const;

/** One entry of `errors.data`: what is wrong with which line (1-based). */
export interface BatchLineError {
  code: string;
  line: number | null;
  message: string;
  param: string | null;
}

/** How a line ended, as recorded by its completion marker. */
export type LineOutcome = 'succeeded' | 'failed' | 'cancelled' | 'expired';

export interface LineCounts {
  succeeded: number;
  failed: number;
  cancelled: number;
  expired: number;
}

export interface BatchRecord {
  id: string;
  status: BatchStatus;
  endpoint: string;
  inputFileId: string;
  completionWindow: string;
  metadata: Record<string, string>;
  /** Owner of the batch and every line's job: the team whose key created it. */
  team: string;
  /** The team's queue lane when the batch was created. @default 0 */
  lane?: number;
  /**
   * How its lines' job ids are made. 2: grouped, 100 lines per job-table partition, so that fan-out writes rows in
   * entity-group transactions and sends one queue message per group (lineJobId). Absent: one partition per line
   * (batches created before grouping; they finish on the old path).
   */
  jobIds?: 2;
  createdAt: number;
  /** When unfinished lines expire. */
  expiresAt: number;
  inProgressAt?: number;
  finalizingAt?: number;
  completedAt?: number;
  failedAt?: number;
  expiredAt?: number;
  cancellingAt?: number;
  cancelledAt?: number;
  outputFileId?: string;
  errorFileId?: string;
  errors?: BatchLineError[];
  /** Requests in the input file (known once validated). */
  total: number;
  /** Last counts taken from the completion markers. */
  counts: LineCounts;
  /** Lines are counted in counter shards as they end, so live counts cost one read. Absent: count the markers. */
  lineCounters?: true;
  /** Fan-out checkpoint: requests (non-blank lines) already expanded, and the input byte offset after them. */
  cursorLines: number;
  cursorBytes: number;
  /** Physical line number (1-based) the cursor stands before. */
  cursorLineNo: number;
  /** Why the batch stops early; set by cancel or expiry, acted on by the driver. */
  stopReason?: 'cancel' | 'expire';
  /** True once every not-yet-started job has been stopped for stopReason. */
  stopped?: boolean;
  /** Driver ownership: who and until when (epoch ms). */
  leaseId?: string;
  leaseUntil?: number;
  /** Last time markers were counted and when their total last changed (for reconciling lost markers). */
  countedAt?: number;
  progressAt?: number;
}

/** Errors of lines a cancel or expiry stopped before they started. */
export const STOP_ERRORS = {
  cancel: { code: 'batch_cancelled', message: 'The batch was cancelled before this request started.' },
  expire: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' },
} as const;

export function isBatchTerminal(status: BatchStatus): boolean {
  return TERMINAL_BATCH_STATUSES.has(status);
}

/** Inverted-time prefix so ids sort newest first in storage listings (OpenAI lists newest first). */
function newestFirstPrefix(now: number): string {
  return (0xffffffffffff - now).toString(16).padStart(12, '0');
}

/** `batch_<12 hex inverted time><16 hex random>`. */
export function newBatchId(now: number): string {
  return `batch_${newestFirstPrefix(now)}${randomBytes(8).toString('hex')}`;
}

/** `file-<12 hex inverted time><16 hex random>`. */
export function newFileId(now: number): string {
  return `file-${newestFirstPrefix(now)}${randomBytes(8).toString('hex')}`;
}

export const BATCH_ID_PATTERN = /^batch_[0-9a-f]{28}$/;
export const FILE_ID_PATTERN = /^file-[0-9a-f]{28}$/;

/** Id of one output/error line (`batch_req_…`), stable per batch and custom_id. */
export function batchRequestId(batchId: string, customId: string): string {
  return `batch_req_${createHash('sha256').update(`${batchId}\n${customId}`).digest('hex').slice(0, 24)}`;
}

export function emptyCounts(): LineCounts {
  return { succeeded: 0, failed: 0, cancelled: 0, expired: 0 };
}

export function countsDone(c: LineCounts): number {
  return c.succeeded + c.failed + c.cancelled + c.expired;
}

const sec = (t?: number) => (t === undefined ? null : Math.floor(t / 1000));

/** The OpenAI Batch object. `failed` counts every line that did not succeed (failed, cancelled or expired). */
export function toBatchView(b: BatchRecord): Record<string, unknown> {
  const done = countsDone(b.counts);
  return {
    id: b.id,
    object: 'batch',
    endpoint: b.endpoint,
    errors: b.errors && b.errors.length ? { object: 'list', data: b.errors } : null,
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    output_file_id: b.outputFileId ?? null,
    error_file_id: b.errorFileId ?? null,
    created_at: sec(b.createdAt),
    in_progress_at: sec(b.inProgressAt),
    expires_at: sec(b.expiresAt),
    finalizing_at: sec(b.finalizingAt),
    completed_at: sec(b.completedAt),
    failed_at: sec(b.failedAt),
    expired_at: sec(b.expiredAt),
    cancelling_at: sec(b.cancellingAt),
    cancelled_at: sec(b.cancelledAt),
    request_counts: { total: b.total, completed: b.counts.succeeded, failed: done - b.counts.succeeded },
    metadata: Object.keys(b.metadata).length ? b.metadata : null,
  };
}

export type FilePurpose = 'batch' | 'batch_output';

export interface FileRecord {
  id: string;
  filename: string;
  purpose: FilePurpose;
  bytes: number;
  createdAt: number;
  /** Requests counted at upload (non-blank lines); output files: lines written. */
  lines: number;
  /** Owner: the uploading team, or the batch's team for output files. */
  team: string;
  /** Set by the upload's `expires_after`; absent: the default retention applies (core/retention/policy.ts). */
  expiresAt?: number;
}

/** The OpenAI File object. Files are usable once stored, hence always `processed`. */
export function toFileView(f: FileRecord): Record<string, unknown> {
  return {
    id: f.id,
    object: 'file',
    bytes: f.bytes,
    created_at: sec(f.createdAt),
    expires_at: null,
    filename: f.filename,
    purpose: f.purpose,
    status: 'processed',
    status_details: null,
  };
}
