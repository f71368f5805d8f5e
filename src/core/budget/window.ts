/**
 * The shared budget row of one deployment and the arithmetic on it: window sums, granting, settling (reconciling with the service: reconcile.ts).
 * Pure: no I/O, time is a parameter. Slots, windows, leases and pacing: docs/design/budget.md.
 *
 * Why this shape:
 * - The service counts tokens over a sliding 60 s window and requests over sliding 10 s and 60 s windows, and
 *   charges at arrival. A token bucket (capacity + 60 s of refill) over-admits at start, so the row keeps what the
 *   service keeps: per-slot sums of the last minute, checked in every window a new reservation can fall into. A
 *   window is ceil((60 s + transitMs) / slotMs) + 1 slots, covering slot rounding and the time between admission and
 *   arrival; the price is (slotMs + transitMs) / 60 s ≈ 1.25 % of TPM at the defaults.
 * - A holder may spend a slot's slice in that slot or any later one up to `until` (so a large job can use several
 *   slots' worth), never earlier. An outstanding slice therefore counts in every window that overlaps [slot, until]:
 *   conservative, and it only inflates windows ending ~60 s ahead, which are nearly empty. A crashed holder's lease is
 *   settled at its `until` slot, the latest moment it could have been spent, so the fleet never over-admits while
 *   leases change hands.
 * - Pacing: no slice exceeds the even pace, and reservations in any pacing window stay under its share of the TPM ×
 *   (1 + paceBurst), so admissions are spread over the minute instead of spent at its start. The 60 s check stays
 *   the hard limit.
 * - Requests carry no safety factor (they are counted exactly); tokens get `safety` because prompt counts are
 *   estimates.
 */

/** One lease as the shared row records it. */
export interface LeaseRecord {
  id: string;
  /** The holder: the instance that took it. */
  owner: string;
  /** First slot index with a slice. */
  from: number;
  /** Last moment the holder may spend (epoch ms). */
  until: number;
  /** Tokens reserved per slot from `from`. */
  tokens: number[];
  /** Requests reserved per slot from `from` (fractions allowed; a call needs a whole one cumulated). */
  requests: number[];
  /** Share weight: the work waiting at the holder (units of 1,000 tokens, 1–256), doubled while it has interactive demand. */
  weight: number;
  /** Tokens the holder has granted per team at this deployment, cumulative (teamLedger.ts; fleet-wide fair share). */
  teams?: Record<string, number>;
  /** The part of `teams` granted while no other team had a job waiting at the holder (teamLedger.ts). */
  solo?: Record<string, number>;
  /** The holder is at its tail, the end of a drain (leaseSizing.ts): its lease is short, and so are its peers'. */
  tail?: boolean;
  /** A one-job lease: an interactive job's charge at an instance without a seat (oneJobSeatFree). Takes no seat. */
  oneJob?: boolean;
}

/** The shared state of one deployment's budget. */
export interface BudgetRow {
  /** Slot index of tokens[0] and requests[0]. */
  base: number;
  /** Tokens actually spent (or settled conservatively) per slot. */
  tokens: number[];
  /** Requests actually sent (or settled conservatively) per slot. */
  requests: number[];
  leases: LeaseRecord[];
  /** No instance sends to the deployment before this (epoch ms); set from a 429's Retry-After. */
  pauseUntil: number;
}

export interface BudgetPolicy {
  /** Accounting slot width, ms. @default 250 */
  slotMs: number;
  /** Share of TPM the fleet may charge in any 60 s, 0–1. @default 0.99 */
  safety: number;
  /** Admission-to-arrival time (the worker renews its claim on the job in between) plus clock skew between instances
   *  that windows absorb, ms. @default 500 */
  transitMs: number;
  /** Pacing window, ms: the room a bucket would have. Slices stay at the even pace; what a lease accrued and could not
   *  use (no waiting job fitted) is carried into the next lease within this room instead of being lost. @default 10000 */
  paceWindowMs: number;
  /** How far above the even pace a pacing window may go, 0–1. @default 0.1 */
  paceBurst: number;
  /**
   * Further room in a pacing window, as a share of its even pace, that only an interactive job's first-slot tokens may
   * take: however the leases have divided the pace, an interactive job refused at a starved instance finds tokens
   * at the next renewal instead of waiting for its instance's share to accrue. The 60 s limit still binds. @default 0.05
   */
  interactiveReserve: number;
  /** Quota per lease holder (seat): a deployment has ceil(TPM / tpmPerSeat) seats, between minSeats and maxSeats.
   *  Each seat's share of the pace covers several jobs per lease however large the fleet. @default 60000 */
  tpmPerSeat: number;
  /** One-job leases the row holds at once besides the seats: an interactive job at an instance without a seat takes
   *  one rather than wait for a seat. @default 4 */
  oneJobSeats: number;
  /** @default 2 (a holder that crashes does not stop the deployment for a minute) */
  minSeats: number;
  /** At most this many holders per deployment: bounds the row's size and its writers. @default 16 */
  maxSeats: number;
}

