/**
 * Reconciling the shared row with the service's own count (x-ratelimit-remaining-* headers), so that use the row
 * does not see (other clients of the deployment, a prompt counted differently) is charged to the fleet.
 */
import { addSettled, OBSERVATION_LAG_MS, slotOf, windowTotals, type BudgetRow, type DeploymentLimits, type Limits } from './window';

/** The service's own count, read from x-ratelimit-remaining-* at time `at`. */
export interface ServiceObservation {
  at: number;
  remainingTokens?: number;
  remainingRequests?: number;
}

/**
 * Reconciles with the service: if it counts more in its window than the row does (other clients on the same
 * deployment, a prompt-count mismatch), the difference is settled at the observation's slot as a charge (drift).
 * Only ever adds: releasing budget on a lower count could over-admit against leases already granted.
 * Returns the tokens and requests added.
 */
export function reconcile(row: BudgetRow, obs: ServiceObservation, d: DeploymentLimits, lim: Limits): { tokens: number; requests: number } {
  const k = slotOf(obs.at, lim.slotMs);
  const k0 = k - Math.ceil(OBSERVATION_LAG_MS / lim.slotMs);
  let tokens = 0;
  let requests = 0;
  if (obs.remainingTokens !== undefined) {
    const ours = Math.max(...windowTotals(row, 'tokens', lim.w60, k0, k, lim.slotMs, true));
    const theirs = d.tpm - obs.remainingTokens;
    const deficit = theirs - ours;
    if (deficit > 0.02 * d.tpm) tokens = Math.ceil(deficit);
  }
  if (obs.remainingRequests !== undefined) {
    const r60 = Math.max(...windowTotals(row, 'requests', lim.w60, k0, k, lim.slotMs, true));
    const r10 = Math.max(...windowTotals(row, 'requests', lim.w10, k0, k, lim.slotMs, true));
    const oursRemaining = Math.min(lim.requests10 - r10, lim.requests60 - r60);
    const deficit = oursRemaining - obs.remainingRequests;
    if (deficit > Math.max(2, 0.02 * lim.requests10)) requests = Math.ceil(deficit);
  }
  if (tokens > 0 || requests > 0) addSettled(row, k, tokens, requests);
  return { tokens, requests };
}
