/**
 * Drives one batch a step at a time, under a lease so only one invocation works on a batch:
 *   validating → every line checked (a bad file fails the batch, nothing enqueued) → in_progress
 *   in_progress → fan out one chunk of lines (job rows insert-if-absent, 100 per transaction, then one group message
 *                 per 100 lines), checkpoint the cursor; while the team is disabled or stopped at its budget, fan
 *                 out nothing and wait (the sweep looks again; expiry ends the wait)
 *   cancel/expiry → stop every job not started yet; lines never fanned out are simply not run
 *   all lines ended → write output and error files → completed | cancelled | expired
 * Every step is safe to repeat: job ids are deterministic per (team, batch, custom_id), a job is enqueued only
 * after its row exists, and a crash resumes from the last checkpoint (at worst re-enqueueing a queued job, which the
 * worker's claim turns into a no-op), so no line is lost or run twice.
 */
import type { JobRecord } from '../jobs';
import { finalizeOrWait } from './finalize';
import type { JsonlLine } from './lines';
import { isBatchTerminal, STOP_ERRORS, type BatchRecord, type LineOutcome } from './model';
import { forEachLimit } from './pool';
import { acquire, type DriveOutcome, type DriverDeps, type OwnedBatch } from './ownedBatch';
import { FileValidator, LINES_PER_PARTITION, lineJobId, parseBatchLine } from './validate';

/** Runs the next step of a batch. Throws only on storage failures (the queue retries; the lease then lapses). */
export async function driveBatch(deps: DriverDeps, batchId: string): Promise<DriveOutcome> {
  const owned = await acquire(deps, batchId);
  if (typeof owned === 'string') return owned;
  let outcome: DriveOutcome;
  try {
    outcome = await step(deps, owned);
  } catch (err) {
    // Best effort: let the retry start at once instead of waiting for the lease to lapse.
    await owned.release().catch(() => undefined);
    throw err;
  }
  // acquire() never hands out a batch that was already terminal, so this invocation is the one that ended it.
  if (isBatchTerminal(owned.batch.status)) deps.finished?.(owned.batch);
  else await owned.release();
  return outcome;
}

async function step(deps: DriverDeps, owned: OwnedBatch): Promise<DriveOutcome> {
  const b = owned.batch;
  if (b.status === 'validating') return validate(deps, owned);
  if (!b.stopReason && owned.now() >= b.expiresAt) await owned.save({ stopReason: 'expire' });
  if (owned.batch.stopReason && !owned.batch.stopped) {
    await stopUnstarted(deps, owned);
    return 'continue';
  }
  if (!owned.batch.stopReason && owned.batch.cursorLines < owned.batch.total) {
    const refused = deps.teamLimit?.(owned.batch.team);
    if (refused) {
      deps.log?.(`[batch=${b.id}] fan-out paused: ${refused.code}`);
      return 'wait';
    }
    await fanOutChunk(deps, owned);
    return 'continue';
  }
  return finalizeOrWait(deps, owned);
}

function lineContext(deps: DriverDeps, b: BatchRecord, now: number) {
  return { batchId: b.id, jobIds: b.jobIds, endpoint: b.endpoint, team: b.team, models: deps.models, now };
}

