/**
 * The worker's view of the shared quota: ask before every model call, report what the service said after it.
 * Implementations: UnlimitedBudget (no accounting) and the Table-backed shared budget.
 */
import type { JobPriority } from '../jobs';
import type { PeerGrant } from './teamLedger';

/** One Azure OpenAI deployment's budget identity and limits. */
export interface DeploymentRef {
  /** Stable key: endpoint URL + deployment name. */
  key: string;
  region: string;
  deployment: string;
  /** Tokens per minute granted to the deployment. */
  tpm: number;
  /** Requests per minute granted to the deployment. */
  rpm: number;
}

export type Admission =
  | { granted: true }
  /** Not now: try again at retryAt (epoch ms). */
  | { granted: false; retryAt: number; reason: 'tokens' | 'requests' | 'paused' | 'seat' };

/** What a response told us about the deployment's quota. */
export interface QuotaSignal {
  status: number;
  remainingTokens?: number;
  remainingRequests?: number;
  /** From retry-after-ms / retry-after on a 429, ms. */
  retryAfterMs?: number;
}

/** The job asking, for gates that share a deployment between teams (src/core/fairshare/gate.ts). */
export interface Claimant {
  jobId: string;
  team: string;
  model?: string;
  /** Another team had a job waiting at this instance when this one asked (set by the fair-share gate; teamLedger.ts). */
  contested?: boolean;
  /** Its team is owed: behind the furthest-ahead team waiting here by more than a few of its jobs (set by the
   *  fair-share gate). Its waiting tokens weigh double in the lease weight, so the instance holding its jobs gets more
   *  of the pace. */
  owed?: boolean;
}

export interface BudgetGate {
  /** Reserve `tokens` (prompt + max output) and one request on the deployment, or say when to retry. */
  admit(target: DeploymentRef, tokens: number, priority: JobPriority, now: number, claimant?: Claimant): Promise<Admission>;
  /** Learn from the service's answer (headers, 429 + Retry-After). */
  observe(target: DeploymentRef, signal: QuotaSignal, now: number): Promise<void>;
  /** Give back leases held by this instance (graceful shutdown). */
  close?(): Promise<void>;
  /** A job an outer gate holds back (at `now`) is waiting for this deployment until `until`: it counts in the lease's
   *  weight and keeps its place in line. */
  noteWaiting?(target: DeploymentRef, claimant: Claimant, tokens: number, until: number, priority: JobPriority, now: number): void;
  /** This instance's part of the tokens other instances granted teams at the deployment, uncontested, since the last
   *  call (fleet-wide fair share; teamLedger.ts). */
  takePeerGrants?(deploymentKey: string): readonly PeerGrant[] | undefined;
}

/** No shared accounting: every call is admitted. For tests of other parts, and the naive baseline. */
export class UnlimitedBudget implements BudgetGate {
  async admit(): Promise<Admission> {
    return { granted: true };
  }
  async observe(): Promise<void> {}
}