export const DEFAULT_BUDGET_POLICY: BudgetPolicy = { slotMs: 250, safety: 0.99, transitMs: 500, paceWindowMs: 10_000, paceBurst: 0.1, interactiveReserve: 0.05, oneJobSeats: 4, tpmPerSeat: 60_000, minSeats: 2, maxSeats: 16 };

/**
 * The `leases` property is at most this long, chars. Table Storage caps a string property at 64 KiB (32,768 UTF-16
 * characters): every seat's record is built within an equal part of this (recordMaxChars), so the row stays below
 * the cap by construction, with a margin, however many instances ask.
 */
export const LEASES_MAX_CHARS = 22_400;
/** A one-job lease spans at most this many slots (2 s). */
const ONE_JOB_SLOTS = 8;
/** A one-job lease's record, at most, chars: a few slots, no team counters. */
export const ONE_JOB_RECORD_MAX_CHARS = 400;
/** Longest lease in slots whatever the seat count (60 s at 250 ms slots). */
const MAX_LEASE_SLOTS = 241;
/** What a record needs beyond its slices: ids, times, weight, keys, and at least a few teams' counters, chars. */
const RECORD_FIXED_CHARS = 800;
/** Worst-case chars of one slot's slices in JSON: tokens up to 6 digits, requests to 3 decimals, two commas. */
const SLICE_MAX_CHARS = 14;
/** The pacing window's room beyond its even share, in typical calls (at least its burst; limitsFor). */
const PACE_CALL_ROOM = 1.2;

/** Limits of one deployment, per minute. */
export interface DeploymentLimits {
  tpm: number;
  rpm: number;
}

/** Window lengths (in slots) and limits derived from a policy and a deployment's quota. */
export interface Limits {
  slotMs: number;
  /** Slots in a 60 s window, a 10 s window and a pacing window. */
  w60: number;
  w10: number;
  wPace: number;
  tokens60: number;
  /** What a pacing window may hold: its share of tokens60 × (1 + paceBurst). */
  tokensPace: number;
  /** What a pacing window may hold once an interactive job's first-slot tokens are in it. */
  tokensPaceInteractive: number;
  requests60: number;
  requests10: number;
  /** Even-pace reservation per slot, fleet-wide. */
  tokensPerSlot: number;
  requestsPerSlot: number;
  paceBurst: number;
  /** Lease holders the row admits at once (see BudgetPolicy.tpmPerSeat). */
  seats: number;
  /** One-job leases the row holds at once besides the seats. */
  oneJobSeats: number;
  /** Most chars one seat's lease record may take (its part of LEASES_MAX_CHARS, once the one-job leases' is set aside). */
  recordMaxChars: number;
  /** Longest lease, in slots, whose worst-case record fits recordMaxChars. */
  maxLeaseSlots: number;
}

