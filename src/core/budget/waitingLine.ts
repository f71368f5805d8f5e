/**
 * The jobs waiting at one instance for one deployment, in the order they were first refused, and the line they
 * form (sharedBudget.ts reads both: the waiting tokens weigh its leases, the line orders admissions). Plain data
 * and functions; time is a parameter. See "the line" in docs/design/budget.md.
 *
 * The line is backfilling, as batch schedulers do it: the oldest job of the same team and priority that is waiting
 * here and due back (the head) keeps what it needs; a younger job may take only the allowance beyond it. Without it,
 * small jobs that wake up first take every refill while a large one, told to come back when it would fit, never
 * does. Priority between interactive and batch and between teams is decided elsewhere (lease.ts, the fair-share
 * gate); the line orders jobs within one of those classes.
 */
import type { JobPriority } from '../jobs';
import type { Claimant } from './gate';

export interface WaitingJob {
  tokens: number;
  priority: JobPriority;
  team: string;
  /** First refusal here, epoch ms (kept across refusals: the job's place in line). */
  since: number;
  /** When it was told to come back, epoch ms. */
  dueAt: number;
  /** When it stops counting (dueAt + WAITING_GRACE_MS: it was parked or went elsewhere), epoch ms. */
  until: number;
  /** Held in-process (due back within the worker's hold), not parked on the queue. */
  held: boolean;
  /** Its team is owed (Claimant.owed): it weighs double in the lease weight. */
  owed: boolean;
}

/** Job id → its wait, in the order of first refusal (a Map keeps insertion order; re-setting a key keeps its place). */
export type WaitingJobs = Map<string, WaitingJob>;

/** A refused job that has not asked again this long after its retryAt was parked or went elsewhere, ms. */
const WAITING_GRACE_MS = 5_000;
/** A waiting job keeps its place in line (its reservation) only while it is due back: this late, it left, ms. */
const DUE_BACK_GRACE_MS = 1_000;

/** Records a refusal (due back at `dueAt`); a job refused before keeps its place in line. `holdMs`: the longest wait
 *  the worker holds a job in-process (a longer one is parked on the queue and keeps no place). */
export function noteRefused(waiting: WaitingJobs, claimant: Claimant, tokens: number, priority: JobPriority, dueAt: number, now: number, holdMs: number): void {
  const prev = waiting.get(claimant.jobId);
  waiting.set(claimant.jobId, {
    tokens,
    priority,
    team: claimant.team,
    since: prev?.since ?? now,
    dueAt,
    until: dueAt + WAITING_GRACE_MS,
    held: dueAt - now <= holdMs,
    owed: !!claimant.owed,
  });
}

/** The first job ahead of the claimant in its line (same team and priority, held here and due back), if any. */
export function lineHead(waiting: WaitingJobs, claimant: Claimant | undefined, priority: JobPriority, now: number): WaitingJob | undefined {
  if (!claimant) return undefined;
  const mine = waiting.get(claimant.jobId);
  for (const [id, w] of waiting) {
    if (id === claimant.jobId) break; // insertion order: everyone after this one is younger
    if (w.priority !== priority || w.team !== claimant.team || !w.held) continue;
    if (w.until < now || w.dueAt + DUE_BACK_GRACE_MS < now) continue;
    if (mine && w.since > mine.since) continue;
    return w;
  }
  return undefined;
}

/** Tokens of the jobs still waiting (refused, due back, not admitted since); drops those that left. `owedTwice`: a
 *  job whose team is owed counts twice (the lease weight). */
export function waitingTokens(waiting: WaitingJobs, now: number, owedTwice = false): number {
  let tokens = 0;
  for (const [id, w] of waiting) {
    if (w.until < now) waiting.delete(id);
    else tokens += owedTwice && w.owed ? 2 * w.tokens : w.tokens;
  }
  return tokens;
}
