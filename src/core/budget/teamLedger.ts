/**
 * Tokens granted per team at one deployment, shared between instances through the budget row (fleet-wide fair share;
 * terms: docs/design/budget.md).
 *
 * Each instance counts what it granted to every team (cumulative, monotonic) and publishes the counters in the lease
 * record it writes at every renewal. When it reads the row, it takes the growth of the other instances' counters
 * since it last saw them, and the fair-share gate adds that to its own count, at no extra storage cost.
 *
 * Which grants count elsewhere: only those of instances that could not divide tokens between teams, because no other
 * team had a job waiting there (LeaseRecord.solo: uncontested grants). An instance that held several teams' jobs
 * (an arbiter: most of its last grants contested) divides its tokens between them itself, and makes up for its own
 * occasional uncontested grants in its own tags; if every instance also corrected for those, they would all correct
 * the same stale difference at once, a lease later, and the fleet would swing from one team to the other. A team
 * whose jobs sit at one instance of four gets its share from the instances that hold its jobs and can favour it:
 * the arbiters (the live peers that are, and this one) split the correction, each counting 1 / arbiters of what the
 * others granted.
 *
 * Counters rather than rates: a renewal that is missed, late or conflicting loses nothing, since the next one carries
 * the difference. An instance seen for the first time sets a baseline (its past is not counted twice by instances
 * that joined later). A record without `solo` (an instance of an older version) counts as uncontested. Pure; time is a
 * parameter.
 */
import type { LeaseRecord } from './window';

/** Most teams one lease record carries (the budget row is one Table entity; its size is bounded). */
export const MAX_PUBLISHED_TEAMS = 8;
/** A team nothing was granted to for this long is no longer published, ms. */
const PUBLISH_FOR_MS = 5 * 60_000;
/** An instance not seen in the row for this long is forgotten (its next record sets a new baseline), ms. */
const FORGET_PEER_MS = 10 * 60_000;

/** What a lease record carries for the ledger. */
export type PublishedGrants = Pick<LeaseRecord, 'teams' | 'solo'>;

interface Counter {
  total: number;
  solo: number;
}

interface Peer {
  seenAt: number;
  counters: Map<string, Counter>;
  /** Its last grants that we saw grow were contested: it divides tokens between teams itself. */
  arbiter: boolean;
  /** The lease record last read, and when it was granted (epoch ms). */
  leaseId: string;
  publishedAt: number;
}

/** Uncontested tokens another instance granted a team between two of its renewals (this instance's part of them). */
export interface PeerGrant {
  team: string;
  tokens: number;
  /** The renewals that bound when they were granted, epoch ms. */
  from: number;
  to: number;
}

export class TeamLedger {
  private readonly mine = new Map<string, Counter & { lastAt: number }>();
  private readonly peers = new Map<string, Peer>();
  private pending: PeerGrant[] = [];

  /** This instance granted `tokens` to `team`; `contested`: another team had a job waiting here then. */
  record(team: string, tokens: number, now: number, contested = false): void {
    const t = this.mine.get(team) ?? { total: 0, solo: 0, lastAt: now };
    t.total += tokens;
    if (!contested) t.solo += tokens;
    t.lastAt = now;
    this.mine.set(team, t);
  }

  /** Counters for this instance's next lease record: the teams granted to most recently, at most MAX_PUBLISHED_TEAMS. */
  publish(now: number): PublishedGrants {
    const recent = [...this.mine].filter(([, t]) => now - t.lastAt <= PUBLISH_FOR_MS);
    if (recent.length === 0) return {};
    recent.sort((a, b) => b[1].lastAt - a[1].lastAt);
    const top = recent.slice(0, MAX_PUBLISHED_TEAMS);
    return {
      teams: Object.fromEntries(top.map(([team, t]) => [team, Math.round(t.total)])),
      solo: Object.fromEntries(top.map(([team, t]) => [team, Math.round(t.solo)])),
    };
  }

  /** Reads the other instances' counters from a row just read or written (`slotMs`: the row's slot width). */
  absorb(leases: readonly LeaseRecord[], self: string, now: number, slotMs: number): void {
    const grown: Array<[Peer, Map<string, number>, number]> = [];
    for (const lease of leases) {
      if (lease.owner === self || !lease.teams) continue;
      const known = this.peers.get(lease.owner);
      const publishedAt = lease.from * slotMs;
      if (known?.leaseId === lease.id) {
        known.seenAt = now;
        continue;
      }
      const seen = countersOf(lease);
      if (!known) {
        this.peers.set(lease.owner, { seenAt: now, counters: seen, arbiter: false, leaseId: lease.id, publishedAt });
        continue;
      }
      const since = known.publishedAt;
      Object.assign(known, { seenAt: now, leaseId: lease.id, publishedAt: Math.max(publishedAt, known.publishedAt) });
      let contested = 0;
      let soloGrowth = 0;
      const solo = new Map<string, number>();
      for (const [team, c] of seen) {
        const before = known.counters.get(team) ?? { total: 0, solo: 0 };
        const total = Math.max(0, c.total - before.total);
        const alone = Math.min(total, Math.max(0, c.solo - before.solo));
        contested += total - alone;
        soloGrowth += alone;
        if (alone > 0) solo.set(team, alone);
        known.counters.set(team, { total: Math.max(c.total, before.total), solo: Math.max(c.solo, before.solo) });
      }
      if (contested > 0 || soloGrowth > 0) known.arbiter = contested > soloGrowth;
      // An arbiter's own uncontested grants (the other teams' jobs were away a moment) it makes up for itself.
      if (solo.size > 0 && !known.arbiter) grown.push([known, solo, since]);
    }
    for (const [owner, p] of this.peers) if (now - p.seenAt > FORGET_PEER_MS) this.peers.delete(owner);
    // The instances that will correct for these grants: this one and every live peer that divides tokens itself.
    const live = new Set(leases.map((l) => l.owner));
    let arbiters = 1;
    for (const [owner, p] of this.peers) if (owner !== self && p.arbiter && live.has(owner)) arbiters += 1;
    for (const [peer, solo, since] of grown) for (const [team, n] of solo) this.pending.push({ team, tokens: n / arbiters, from: since, to: peer.publishedAt });
  }

  /** This instance's part of what other instances granted, uncontested, that it has not taken yet. */
  take(): readonly PeerGrant[] | undefined {
    if (this.pending.length === 0) return undefined;
    const taken = this.pending;
    this.pending = [];
    return taken;
  }
}

/** A record's counters; without `solo` (an older version) every grant counts as uncontested. */
function countersOf(lease: LeaseRecord): Map<string, Counter> {
  const out = new Map<string, Counter>();
  for (const [team, total] of Object.entries(lease.teams ?? {})) out.set(team, { total, solo: lease.solo ? (lease.solo[team] ?? 0) : total });
  return out;
}
