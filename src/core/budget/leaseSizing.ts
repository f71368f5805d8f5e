/**
 * Sizing of a lease (sharedBudget.ts takes one per renewal): its length, its weight among the live leases, what it
 * wants per slot, and what it carries from the old lease. Pure but for two notes in the deployment state; time is a
 * parameter. Terms (hungry, demand-limited, tail, carry): docs/design/budget.md.
 */
import type { DeploymentState } from './deploymentState';
import type { PrioritySettings } from './lease';
import { waitingTokens } from './waitingLine';
import { seatsFor } from './seats';
import { REQUEST_FOLLOW, type BudgetRow, type GrantRequest, type LeaseRecord, type Limits } from './window';

/** What the instance's lease settings say (SharedBudgetOptions). */
export interface SizingSettings {
  owner: string;
  prio: PrioritySettings;
  leaseMs: number;
  minLeaseMs: number;
  jobsPerLease: number;
}

/** Why the lease is taken now. */
export interface LeaseAsk {
  /** Tokens of the job that asks (or of the head of its line, waitingLine.ts): the first slot makes room for them. */
  pendingTokens: number;
  /** Hungry whatever the recent use: an early renewal (the lease turned out too small, or an interactive job waits). */
  wantAll: boolean;
  /** pendingTokens are an interactive job's (see BudgetPolicy.interactiveReserve). */
  interactive: boolean;
}

/** Admissions counted for an instance's recent pace, ms. */
export const RATE_WINDOW_MS = 20_000;
/**
 * The tail, the end of a drain (inDrainEnd): fewer than TAIL_ARRIVALS as many new jobs reached the instance as it
 * admitted in the last TAIL_WINDOW_MS (its in-flight work shrinks: the queue has run dry for it), and the work waiting
 * fleet-wide, as the leases' weights tell it, would be spent at the fleet's pace within TAIL_HORIZON leases. The window
 * is as long as the rate window: a shorter one also takes the gaps in a steady stream of small jobs for a drain's end.
 */
export const TAIL_WINDOW_MS = RATE_WINDOW_MS;
const TAIL_ARRIVALS = 0.5;
const TAIL_HORIZON = 1.5;

/** A lease alone on the row covers at most this many jobs at its pace, and lasts between minLeaseMs and
 *  ALONE_MAX_MS, once no other instance has been seen on the row for ALONE_QUIET_MS: see sizeLease. */
export const ALONE_JOBS = 10;
export const ALONE_MAX_MS = 3_000;
export const ALONE_QUIET_MS = 10_000;

/** Waiting tokens per unit of lease weight, and the most units counted (a hold is bounded by the host's queue
 *  concurrency anyway). */
const DEMAND_WEIGHT_TOKENS = 1_000;
const MAX_DEMAND_WEIGHT = 256;

/**
 * Sizes the next lease of this instance on a fresh copy of the row: how long, how heavy, how much it wants, and what
 * it carries from the old one. Notes in `st` whether the lease is weighted for interactive demand and whether it is
 * demand-limited (sized by recent use rather than by the fair share).
 */