/** Checks every line before any work starts; a bad file fails the batch and enqueues nothing. */
async function validate(deps: DriverDeps, owned: OwnedBatch): Promise<DriveOutcome> {
  const b = owned.batch;
  const file = await deps.files.get(b.inputFileId);
  const now = owned.now();
  const failWith = async (errors: BatchRecord['errors'], total = 0) => {
    await owned.save({ status: 'failed', failedAt: now, errors, total, leaseId: undefined, leaseUntil: undefined });
    await deps.batches.setActive(b.id, false);
    return 'done' as const;
  };
  if (!file) return failWith([{ code: 'file_not_found', line: null, message: `input file ${b.inputFileId} no longer exists`, param: 'input_file_id' }]);
  const validator = new FileValidator(lineContext(deps, b, now));
  let n = 0;
  for await (const line of deps.files.lines(b.inputFileId)) {
    validator.add(line.text, line.lineNo);
    if (++n % 2000 === 0) await owned.renew();
  }
  if (validator.requests === 0) validator.push({ code: 'empty_file', line: null, message: 'The input file contains no requests', param: 'input_file_id' });
  if (validator.requests > deps.settings.maxFileLines) {
    validator.push({ code: 'too_many_requests', line: null, message: `The input file has ${validator.requests} requests; the limit is ${deps.settings.maxFileLines}`, param: 'input_file_id' });
  }
  if (validator.errorCount > 0) return failWith(validator.errors, validator.requests);
  await owned.save({ status: 'in_progress', inProgressAt: owned.now(), total: validator.requests, progressAt: owned.now() });
  deps.log?.(`[batch=${b.id}] validated ${validator.requests} requests`);
  return 'continue';
}

/** Runs of lines (each within one job partition) written and sent at once by a grouped fan-out. */
const RUNS_IN_FLIGHT = 8;
/** A run is cut short past this much line text, so that its rows fit one transaction (4 MiB). */
const RUN_MAX_CHARS = 2 * 1024 * 1024;

/**
 * Expands the next chunk of lines into jobs and checkpoints the cursor. Grouped batches (jobIds 2): the lines of one
 * job partition are written in one entity-group transaction and sent in one group message. Older batches: one
 * insert-if-absent and one message per line.
 */
async function fanOutChunk(deps: DriverDeps, owned: OwnedBatch): Promise<void> {
  if (owned.batch.jobIds === 2) return fanOutGrouped(deps, owned);
  const b = owned.batch;
  const ctx = lineContext(deps, b, owned.now());
  const progress: ChunkProgress = { taken: 0 };
  let processed = 0;
  await forEachLimit(chunkLines(deps, b, progress), deps.settings.concurrency, async (line) => {
    const parsed = parseBatchLine(line.text, line.lineNo, ctx);
    if (!parsed.ok) throw new Error(`line ${line.lineNo} no longer validates: ${parsed.error.message}`);
    if (deps.failAfterLines !== undefined && processed >= deps.failAfterLines) throw new Error('injected fan-out failure');
    processed += 1;
    // Keep the lease while a slow chunk runs (storage under load): a lapsed lease lets a second driver redo the chunk,
    // which re-sends every still-queued line. renew() writes at most every leaseMs / 3.
    if (processed % 100 === 0) await owned.renew();
    const created = await deps.jobs.createIfAbsent(parsed.job);
    // A job that already exists was created by an earlier, interrupted attempt: enqueue it again unless a worker
    // has seen it (a duplicate message is harmless, the worker's claim runs a job once).
    if (created || (await deps.jobs.status(parsed.job.id)) === 'queued') await deps.jobs.enqueue(parsed.job, b.lane);
  });
  await checkpoint(deps, owned, progress);
}

interface ChunkProgress {
  taken: number;
  last?: JsonlLine;
}

/** The next chunk's lines, from the checkpoint; `progress` counts them and keeps the last one. */
async function* chunkLines(deps: DriverDeps, b: BatchRecord, progress: ChunkProgress): AsyncGenerator<JsonlLine> {
  const limit = Math.min(deps.settings.fanoutChunk, b.total - b.cursorLines);
  for await (const line of deps.files.lines(b.inputFileId, b.cursorBytes, b.cursorLineNo)) {
    if (progress.taken >= limit) return;
    progress.taken += 1;
    progress.last = line;
    yield line;
  }
}

