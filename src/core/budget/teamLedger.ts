/**
 * Tokens granted per team at one deployment, shared between instances through the budget row (issue 10).
 *
 * Each instance counts what it granted to every team (cumulative, monotonic) and publishes the counters in the lease
 * record it writes at every renewal. When it reads the row, it takes the growth of every other instance's counters
 * since it last saw them: what the rest of the fleet granted each team meanwhile. The fair-share gate adds that to its
 * own count, so every instance orders teams by the fleet's tokens, not only its own, at no extra storage cost.
 *
 * Counters rather than rates: a renewal that is missed, late or conflicting loses nothing, since the next one carries
 * the difference. An instance seen for the first time sets a baseline (its past is not counted twice by instances
 * that joined later). Pure; time is a parameter.
 */
import type { LeaseRecord } from './window';

/** Most teams one lease record carries (the budget row is one Table entity; its size is bounded). */
export const MAX_PUBLISHED_TEAMS = 8;
/** A team nothing was granted to for this long is no longer published, ms. */
const PUBLISH_FOR_MS = 5 * 60_000;
/** An instance not seen in the row for this long is forgotten (its next record sets a new baseline), ms. */
const FORGET_PEER_MS = 10 * 60_000;

export class TeamLedger {
  private readonly mine = new Map<string, { total: number; lastAt: number }>();
  private readonly peers = new Map<string, { seenAt: number; totals: Map<string, number> }>();
  private pending = new Map<string, number>();

  /** This instance granted `tokens` to `team`. */
  record(team: string, tokens: number, now: number): void {
    const t = this.mine.get(team) ?? { total: 0, lastAt: now };
    t.total += tokens;
    t.lastAt = now;
    this.mine.set(team, t);
  }

  /** Counters for this instance's next lease record: the teams granted to most recently, at most MAX_PUBLISHED_TEAMS. */
  publish(now: number): Record<string, number> | undefined {
    const recent = [...this.mine].filter(([, t]) => now - t.lastAt <= PUBLISH_FOR_MS);
    if (recent.length === 0) return undefined;
    recent.sort((a, b) => b[1].lastAt - a[1].lastAt);
    return Object.fromEntries(recent.slice(0, MAX_PUBLISHED_TEAMS).map(([team, t]) => [team, Math.round(t.total)]));
  }

  /** Reads the other instances' counters from a row just read or written. */
  absorb(leases: readonly LeaseRecord[], self: string, now: number): void {
    for (const lease of leases) {
      if (lease.owner === self || !lease.teams) continue;
      const known = this.peers.get(lease.owner);
      if (!known) {
        this.peers.set(lease.owner, { seenAt: now, totals: new Map(Object.entries(lease.teams)) });
        continue;
      }
      known.seenAt = now;
      for (const [team, total] of Object.entries(lease.teams)) {
        const grown = total - (known.totals.get(team) ?? 0);
        if (grown > 0) this.pending.set(team, (this.pending.get(team) ?? 0) + grown);
        known.totals.set(team, Math.max(total, known.totals.get(team) ?? 0));
      }
    }
    for (const [owner, p] of this.peers) if (now - p.seenAt > FORGET_PEER_MS) this.peers.delete(owner);
  }

  /** What other instances granted per team since the last call. */
  take(): ReadonlyMap<string, number> | undefined {
    if (this.pending.size === 0) return undefined;
    const taken = this.pending;
    this.pending = new Map();
    return taken;
  }
}
