/**
 * What the batch driver works with: its dependencies and settings, and the lease that makes one invocation at a time
 * the owner of a batch (acquire, then save/renew/release through OwnedBatch).
 */
import { randomUUID } from 'node:crypto';
import type { ModelSettings } from '../models';
import { isBatchTerminal, type BatchRecord } from './model';
import { StaleBatchError, type BatchJobPort, type BatchRepository, type FileRepository } from './ports';

export interface DriverSettings {
  maxFileLines: number;
  fanoutChunk: number;
  concurrency: number;
  leaseMs: number;
  /** Recount lines from the jobs themselves when markers have not moved for this long, ms. @default 2 × leaseMs */
  reconcileAfterMs?: number;
}

export interface DriverDeps {
  batches: BatchRepository;
  files: FileRepository;
  jobs: BatchJobPort;
  models: Record<string, ModelSettings>;
  settings: DriverSettings;
  now?: () => number;
  /** Routine progress lines (validated, fanned out, stopped, finalised). */
  log?: (message: string) => void;
  /** Called once, by the invocation that moved the batch to a terminal status. */
  finished?: (batch: BatchRecord) => void;
  /**
   * Why the team may start no work now (disabled, stopped at its budget), from background caches; while it says
   * so, no more lines are fanned out. @default every team may
   */
  teamLimit?: (team: string) => { code: string; message: string } | undefined;
  /** Test hook: throw after this many lines were fanned out in this invocation (a simulated crash). */
  failAfterLines?: number;
}

/** continue: call again at once (more fan-out); wait: lines still running; busy: another invocation owns it. */
export type DriveOutcome = 'continue' | 'wait' | 'done' | 'busy' | 'missing';

/** A batch this invocation holds the lease on; writes go through save() so a concurrent cancel is never lost. */
export class OwnedBatch {
  private renewedAt: number;

  constructor(
    private readonly deps: DriverDeps,
    public batch: BatchRecord,
    private etag: string,
    private readonly leaseId: string,
  ) {
    this.renewedAt = this.now();
  }

  now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Applies `patch` to the freshest record; a cancel that landed meanwhile keeps its status. */
  async save(patch: Partial<BatchRecord>): Promise<void> {
    for (let tries = 0; ; tries += 1) {
      const next: BatchRecord = { ...this.batch, ...patch };
      if (this.batch.stopReason === 'cancel' && patch.status === 'in_progress') next.status = 'cancelling';
      try {
        this.etag = await this.deps.batches.replace(next, this.etag);
        this.batch = next;
        return;
      } catch (err) {
        if (!(err instanceof StaleBatchError) || tries >= 5) throw err;
        const fresh = await this.deps.batches.get(this.batch.id);
        if (!fresh || fresh.batch.leaseId !== this.leaseId) throw new Error(`lost the lease on batch ${this.batch.id}`);
        this.batch = fresh.batch;
        this.etag = fresh.etag;
      }
    }
  }

  /** Extends the lease when a third of it has passed (call from long loops). */
  async renew(): Promise<void> {
    const now = this.now();
    if (now - this.renewedAt < this.deps.settings.leaseMs / 3) return;
    this.renewedAt = now;
    await this.save({ leaseUntil: now + this.deps.settings.leaseMs });
  }

  async release(): Promise<void> {
    await this.save({ leaseId: undefined, leaseUntil: undefined });
  }
}

export async function acquire(deps: DriverDeps, batchId: string): Promise<OwnedBatch | DriveOutcome> {
  const now = (deps.now ?? Date.now)();
  for (let tries = 0; tries < 5; tries += 1) {
    const stored = await deps.batches.get(batchId);
    if (!stored) return 'missing';
    const { batch, etag } = stored;
    if (isBatchTerminal(batch.status)) return 'done';
    if (batch.leaseId && (batch.leaseUntil ?? 0) > now) return 'busy';
    const leaseId = randomUUID();
    const leased: BatchRecord = { ...batch, leaseId, leaseUntil: now + deps.settings.leaseMs };
    try {
      const newEtag = await deps.batches.replace(leased, etag);
      return new OwnedBatch(deps, leased, newEtag, leaseId);
    } catch (err) {
      if (!(err instanceof StaleBatchError)) throw err;
    }
  }
  return 'busy';
}