/** Moves the cursor past a whole chunk (and extends the lease). */
async function checkpoint(deps: DriverDeps, owned: OwnedBatch, progress: ChunkProgress): Promise<void> {
  const b = owned.batch;
  const end = progress.last;
  if (!end) throw new Error(`batch ${b.id}: input file ended before ${b.total} requests`);
  await owned.save({ cursorLines: b.cursorLines + progress.taken, cursorBytes: end.endByte, cursorLineNo: end.lineNo + 1, leaseUntil: owned.now() + deps.settings.leaseMs });
  deps.log?.(`[batch=${b.id}] fanned out ${owned.batch.cursorLines}/${b.total}`);
}

async function fanOutGrouped(deps: DriverDeps, owned: OwnedBatch): Promise<void> {
  const b = owned.batch;
  const ctx = lineContext(deps, b, owned.now());
  const progress: ChunkProgress = { taken: 0 };
  let processed = 0;
  async function* runs(): AsyncGenerator<JobRecord[]> {
    let run: JobRecord[] = [];
    let runPartition = -1;
    let chars = 0;
    for await (const line of chunkLines(deps, b, progress)) {
      const parsed = parseBatchLine(line.text, line.lineNo, ctx);
      if (!parsed.ok) throw new Error(`line ${line.lineNo} no longer validates: ${parsed.error.message}`);
      const partition = Math.floor((line.lineNo - 1) / LINES_PER_PARTITION);
      if (run.length > 0 && (partition !== runPartition || chars + line.text.length > RUN_MAX_CHARS)) {
        yield run;
        run = [];
        chars = 0;
      }
      run.push(parsed.job);
      runPartition = partition;
      chars += line.text.length;
    }
    if (run.length > 0) yield run;
  }
  await forEachLimit(runs(), RUNS_IN_FLIGHT, async (run) => {
    // The test hook writes the rows of the lines before its limit and dies before sending their message: a resume
    // must then find rows without messages.
    const room = deps.failAfterLines === undefined ? run.length : Math.max(0, deps.failAfterLines - processed);
    const jobs = room < run.length ? run.slice(0, room) : run;
    processed += jobs.length;
    await owned.renew();
    const created = await deps.jobs.createMany(jobs);
    if (jobs !== run) throw new Error('injected fan-out failure');
    // A job that already exists was created by an earlier, interrupted attempt: send it again unless a worker has
    // seen it (a duplicate message is harmless, the worker's claim runs a job once).
    const statuses = await Promise.all(jobs.map((job, i) => (created[i] ? 'queued' : deps.jobs.status(job.id))));
    await deps.jobs.enqueueMany(jobs.filter((_, i) => statuses[i] === 'queued'), b.lane);
  });
  await checkpoint(deps, owned, progress);
}

/** Cancel or expiry: fail every fanned-out job no worker has started; running ones finish. */
async function stopUnstarted(deps: DriverDeps, owned: OwnedBatch): Promise<void> {
  const b = owned.batch;
  const reason = b.stopReason!;
  const error = STOP_ERRORS[reason];
  const outcome: LineOutcome = reason === 'cancel' ? 'cancelled' : 'expired';
  let pending: { customId: string; outcome: LineOutcome }[] = [];
  const flush = async () => {
    const lines = pending;
    pending = [];
    if (lines.length) await deps.batches.markLines(b.id, lines);
  };
  let seen = 0;
  async function* fanned(): AsyncGenerator<JsonlLine> {
    for await (const line of deps.files.lines(b.inputFileId)) {
      if (seen >= b.cursorLines) return;
      seen += 1;
      yield line;
    }
  }
  const now = owned.now();
  await forEachLimit(fanned(), deps.settings.concurrency, async (line) => {
    const customId = String((JSON.parse(line.text) as { custom_id: unknown }).custom_id);
    const result = await deps.jobs.stopIfNotStarted(lineJobId(b, customId, line.lineNo), error, now);
    if (result?.stopped) {
      pending.push({ customId, outcome });
      if (pending.length >= 100) await flush();
    }
    if (seen % 1000 === 0) await owned.renew();
  });
  await flush();
  await owned.save({ stopped: true });
  deps.log?.(`[batch=${b.id}] stopped unstarted lines (${reason})`);
}
