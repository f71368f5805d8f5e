/**
 * Priority groups and spill-over. `candidatesFor()` orders deployments by priority group; the worker walks them.
 * Moving past a group for HEALTH reasons (breaker open, the call failed) is regional failover and always allowed.
 * Moving past a group because its BUDGET is spent is spill-over, a per-model choice: teams fill provisioned (PTU)
 * capacity first and may or may not want overflow to go to pay-as-you-go deployments in a later group.
 */

/** How a candidate deployment was passed over in one routing pass. */
export type PassedOver =
  /** Its breaker is open (or another instance holds the probe). */
  | 'open'
  /** The shared budget refused it for now. */
  | 'budget'
  /** It was called and failed with a retryable endpoint fault. */
  | 'failed';

/**
 * May the routing loop go on to the next priority group, given how each candidate of the group it just passed was
 * passed over? With `spillover` off, a group that is merely out of budget keeps the job (it waits for that group);
 * a group with no healthy deployment never does.
 * @param spillover the model's `spillover` setting. @default true (today's behaviour: every group is tried)
 */
export function mayLeaveGroup(passed: readonly PassedOver[], spillover = true): boolean {
  return spillover || !passed.includes('budget');
}
