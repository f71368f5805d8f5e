/**
 * Seats: the bounded set of instances that may hold a deployment's budget, one-job leases for interactive jobs at the
 * others, and the size of every record a seat writes. Pure. Why seats, and what an instance beyond them costs:
 * docs/design/budget.md, "Seats and the fleet size".
 */
import { grantLease, ONE_JOB_RECORD_MAX_CHARS, type BudgetRow, type GrantRequest, type LeaseRecord, type Limits } from './window';

/** Grants a lease and fits its record within its part of the row (fitRecord). */
export function grantFitted(row: BudgetRow, req: GrantRequest, lim: Limits): LeaseRecord {
  const lease = grantLease(row, req, lim);
  fitRecord(lease, req.oneJob ? ONE_JOB_RECORD_MAX_CHARS : lim.recordMaxChars, lim.slotMs);
  return lease;
}

/** All or nothing: a one-job lease that cannot hold its job would only keep its tokens from everyone else. */
export function grantOneJob(row: BudgetRow, req: GrantRequest, lim: Limits): LeaseRecord | undefined {
  const lease = grantFitted(row, req, lim);
  if ((lease.tokens[0] ?? 0) >= req.want.firstTokens && (lease.requests[0] ?? 0) >= 1) return lease;
  row.leases.pop();
  return undefined;
}

/**
 * Whether `owner` may hold a lease on the row: it holds one already, or fewer than `seats` others do. Records of
 * crashed holders keep their seat until they are settled (pruneRow, SETTLE_GRACE_MS after their end).
 */
export function hasSeat(row: BudgetRow, owner: string, lim: Limits, seats = lim.seats): boolean {
  const owners = new Set(row.leases.filter((l) => !l.oneJob).map((l) => l.owner));
  return owners.has(owner) || owners.size < seats;
}

/**
 * Seats for jobs of `charge` tokens when leases last at most `leaseMs`: at most lim.seats, and few enough that each
 * seat's part of the pace accrues two such jobs within one lease. Shared finer, no holder would ever accrue a whole
 * job within a lease (a small deployment, large jobs) and the quota would go unused.
 */
export function seatsFor(lim: Limits, charge: number, leaseMs: number): number {
  const perLease = (lim.tokensPerSlot * Math.min(leaseMs, lim.maxLeaseSlots * lim.slotMs)) / lim.slotMs;
  return Math.max(1, Math.min(lim.seats, Math.floor(perLease / (2 * Math.max(1, charge)))));
}

/** Whether the row has room for one more one-job lease. */
export function oneJobSeatFree(row: BudgetRow, lim: Limits): boolean {
  return row.leases.filter((l) => l.oneJob).length < lim.oneJobSeats;
}

/**
 * What an interactive job at an instance without a seat asks for: its charge and one request in the first slot
 * (from the pacing window's interactive reserve if need be), nothing after, for `ms`.
 */
export function oneJobLease(owner: string, id: string, now: number, tokens: number, ms: number): GrantRequest {
  return {
    id,
    owner,
    now,
    until: now + ms,
    weight: 1,
    interactive: true,
    oneJob: true,
    want: { firstTokens: tokens, firstRequests: 1, tokensPerSlot: 0, requestsPerSlot: 0, tokensPerRequest: Math.max(1, tokens) },
  };
}

/**
 * Keeps a record within its part of the row (Limits.recordMaxChars): the slices already fit by construction
 * (maxLeaseSlots); what can overflow is the ledger's team counters, so the smallest are left out of this record
 * (the ledger reads a team missing from one record as unchanged). Mutates `lease`.
 */
export function fitRecord(lease: LeaseRecord, maxChars: number, slotMs: number): void {
  while (JSON.stringify(lease).length > maxChars) {
    const teams = lease.teams && Object.entries(lease.teams);
    if (!teams || teams.length === 0) {
      // Unreachable with the sizes above; never write a row Table Storage would refuse.
      if (lease.tokens.length <= 1) return;
      lease.tokens.pop();
      lease.requests.pop();
      lease.until = Math.min(lease.until, (lease.from + lease.tokens.length) * slotMs - 1);
      continue;
    }
    const [smallest] = teams.reduce((a, b) => (b[1] < a[1] ? b : a));
    delete lease.teams![smallest];
    if (lease.solo) delete lease.solo[smallest];
  }
}