/** `typicalCharge`: the tokens of a typical call to the deployment (0: unknown), for the pacing window's room. */
export function limitsFor(d: DeploymentLimits, p: BudgetPolicy, typicalCharge = 0): Limits {
  const w60 = Math.ceil((60_000 + p.transitMs) / p.slotMs) + 1;
  const w10 = Math.ceil((10_000 + p.transitMs) / p.slotMs) + 1;
  const wPace = Math.max(1, Math.round(p.paceWindowMs / p.slotMs));
  const tokens60 = Math.floor(d.tpm * p.safety);
  const requests10 = Math.ceil(d.rpm / 6);
  const seats = Math.max(1, Math.min(p.maxSeats, Math.max(p.minSeats, Math.ceil(d.tpm / p.tpmPerSeat))));
  const oneJobSeats = Math.max(0, p.oneJobSeats ?? 0);
  const recordMaxChars = Math.floor((LEASES_MAX_CHARS - oneJobSeats * (ONE_JOB_RECORD_MAX_CHARS + 1)) / seats) - 1;
  // The pacing window admits whole calls: it holds its even share of the minute and, beyond the burst, at least one
  // typical call more (PACE_CALL_ROOM of one, for calls larger than the typical), so that calls that are a large part
  // of it (a small deployment, 20 calls a minute) still pass at the pace rather than one per window.
  const paceTokens = (tokens60 * p.paceWindowMs) / 60_000;
  const tokensPace = Math.max(paceTokens * (1 + p.paceBurst), paceTokens + PACE_CALL_ROOM * Math.max(0, typicalCharge));
  return {
    seats,
    oneJobSeats,
    recordMaxChars,
    maxLeaseSlots: Math.max(8, Math.min(MAX_LEASE_SLOTS, Math.floor((recordMaxChars - RECORD_FIXED_CHARS) / SLICE_MAX_CHARS))),
    slotMs: p.slotMs,
    w60,
    w10,
    wPace,
    tokens60,
    tokensPace,
    tokensPaceInteractive: tokensPace + paceTokens * (p.interactiveReserve ?? 0),
    requests60: d.rpm,
    requests10,
    tokensPerSlot: tokens60 / w60,
    requestsPerSlot: Math.min(requests10 / w10, d.rpm / w60),
    paceBurst: p.paceBurst,
  };
}

export function slotOf(t: number, slotMs: number): number {
  return Math.floor(t / slotMs);
}

export function emptyRow(now: number, slotMs: number): BudgetRow {
  return { base: slotOf(now, slotMs), tokens: [], requests: [], leases: [], pauseUntil: 0 };
}

type Resource = 'tokens' | 'requests';

/** How far back an observation may have been measured before it was reported (response latency), ms. */
export const OBSERVATION_LAG_MS = 5_000;
/**
 * Observations older than this at a renewal are not reconciled, ms. The row keeps slots back to what the windows of
 * the oldest one reach (pruneRow): a window cut short would read as drift and charge the fleet for nothing.
 */
export const OBSERVATION_MAX_AGE_MS = 10_000;

/** How long after `until` a lease waits for its holder's exact report before anyone settles it, ms. */
export const SETTLE_GRACE_MS = 10_000;

/** Adds to a settled slot, growing the arrays as needed (slots before `base` are already out of every window). */
export function addSettled(row: BudgetRow, slot: number, tokens: number, requests: number): void {
  if (slot < row.base) return;
  const i = slot - row.base;
  while (row.tokens.length <= i) {
    row.tokens.push(0);
    row.requests.push(0);
  }
  row.tokens[i]! += tokens;
  row.requests[i]! += requests;
}

/**
 * Settles leases whose holder did not report by `until` + SETTLE_GRACE_MS (crashed or stalled): their whole
 * reservation is counted at the `until` slot. Drops settled slots no window or observation reaches. Mutates `row`.
 */
export function pruneRow(row: BudgetRow, now: number, lim: Limits): void {
  const kept: LeaseRecord[] = [];
  for (const lease of row.leases) {
    // A live holder reports exactly even a little late; until then its slices count as outstanding, which for
    // every window still ahead is the same as settling them at `until`.
    if (lease.until + SETTLE_GRACE_MS >= now) {
      kept.push(lease);
      continue;
    }
    addSettled(row, slotOf(lease.until, lim.slotMs), sum(lease.tokens), sum(lease.requests));
  }
  row.leases = kept;
  // Keep what a reconciled observation's windows reach back to (see reconcile), not just the last minute.
  const keepFrom = slotOf(now - OBSERVATION_LAG_MS - OBSERVATION_MAX_AGE_MS, lim.slotMs) - lim.w60 - 1;
  if (keepFrom > row.base) {
    const drop = Math.min(keepFrom - row.base, row.tokens.length);
    row.tokens.splice(0, drop);
    row.requests.splice(0, drop);
    row.base = keepFrom;
  }
  while (row.tokens.length > 0 && row.tokens[row.tokens.length - 1] === 0 && row.requests[row.requests.length - 1] === 0) {
    row.tokens.pop();
    row.requests.pop();
  }
}