export function sizeLease(st: DeploymentState, row: BudgetRow, lim: Limits, now: number, ask: LeaseAsk, settings: SizingSettings, id: string): GrantRequest {
  const { pendingTokens, wantAll, interactive } = ask;
  const recent = st.admitted.filter(([t]) => t >= now - RATE_WINDOW_MS);
  const span = recent.length > 0 ? Math.max(lim.slotMs * 4, now - recent[0]![0]) : 0;
  const jobRate = recent.length >= 3 ? recent.length / span : 0; // jobs per ms
  // Weight: interactive demand doubles it, and it grows with the work waiting here, so that the slots nobody has
  // reserved yet are shared by backlog, not by head count. Instances holding more work get more of the pace and
  // the fleet finishes together; with equal shares, the one left holding the last jobs would drain them at its
  // share of the quota while the others' shares went unused until their next renewal.
  st.leaseForInteractive = now - st.demand.lastInteractiveAt <= settings.prio.interactiveMemoryMs;
  // Jobs of an owed team (behind the others, as the fair-share gate sees it) count twice: a team whose last jobs sit
  // at one instance gets its share only if that instance gets more of the pace.
  const weight = (st.leaseForInteractive ? 2 : 1) * Math.round(clamp(waitingTokens(st.waiting, now, true) / DEMAND_WEIGHT_TOKENS, 1, MAX_DEMAND_WEIGHT) * 10) / 10;
  const others = row.leases.filter((l) => l.owner !== settings.owner && l.until >= now && !l.oneJob);
  // Alone on the row, a lease stays short: an instance that starts meanwhile would otherwise get nothing until it
  // ends (and an instance whose lease lapsed a moment ago, with jobs still waiting, gets nothing until then). Renewing
  // alone skips the read, so this costs one write per short lease. Short is minLeaseMs while other instances come and
  // go (one was seen on the row in the last ALONE_QUIET_MS, or this instance has just started); on a row that has been
  // this instance's alone for longer, the time of ALONE_JOBS jobs at this pace, up to ALONE_MAX_MS, so that a lone
  // busy holder does not write once per job or two.
  // A single seat for jobs this size (window.ts seatsFor): nobody else can join, no reason to stay short when alone.
  const single = seatsFor(lim, st.typicalCharge || pendingTokens, settings.leaseMs) === 1;
  const alone = others.length === 0 && !single;
  // No longer than the seat's part of the row holds (window.ts maxLeaseSlots).
  const longest = Math.min(settings.leaseMs, lim.maxLeaseSlots * lim.slotMs);
  const quiet = now - st.othersSeenAt >= ALONE_QUIET_MS;
  const upTo = !alone ? longest : quiet ? clamp(ALONE_JOBS / Math.max(jobRate, Number.MIN_VALUE), settings.minLeaseMs, Math.min(ALONE_MAX_MS, longest)) : settings.minLeaseMs;
  let leaseMs = jobRate > 0 ? clamp(settings.jobsPerLease / jobRate, settings.minLeaseMs, upTo) : settings.minLeaseMs;
  const turnedAway = now - st.lastDeniedAt <= Math.max(leaseMs, settings.minLeaseMs * 2);
  const hungry = wantAll || turnedAway || recent.length < 3;
  // The tail, by this instance's own count (its record says so: `tail`), or a peer's: an instance that fetched jobs
  // after the others ran dry would otherwise take a long lease sized by their stale weights, and drain the last jobs
  // at its small share while the others' shares came free.
  const tail = hungry && !alone && inDrainEnd(st, lim, now, others, recent, leaseMs);
  if (tail || (hungry && !alone && st.waiting.size > 0 && others.some((l) => l.tail))) leaseMs = settings.minLeaseMs;
  const recentTokens = recent.reduce((sum, [, n]) => sum + n, 0);
  const tokenRate = recentTokens / Math.max(1, span);
  st.demandLimited = !hungry;
  const carry = st.lease?.unspent(now) ?? { tokens: 0, requests: 0 };
  const tokensPerRequest = recent.length > 0 ? recentTokens / recent.length : Math.max(1, pendingTokens);
  // The old lease's accrued, unused allowance moves into the new lease's first slot, so it is spent rather than lost
  // at every renewal (and a burst after a quiet spell fits). Capped at a tenth of the pacing room (or two typical
  // calls): a request-bound instance, which leaves most tokens unused, must not take the whole room for tokens it
  // will not spend, or its next slots get no tokens and so no requests.
  const firstTokens = Math.max(pendingTokens, Math.min(carry.tokens, Math.max(2 * tokensPerRequest, 0.1 * lim.tokensPace)));
  // Carried requests follow the carried tokens, as slices do: carried whole, an instance whose calls are fewer than
  // its request slices would roll the surplus into every next lease and hold most of the 10 s request window while
  // the others, with tokens to spend, get a few requests each.
  const firstRequests = Math.max(1, Math.min(carry.requests, 1 + (REQUEST_FOLLOW * firstTokens) / Math.max(1, tokensPerRequest)));
  return {
    id,
    owner: settings.owner,
    now,
    until: now + leaseMs,
    weight,
    tail,
    ...st.teams.publish(now),
    // An instance's first lease takes only its share of the slots: with an idle minute behind them, the first
    // leases of a starting fleet could otherwise each reserve the whole pace and spend the pacing window's room
    // between them in two seconds, leaving nothing for anyone for the rest of it.
    shareOnly: !st.lease && st.admitted.length === 0,
    interactive,
    want: hungry
      ? { firstTokens, firstRequests, tokensPerRequest, tokensPerSlot: Number.POSITIVE_INFINITY, requestsPerSlot: Number.POSITIVE_INFINITY }
      : { firstTokens, firstRequests, tokensPerRequest, tokensPerSlot: 1.5 * tokenRate * lim.slotMs, requestsPerSlot: 1.5 * jobRate * lim.slotMs },
  };
}

/**
 * The tail, the end of a drain: the jobs left are held by the instances, which run out one by one and give back the
 * rest of their leases (watchIdle). A long lease sees what they gave back only at its next renewal, so there, leases
 * are short.
 */
function inDrainEnd(st: DeploymentState, lim: Limits, now: number, others: readonly LeaseRecord[], recent: ReadonlyArray<[number, number]>, leaseMs: number): boolean {
  if (st.waiting.size === 0) return false;
  const admittedLately = recent.filter(([t]) => t >= now - TAIL_WINDOW_MS).length;
  const arrived = st.arrivals.filter((t) => t >= now - TAIL_WINDOW_MS).length;
  if (admittedLately < 3 || arrived >= TAIL_ARRIVALS * admittedLately) return false;
  const fleetWaiting = waitingTokens(st.waiting, now) + others.reduce((n, l) => n + l.weight * DEMAND_WEIGHT_TOKENS, 0);
  return fleetWaiting / (lim.tokensPerSlot / lim.slotMs) < TAIL_HORIZON * leaseMs;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
