/**
 * The end of a batch: read how many lines ended (counters the worker's job-finished hook keeps with each line's
 * completion marker); once every fanned-out line has ended, write
 * the output and error files from the jobs themselves (so the final counts are exact even if a marker was lost)
 * and close the batch as completed, cancelled or expired.
 */
import type { JobRecord } from '../jobs';
import { isTerminal } from '../jobs';
import type { DriveOutcome, DriverDeps, OwnedBatch } from './ownedBatch';
import type { JsonlLine } from './lines';
import { batchRequestId, countsDone, STOP_ERRORS, emptyCounts, type BatchRecord, type LineCounts, type LineOutcome } from './model';
import { forEachLimit, mapOrdered } from './pool';
import type { FileWriter } from './ports';
import { lineJobId } from './validate';

/** Lines expected to end before the batch can close. */
function expectedLines(b: BatchRecord): number {
  return b.stopReason ? b.cursorLines : b.total;
}

export async function finalizeOrWait(deps: DriverDeps, owned: OwnedBatch): Promise<DriveOutcome> {
  const b = owned.batch;
  const now = owned.now();
  let counts = await deps.batches.countLines(b);
  const moved = countsDone(counts) !== countsDone(b.counts);
  const reconcileAfter = deps.settings.reconcileAfterMs ?? 2 * deps.settings.leaseMs;
  if (countsDone(counts) < expectedLines(b) && !moved && now - (b.progressAt ?? now) > reconcileAfter) {
    // Markers stalled: a job-finished hook may have failed. Re-derive markers from the jobs.
    await reconcileMarkers(deps, owned);
    counts = await deps.batches.countLines(b);
  }
  if (countsDone(counts) < expectedLines(b)) {
    await owned.save({ counts, countedAt: now, ...(moved ? { progressAt: now } : {}) });
    return 'wait';
  }
  await writeResults(deps, owned);
  return 'done';
}

function outcomeOf(job: JobRecord): LineOutcome {
  if (job.status === 'succeeded') return 'succeeded';
  if (job.error?.code === STOP_ERRORS.cancel.code) return 'cancelled';
  if (job.error?.code === STOP_ERRORS.expire.code) return 'expired';
  return 'failed';
}

async function* fannedLines(deps: DriverDeps, b: BatchRecord, limit: number): AsyncGenerator<JsonlLine> {
  let n = 0;
  for await (const line of deps.files.lines(b.inputFileId)) {
    if (n++ >= limit) return;
    yield line;
  }
}

const customIdOf = (line: JsonlLine) => String((JSON.parse(line.text) as { custom_id: unknown }).custom_id);

async function reconcileMarkers(deps: DriverDeps, owned: OwnedBatch): Promise<void> {
  const b = owned.batch;
  deps.log?.(`[batch=${b.id}] completion markers stalled; reconciling from the jobs`);
  let pending: { customId: string; outcome: LineOutcome }[] = [];
  await forEachLimit(fannedLines(deps, b, b.cursorLines), deps.settings.concurrency, async (line) => {
    const customId = customIdOf(line);
    const job = await deps.jobs.get(lineJobId(b, customId, line.lineNo));
    if (job && isTerminal(job.status)) pending.push({ customId, outcome: outcomeOf(job) });
    if (pending.length >= 100) {
      const lines = pending;
      pending = [];
      await deps.batches.markLines(b.id, lines);
    }
    await owned.renew();
  });
  if (pending.length) await deps.batches.markLines(b.id, pending);
  await owned.save({ progressAt: owned.now() });
}

/** Lazily created, so a batch without errors has no error file (as OpenAI). */
class LazyWriter {
  private writer: FileWriter | undefined;
  constructor(private readonly open: () => FileWriter) {}
  write(line: string): Promise<void> {
    this.writer ??= this.open();
    return this.writer.write(line);
  }
  async close(): Promise<string | undefined> {
    return this.writer ? (await this.writer.close()).id : undefined;
  }
}

async function writeResults(deps: DriverDeps, owned: OwnedBatch): Promise<void> {
  const b = owned.batch;
  if (!b.stopReason) await owned.save({ status: 'finalizing', finalizingAt: owned.now() });
  const output = new LazyWriter(() => deps.files.writer(`${b.id}_output.jsonl`, 'batch_output', b.team));
  const errors = new LazyWriter(() => deps.files.writer(`${b.id}_error.jsonl`, 'batch_output', b.team));
  const counts: LineCounts = emptyCounts();
  const window = deps.settings.concurrency * 4;
  let index = 0;
  const resultOf = async (line: JsonlLine) => {
    const customId = customIdOf(line);
    const fanned = index++ < b.cursorLines;
    const job = fanned ? await deps.jobs.get(lineJobId(b, customId, line.lineNo)) : undefined;
    return { customId, job };
  };
  for await (const { customId, job } of mapOrdered(deps.files.lines(b.inputFileId), window, resultOf)) {
    const id = batchRequestId(b.id, customId);
    if (job?.status === 'succeeded') {
      counts.succeeded += 1;
      await output.write(JSON.stringify({ id, custom_id: customId, response: { status_code: 200, request_id: job.id, body: job.response ?? null }, error: null }));
      continue;
    }
    let outcome: LineOutcome;
    let error: { code: string; message: string };
    let response: unknown = null;
    if (!job || !isTerminal(job.status)) {
      // Never fanned out (stopped early), or (only after a reconcile gave up waiting) not finished.
      outcome = b.stopReason === 'cancel' ? 'cancelled' : b.stopReason === 'expire' ? 'expired' : 'failed';
      error = b.stopReason ? STOP_ERRORS[b.stopReason] : { code: 'batch_incomplete', message: 'The request did not finish.' };
    } else {
      outcome = outcomeOf(job);
      error = job.error ?? { code: 'failed', message: 'The request failed.' };
      const status = job.regionsTried.at(-1)?.status ?? 0;
      if (outcome === 'failed' && status > 0) response = { status_code: status, request_id: job.id, body: { error: { ...error, type: 'invalid_request_error', param: null } } };
    }
    counts[outcome] += 1;
    await errors.write(JSON.stringify({ id, custom_id: customId, response, error }));
    if (countsDone(counts) % 1000 === 0) await owned.renew();
  }
  const outputFileId = await output.close();
  const errorFileId = await errors.close();
  const now = owned.now();
  const end: Partial<BatchRecord> =
    b.stopReason === 'cancel' ? { status: 'cancelled', cancelledAt: now } : b.stopReason === 'expire' ? { status: 'expired', expiredAt: now } : { status: 'completed', completedAt: now };
  await owned.save({ ...end, counts, outputFileId, errorFileId, countedAt: now, leaseId: undefined, leaseUntil: undefined });
  await deps.batches.setActive(b.id, false);
  deps.log?.(`[batch=${b.id}] ${owned.batch.status}: ${counts.succeeded} succeeded, ${countsDone(counts) - counts.succeeded} not`);
}