/** What a holder spent in one slot of its lease. */
export interface SlotSpend {
  slot: number;
  tokens: number;
  requests: number;
}

/**
 * The holder's report: its lease leaves the row and what it really spent goes into the settled slots.
 * Returns false if the lease was no longer there (already settled at `until` by another instance).
 */
export function reportLease(row: BudgetRow, leaseId: string, spends: readonly SlotSpend[]): boolean {
  const index = row.leases.findIndex((l) => l.id === leaseId);
  if (index < 0) return false;
  row.leases.splice(index, 1);
  for (const s of spends) addSettled(row, s.slot, s.tokens, s.requests);
  return true;
}

/**
 * Sum over the window of `w` slots ending at each slot k in [k0, k1]. Outstanding slices count in every window
 * overlapping [slot, until] when `extended` (hard limits), or at their own slot only (pacing).
 */
export function windowTotals(row: BudgetRow, resource: Resource, w: number, k0: number, k1: number, slotMs: number, extended: boolean): Float64Array {
  const n = k1 - k0 + 1;
  const out = new Float64Array(Math.max(0, n));
  const settled = row[resource];
  // Prefix sums of settled values (index i ↔ slot base + i).
  const prefix = new Float64Array(settled.length + 1);
  for (let i = 0; i < settled.length; i++) prefix[i + 1] = prefix[i]! + settled[i]!;
  const settledUpTo = (slot: number) => prefix[Math.max(0, Math.min(settled.length, slot - row.base + 1))]!;
  for (let i = 0; i < n; i++) {
    const k = k0 + i;
    out[i] = settledUpTo(k) - settledUpTo(k - w);
  }
  for (const lease of row.leases) {
    const values = lease[resource];
    const cum = new Float64Array(values.length + 1);
    for (let j = 0; j < values.length; j++) cum[j + 1] = cum[j]! + values[j]!;
    const upTo = (slot: number) => cum[Math.max(0, Math.min(values.length, slot - lease.from + 1))]!;
    const untilSlot = slotOf(lease.until, slotMs);
    for (let i = 0; i < n; i++) {
      const k = k0 + i;
      if (extended) {
        if (k - w + 1 > untilSlot) continue;
        out[i]! += upTo(k);
      } else {
        out[i]! += upTo(k) - upTo(k - w);
      }
    }
  }
  return out;
}

/** Requests reserved per typical call's worth of tokens: room for a run of small calls, while a token-bound holder
 *  does not hold request budget it will not use. */
export const REQUEST_FOLLOW = 1.5;

/** What an instance asks for when it takes a lease. Infinity = as much as the limits and fair share allow. */
export interface LeaseWant {
  /** Extra tokens wanted in the first slot (a job that is waiting now, or the old lease's unspent allowance). */
  firstTokens: number;
  /** Extra requests wanted in the first slot. */
  firstRequests: number;
  tokensPerSlot: number;
  requestsPerSlot: number;
  /** Typical charge of one call: request slices follow token slices at REQUEST_FOLLOW calls per this many tokens,
   *  so a token-bound instance does not hoard the request budget. */
  tokensPerRequest: number;
}

/** `teams`, `solo` (teamLedger.ts), `tail` (leaseSizing.ts) and `oneJob` are published with the lease as they are. */
export interface GrantRequest extends Pick<LeaseRecord, 'teams' | 'solo' | 'tail' | 'oneJob'> {
  id: string;
  owner: string;
  now: number;
  until: number;
  weight: number;
  want: LeaseWant;
  /** Take at most the weighted share of every slot, even slots every other lease already covers (a first lease). */
  shareOnly?: boolean;
  /** want.firstTokens is for an interactive job: the first slot may use the pacing window's interactive reserve. */
  interactive?: boolean;
}

/**
 * Reserves slices for [now, until] greedily, slot by slot, under every window limit and a fair share: for a slot
 * that some other live lease has not reached yet, take at most this instance's weighted share of the even pace
 * (the others will come for theirs); for slots every other lease already covers, take what is left. Adds the
 * lease to the row and returns it (its slices may be all zero).
 */
