/** The worker's contract with its host: what it needs (WorkerDeps) and what one delivery ends in (WorkerResult). */
import type { EndpointSettings } from '../endpoints';
import type { BudgetGate } from '../budget/gate';
import type { EndpointHealth } from '../breaker/health';
import type { JobError, JobRecord, JobRepository } from '../jobs';
import type { ModelClient } from '../modelClient';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** `debug` is routine per-delivery detail; `info` is left to the host's one line per finished job. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/** Every line carries the job id, and the attempt and region when known. */
export type JobLogger = (level: LogLevel, message: string, fields: { jobId: string; attempt?: number; region?: string }) => void;

export interface WorkerSettings {
  /** Per-call timeout, ms. */
  callTimeoutMs: number;
  /** Longest delay one retry may wait, ms (caps Retry-After). */
  maxRetryDelayMs: number;
  /** Waits up to this long are held in-process instead of re-enqueued, ms. @default 2000 */
  holdInProcessMs: number;
  /** Model calls that ended in a transient upstream failure before the job fails. @default 8 */
  maxTransientFailures: number;
}

/** A hook run once a job is terminal (its batch's completion marker, its usage row). */
export type FinishedHook = (job: JobRecord) => Promise<unknown>;

export interface WorkerDeps {
  jobs: JobRepository;
  /** Re-enqueue the job id, visible after delayMs. */
  requeue(jobId: string, delayMs: number): Promise<void>;
  model: ModelClient;
  budget: BudgetGate;
  /** Shared circuit breakers per deployment. @default alwaysClosed */
  health?: EndpointHealth;
  /** Per-model spill-over to the next priority group when a group's budget is spent. @default always true */
  spillover?(model: string): boolean;
  /**
   * Why the job's team may not start work now ({code, message}: team_disabled, team_budget_exceeded), from caches the
   * host refreshes in the background, never a storage read per job. A job of such a team ends `failed` with that
   * error before any model call. @default every team may run
   */
  teamLimit?(team: string): JobError | undefined;
  endpoints: readonly EndpointSettings[];
  settings: WorkerSettings;
  clock?: Clock;
  log?: JobLogger;
  random?: () => number;
  /** Run once each when the job reaches a terminal state; a failing hook is logged as a warning and stops no other. */
  onFinished?: readonly FinishedHook[];
  /** Called after every model call, ok or not (a telemetry dependency carrying the job id). A throw is logged. */
  onModelCall?(call: ModelCallRecord): void;
  /**
   * Enqueues a recovery message for the job, visible `delayMs` from now (just after the claim runs out), and returns
   * a function that deletes it again. Sent before every claim, so a worker killed at any point leaves a message that
   * finishes the job soon after its claim expires, instead of the trigger's own message (which reappears only after
   * the host's 10-minute processing visibility). See docs/reliability.md.
   * @default none (recovery then waits for the trigger message to reappear)
   */
  watchdog?(jobId: string, delayMs: number): Promise<() => Promise<void>>;
  /** True for errors that mean storage is briefly unreachable; the result write is retried on those. @default none */
  isStorageOutage?(err: unknown): boolean;
  /** True once the process is shutting down: a job that would be held in-process is parked instead. */
  stopping?(): boolean;
  /** Test-only fault injection (SLUICE_FAULT_CRASH_AT): called at these points; may kill the process. */
  faultPoint?(point: 'before-call' | 'after-call', jobId: string): void;
}

/** One model call, for telemetry. */
export interface ModelCallRecord {
  jobId: string;
  attempt: number;
  region: string;
  deployment: string;
  model: string;
  endpoint: string;
  startedAt: number;
  durationMs: number;
  /** HTTP status, 0 when no response arrived. */
  status: number;
  success: boolean;
  /** Stable error code or "ok". */
  outcome: string;
}

export type WorkerOutcome = 'succeeded' | 'failed' | 'waiting' | 'already-finished' | 'claimed-elsewhere' | 'missing' | 'duplicate';

/** How one delivery ended; `finished` is the stored record when this delivery brought the job to its end. */
export interface WorkerResult {
  outcome: WorkerOutcome;
  finished?: JobRecord;
}

/** Which delivery of the queue message this is. */
export interface Delivery {
  /** 1 for the first delivery; higher only after a worker failed on the message. */
  dequeueCount?: number;
  /** The message came from an idempotent replay: it only starts a job that is still queued. */
  replay?: boolean;
}

/** What every step of one delivery shares. */
export interface RunContext {
  deps: WorkerDeps;
  clock: Clock;
  log: JobLogger;
  random: () => number;
  health: EndpointHealth;
}

/** The job this delivery holds a claim on, as last written, and the ETag of that write. */
export interface ClaimedJob {
  job: JobRecord;
  etag: string;
}
