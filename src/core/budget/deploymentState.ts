/**
 * What one instance keeps per deployment for the shared budget gate (sharedBudget.ts): the held lease, the row as
 * last read, pending observations and the demand the lease is sized by. Plain data.
 */
import type { DemandState, HeldLease } from './lease';
import type { StoredBudgetRow } from './store';
import { TeamLedger } from './teamLedger';
import type { WaitingJobs } from './waitingLine';
import type { ServiceObservation } from './reconcile';

export interface DeploymentState {
  key: string;
  cached?: StoredBudgetRow;
  lease?: HeldLease;
  pauseUntil: number;
  pendingPause: number;
  observations: ServiceObservation[];
  /** The row write in flight (renewal, pause or release), if any: one at a time. */
  writing?: Promise<void>;
  lastRenewAt: number;
  /** The last grant was sized by recent use, not by availability or fair share. */
  demandLimited: boolean;
  storageBackoffUntil: number;
  /** Every seat was taken at the last read: no row read before this (epoch ms); seatlessStreak reads in a row. */
  seatlessUntil: number;
  seatlessStreak: number;
  /** Moving average of the charges asked for here, tokens (seats for jobs this size: window.ts seatsFor). */
  typicalCharge: number;
  /** Recent admissions [time, tokens], for pace and lease length. */
  admitted: Array<[number, number]>;
  /** First asks of jobs new to this instance in the last 20 s, epoch ms (the end of a drain, leaseSizing.ts). */
  arrivals: number[];
  lastDeniedAt: number;
  demand: DemandState;
  /** Last admit() call, and the latest retryAt handed to a refused job (it comes back then), epoch ms. */
  lastAskAt: number;
  promisedUntil: number;
  /** Charge of the last refused job (the next lease makes room for it). */
  pendingCharge: number;
  /** The lease whose on-time renewal is scheduled (renewOnTime). */
  renewalTimerFor?: string;
  /** When the scheduled idle check runs (watchIdle), epoch ms. */
  idleCheckAt?: number;
  /** Jobs refused here and not admitted since, in the order they were first refused. */
  waiting: WaitingJobs;
  /** The held lease was weighted for interactive demand. */
  leaseForInteractive: boolean;
  /** When an interactive job last renewed early (at most one such renewal per INTERACTIVE_RENEW_GAP_MS), epoch ms. */
  interactiveRenewAt: number;
  /** When a row read last showed another instance's live lease, epoch ms (a lapsed one may be a stopped instance's);
   *  at first, when this state was made, so that a starting instance counts the row as shared until it has seen it
   *  alone for a while (alone leases, leaseSizing.ts). */
  othersSeenAt: number;
  /** Tokens granted per team, here and (read from the row) by the other instances. */
  teams: TeamLedger;
}

export function newDeploymentState(key: string, now: number): DeploymentState {
  return {
    key,
    pauseUntil: 0,
    pendingPause: 0,
    observations: [],
    lastRenewAt: Number.NEGATIVE_INFINITY,
    interactiveRenewAt: Number.NEGATIVE_INFINITY,
    demandLimited: false,
    storageBackoffUntil: 0,
    seatlessUntil: 0,
    seatlessStreak: 0,
    typicalCharge: 0,
    admitted: [],
    arrivals: [],
    lastDeniedAt: Number.NEGATIVE_INFINITY,
    othersSeenAt: now,
    demand: { lastInteractiveAt: Number.NEGATIVE_INFINITY },
    lastAskAt: Number.NEGATIVE_INFINITY,
    promisedUntil: Number.NEGATIVE_INFINITY,
    pendingCharge: 0,
    waiting: new Map(),
    teams: new TeamLedger(),
    leaseForInteractive: false,
  };
}