export function grantLease(row: BudgetRow, req: GrantRequest, lim: Limits): LeaseRecord {
  const first = slotOf(req.now, lim.slotMs);
  const maxSlots = req.oneJob ? ONE_JOB_SLOTS : lim.maxLeaseSlots;
  const last = Math.min(first + maxSlots - 1, Math.max(first, slotOf(req.until, lim.slotMs)));
  const until = Math.min(req.until, (last + 1) * lim.slotMs - 1);
  const k1 = last + lim.w60 - 1;
  const tok60 = windowTotals(row, 'tokens', lim.w60, first, k1, lim.slotMs, true);
  const tokPace = windowTotals(row, 'tokens', lim.wPace, first, k1, lim.slotMs, false);
  const req60 = windowTotals(row, 'requests', lim.w60, first, k1, lim.slotMs, true);
  const req10 = windowTotals(row, 'requests', lim.w10, first, k1, lim.slotMs, true);
  // One-job leases take their tokens from the headroom and no part of the pace: they neither share nor cover slots.
  const others = row.leases.filter((l) => l.owner !== req.owner && l.until >= req.now && !l.oneJob);
  const totalWeight = req.weight + others.reduce((s, l) => s + l.weight, 0);
  const share = req.weight / totalWeight;
  const lease: LeaseRecord = { id: req.id, owner: req.owner, from: first, until, tokens: [], requests: [], weight: req.weight, ...(req.teams ? { teams: req.teams, solo: req.solo } : {}), ...(req.tail ? { tail: true } : {}), ...(req.oneJob ? { oneJob: true } : {}) };
  const headroom = (arr: Float64Array, limit: number, from: number, to: number) => {
    let room = Number.POSITIVE_INFINITY;
    for (let k = from; k <= to; k++) room = Math.min(room, limit - arr[k - first]!);
    return Math.max(0, room);
  };
  for (let j = first; j <= last; j++) {
    const uncovered = req.shareOnly || others.some((l) => l.from + l.tokens.length - 1 < j);
    // Spread, don't lump: a slice is at most the even pace even when nobody else wants the slot. (The pacing
    // window's burst is room for carried allowance only: slices above the pace would fill the 60 s window early and
    // leave a gap when it slides.)
    const capTokens = lim.tokensPerSlot * (uncovered ? share : 1);
    const capRequests = lim.requestsPerSlot * (1 + lim.paceBurst) * (uncovered ? share : 1);
    const wantTokens = Math.min(req.want.tokensPerSlot, capTokens) + (j === first ? req.want.firstTokens : 0);
    const roomTokens = Math.min(headroom(tok60, lim.tokens60, j, k1), headroom(tokPace, lim.tokensPace, j, Math.min(k1, j + lim.wPace - 1)));
    // The pacing window's interactive reserve is for the waiting job's tokens only, never for the slices or the batch
    // jobs after it.
    const reserve = req.interactive && j === first ? Math.min(req.want.firstTokens, headroom(tokPace, lim.tokensPaceInteractive, j, Math.min(k1, j + lim.wPace - 1))) : 0;
    const tokens = Math.floor(Math.min(wantTokens, Math.max(roomTokens, Math.min(reserve, headroom(tok60, lim.tokens60, j, k1)))));
    const roomRequests = Math.min(headroom(req60, lim.requests60, j, k1), headroom(req10, lim.requests10, j, k1));
    const followTokens = (REQUEST_FOLLOW * tokens) / Math.max(1, req.want.tokensPerRequest);
    const wantRequests = Math.min(req.want.requestsPerSlot, capRequests, followTokens) + (j === first ? req.want.firstRequests : 0);
    const requests = Math.floor(Math.min(wantRequests, roomRequests) * 1000) / 1000;
    lease.tokens.push(tokens);
    lease.requests.push(requests);
    for (let k = j; k <= k1; k++) {
      tok60[k - first]! += tokens;
      req60[k - first]! += requests;
      req10[k - first]! += requests;
    }
    for (let k = j; k <= Math.min(k1, j + lim.wPace - 1); k++) tokPace[k - first]! += tokens;
  }
  row.leases.push(lease);
  return lease;
}

export function sum(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s;
}
