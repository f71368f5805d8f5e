/** The Batches API operations: create (validate the request, record a `validating` batch) and cancel. */
import { z } from 'zod';
import { SluiceError, ValidationError } from '../errors';
import { BATCH_ENDPOINTS, emptyCounts, newBatchId, type BatchRecord, type FileRecord } from './model';
import { StaleBatchError, type BatchRepository } from './ports';

const createSchema = z
  .object({
    input_file_id: z.string({ error: 'is required' }).min(1),
    endpoint: z.enum(BATCH_ENDPOINTS, { error: `must be one of ${BATCH_ENDPOINTS.join(', ')}` }),
    completion_window: z.literal('24h', { error: 'must be "24h"' }),
    metadata: z
      .record(z.string().min(1).max(64), z.string().max(512))
      .refine((m) => Object.keys(m).length <= 16, 'has more than 16 keys')
      .nullish(),
  })
  .passthrough();

export interface CreateBatchOptions {
  now: number;
  /** Seconds until unfinished lines expire (SLUICE_BATCH_COMPLETION_WINDOW_S). */
  completionWindowS: number;
  getFile(id: string): Promise<FileRecord | undefined>;
  /** The creating team: owns the batch, its jobs and outputs, and must own the input file. */
  team: string;
  /** That team's queue lane. */
  lane?: number;
}

/** Validates a create request and builds the batch record (status validating, lines checked by the driver). */
export async function prepareBatch(body: unknown, opts: CreateBatchOptions): Promise<BatchRecord> {
  const parsed = createSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = issue.path.map(String).join('.') || 'body';
    throw new ValidationError(`${param}: ${issue.message}`, param);
  }
  const req = parsed.data;
  const file = await opts.getFile(req.input_file_id);
  // Another team's file is answered exactly like a missing one.
  if (!file || file.team !== opts.team) throw new ValidationError(`input_file_id: no file with id "${req.input_file_id}"`, 'input_file_id', 'file_not_found', 404);
  if (file.purpose !== 'batch') throw new ValidationError(`input_file_id: file ${file.id} has purpose "${file.purpose}", expected "batch"`, 'input_file_id');
  const metadata = req.metadata ?? {};
  return {
    id: newBatchId(opts.now),
    status: 'validating',
    endpoint: req.endpoint,
    inputFileId: file.id,
    completionWindow: req.completion_window,
    metadata,
    team: opts.team,
    ...(opts.lane !== undefined ? { lane: opts.lane } : {}),
    jobIds: 2,
    createdAt: opts.now,
    expiresAt: opts.now + opts.completionWindowS * 1000,
    total: file.lines,
    counts: emptyCounts(),
    lineCounters: true,
    cursorLines: 0,
    cursorBytes: 0,
    cursorLineNo: 1,
  };
}

/**
 * Asks a batch to stop: status cancelling, stopReason cancel (the driver then stops unstarted lines and closes it).
 * A batch already cancelling/cancelled or finalising is returned as it is; any other finished batch is a 409.
 */
export async function requestCancel(batches: BatchRepository, id: string, now: number): Promise<BatchRecord | undefined> {
  for (let tries = 0; tries < 10; tries += 1) {
    const stored = await batches.get(id);
    if (!stored) return undefined;
    const b = stored.batch;
    if (b.status === 'cancelling' || b.status === 'cancelled' || b.status === 'finalizing') return b;
    if (b.status !== 'validating' && b.status !== 'in_progress') {
      throw new SluiceError('batch_not_cancellable', `Cannot cancel a batch with status "${b.status}"`, false, 409);
    }
    const next: BatchRecord = { ...b, status: 'cancelling', cancellingAt: now, stopReason: b.stopReason ?? 'cancel' };
    try {
      await batches.replace(next, stored.etag);
      return next;
    } catch (err) {
      if (!(err instanceof StaleBatchError)) throw err;
    }
  }
  throw new SluiceError('busy', `batch ${id} is changing too often; retry`, true, 409);
}
