/**
 * Backpressure at submit: when the backlog passes a bound, refuse new work (429) with a Retry-After estimated from
 * how fast the model's deployments can drain the excess at their quota.
 */
export type BacklogVerdict = { accept: true } | { accept: false; retryAfterS: number };

/**
 * @param depth jobs waiting in the queue now
 * @param maxBacklog bound; 0 disables backpressure
 * @param chargePerJob tokens one job like this one is charged (prompt + max output)
 * @param tpm the model's total tokens per minute across its deployments
 */
export function backlogVerdict(depth: number, maxBacklog: number, chargePerJob: number, tpm: number): BacklogVerdict {
  if (maxBacklog <= 0 || depth < maxBacklog) return { accept: true };
  const excess = depth - maxBacklog + 1;
  const seconds = tpm > 0 ? (excess * Math.max(1, chargePerJob) * 60) / tpm : 60;
  return { accept: false, retryAfterS: Math.min(3600, Math.max(1, Math.ceil(seconds))) };
}

/**
 * A job whose charge (prompt + max output) exceeds what any deployment of its model can admit in a minute would wait
 * forever: Azure itself refuses such a call. Returns the largest admissible charge when the job is over it.
 * @param tpms the TPM of each deployment serving the model
 * @param safety the share of each deployment's quota the budget plans to use
 */
export function overQuotaCeiling(charge: number, tpms: readonly number[], safety: number): number | undefined {
  const ceiling = Math.floor(Math.max(0, ...tpms) * safety);
  return charge > ceiling ? ceiling : undefined;
}
