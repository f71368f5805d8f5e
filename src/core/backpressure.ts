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
 * A team's fair part of Sluice's backlog limit: the limit shared among the teams with work waiting (the asking team
 * counts as one of them), in proportion to their weights.
 * @param counts jobs waiting per team with work
 * @param weightOf a team's fair-share weight (1 when teams are not weighted)
 */
export function fairBacklogPart(team: string, counts: ReadonlyMap<string, number>, maxBacklog: number, weightOf: (team: string) => number = () => 1): number {
  const weight = (t: string) => Math.max(0, weightOf(t)) || 1;
  let total = weight(team);
  for (const [t, n] of counts) if (t !== team && n > 0) total += weight(t);
  return (maxBacklog * weight(team)) / total;
}

/**
 * Sluice's backlog limit, so that one team's backlog cannot refuse another's work: while the fleet's backlog is
 * under the limit everyone is admitted; over it, only a team at or over its fair part (fairBacklogPart) is refused,
 * with a Retry-After for draining its own excess.
 */
export function teamBacklogVerdict(
  team: string,
  counts: ReadonlyMap<string, number>,
  maxBacklog: number,
  chargePerJob: number,
  tpm: number,
  weightOf?: (team: string) => number,
): BacklogVerdict {
  if (maxBacklog <= 0) return { accept: true };
  let total = 0;
  for (const n of counts.values()) total += Math.max(0, n);
  if (total < maxBacklog) return { accept: true };
  const own = counts.get(team) ?? 0;
  const part = Math.floor(fairBacklogPart(team, counts, maxBacklog, weightOf));
  return own < Math.max(1, part) ? { accept: true } : backlogVerdict(own, Math.max(1, part), chargePerJob, tpm);
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
