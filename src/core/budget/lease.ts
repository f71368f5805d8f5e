/**
 * A lease as its holder spends it, and the priority split between interactive and batch jobs. Pure; time is a
 * parameter. Terms (allowance, reserve, floor): docs/design/budget.md.
 *
 * A slot's slice becomes spendable when its slot starts and stays spendable until the lease's `until` (the row
 * accounts for that, see window.ts), so allowance accumulates: A(t) = slices of slots ≤ slot(t).
 *
 * The split, within an instance (across instances, interactive demand doubles the lease's weight):
 * - while interactive demand was seen in the last `interactiveMemoryMs`, batch may spend `batchShare` of what
 *   accrued in the last `reserveWindowMs`, and beyond that only what leaves (1 − batchShare) of it unspent for
 *   interactive (the reserve, never more than interactive spent in the last `reserveSpentMs` plus its next call):
 *   interactive may spend all of it, so when both wait interactive goes first, and what interactive leaves unused is
 *   still batch's;
 * - batch is never starved: once batch has been waiting, interactive may spend at most (1 − floor) of the recent
 *   accrual, the floor growing from `batchFloorMin` to `batchFloorMax` over `batchAgingMs` of waiting.
 * A single call larger than its share still goes when the allowance is there, or it could never run.
 */
import type { JobPriority } from '../jobs';
import { slotOf, type LeaseRecord, type SlotSpend } from './window';

export interface PrioritySettings {
  /** How long one interactive request keeps batch restricted, ms. @default 10000 */
  interactiveMemoryMs: number;
  /** Share of recent accrual batch may use while interactive demand is around, 0–1. @default 0.5 */
  batchShare: number;
  /** "Recent accrual" that the shares apply to, ms. @default 5000 */
  reserveWindowMs: number;
  /** The reserve kept from batch is what interactive work spent in the last this long, plus its next call, ms: a
   *  balance every holder keeps unspent, which the 60 s window counts as spent, so no longer than an interactive
   *  burst needs. @default 2000 */
  reserveSpentMs: number;
  /** Share of recent accrual kept for batch once batch waits, rising from min to max, 0–1. @default 0.1, 0.5 */
  batchFloorMin: number;
  batchFloorMax: number;
  /** Batch waiting time over which the floor rises to its max, ms. @default 30000 */
  batchAgingMs: number;
}

export const DEFAULT_PRIORITY: PrioritySettings = {
  interactiveMemoryMs: 10_000,
  batchShare: 0.5,
  reserveWindowMs: 5_000,
  reserveSpentMs: 2_000,
  batchFloorMin: 0.1,
  batchFloorMax: 0.5,
  batchAgingMs: 30_000,
};

/** What the instance has seen of each priority's demand. */
export interface DemandState {
  lastInteractiveAt: number;
  /** The charge of the last interactive job that asked. */
  lastInteractiveTokens?: number;
  /** When batch started waiting (first denial since its last admission), or undefined. */
  batchWaitingSince?: number;
}

export class HeldLease {
  spentTokens = 0;
  spentRequests = 0;
  private readonly spends = new Map<number, { tokens: number; requests: number; interactive: number; batch: number }>();
  private readonly cumTokens: number[] = [];
  private readonly cumRequests: number[] = [];
  readonly lastSlot: number;

  constructor(
    readonly record: LeaseRecord,
    private readonly slotMs: number,
  ) {
    let t = 0;
    let r = 0;
    for (let j = 0; j < record.tokens.length; j++) {
      t += record.tokens[j]!;
      r += record.requests[j]!;
      this.cumTokens.push(t);
      this.cumRequests.push(r);
    }
    this.lastSlot = record.from + record.tokens.length - 1;
  }

  get id(): string {
    return this.record.id;
  }

  get until(): number {
    return this.record.until;
  }

  /** Total tokens the lease reserved. */
  get totalTokens(): number {
    return this.cumTokens[this.cumTokens.length - 1] ?? 0;
  }

  /** Cumulative slices up to the slot of `t`. */
  allowance(t: number): { tokens: number; requests: number } {
    const i = Math.min(slotOf(t, this.slotMs) - this.record.from, this.cumTokens.length - 1);
    if (i < 0) return { tokens: 0, requests: 0 };
    return { tokens: this.cumTokens[i]!, requests: this.cumRequests[i]! };
  }

  /** Tokens this priority spent in the last `windowMs` before `t`. */
  private recentSpent(t: number, windowMs: number, priority: JobPriority): number {
    const from = slotOf(t - windowMs, this.slotMs);
    const to = slotOf(t, this.slotMs);
    let n = 0;
    for (const [slot, s] of this.spends) if (slot > from && slot <= to) n += s[priority];
    return n;
  }

  /** Whether `priority` is within its share of the recent accrual (see the file comment). */
  private withinShare(t: number, tokens: number, priority: JobPriority, demand: DemandState, p: PrioritySettings): boolean {
    const recent = this.allowance(t).tokens - this.allowance(t - p.reserveWindowMs).tokens;
    const mine = this.recentSpent(t, p.reserveWindowMs, priority) + tokens;
    // What a whole reserve window of this lease accrues: a call too big for its share of that is let through.
    const durationMs = Math.max(this.slotMs, this.record.until - this.record.from * this.slotMs);
    const fullWindow = this.totalTokens * Math.min(1, p.reserveWindowMs / durationMs);
    const share = (s: number) => mine <= s * recent || tokens > s * fullWindow;
    if (priority === 'batch') {
      if (t - demand.lastInteractiveAt > p.interactiveMemoryMs || share(p.batchShare)) return true;
      // Beyond its share, batch may still take what is left over the interactive reserve: capping batch at a share
      // of each refill would leave the rest of the lease unspent. The reserve is what interactive work spent here
      // in the last reserveSpentMs plus its next call, at most (1 − batchShare) of the refill: a steady trickle of
      // small interactive calls must not keep half of every refill unspent (it would be lost at each renewal), and
      // the reserve is a standing balance of every holder, so it covers a burst, not a longer spell.
      const reserve = Math.min((1 - p.batchShare) * recent, this.recentSpent(t, p.reserveSpentMs, 'interactive') + (demand.lastInteractiveTokens ?? 0));
      return this.allowance(t).tokens - this.spentTokens - tokens >= reserve;
    }
    if (demand.batchWaitingSince === undefined) return true;
    const aged = Math.min(1, Math.max(0, t - demand.batchWaitingSince) / p.batchAgingMs);
    return share(1 - (p.batchFloorMin + (p.batchFloorMax - p.batchFloorMin) * aged));
  }

  /** Whether a call charging `tokens` fits at `t`. `anyShare`: the lease was taken for this very call (its tokens
   *  came from the pacing window's interactive reserve), so the split between priorities does not apply to it.
   *  `aheadTokens`: the charge of the job ahead in line, which this call must leave (waitingLine.ts). */
  fits(t: number, tokens: number, priority: JobPriority, demand: DemandState, p: PrioritySettings, anyShare = false, aheadTokens = 0): boolean {
    if (t > this.record.until || slotOf(t, this.slotMs) < this.record.from) return false;
    const a = this.allowance(t);
    return a.requests - this.spentRequests >= 1 && a.tokens - this.spentTokens >= tokens + aheadTokens && (anyShare || this.withinShare(t, tokens, priority, demand, p));
  }

  /** Earliest slot start after `now` within the lease at which the call would fit (nothing else spent), or undefined. */
  nextFit(now: number, tokens: number, priority: JobPriority, demand: DemandState, p: PrioritySettings, aheadTokens = 0): number | undefined {
    for (let j = slotOf(now, this.slotMs) + 1; j <= this.lastSlot; j++) {
      const t = j * this.slotMs;
      if (t > this.record.until) break;
      if (this.fits(t, tokens, priority, demand, p, false, aheadTokens)) return t;
    }
    return undefined;
  }

  /** Whether `tokens` more can still be spent in this lease at all (by its end, nothing else spent). */
  canHold(tokens: number): boolean {
    return this.totalTokens - this.spentTokens >= tokens;
  }

  /** Allowance accrued by `t` and not spent: the carry into the next lease, so a large job is not starved. */
  unspent(t: number): { tokens: number; requests: number } {
    const a = this.allowance(Math.min(t, this.record.until));
    return { tokens: Math.max(0, a.tokens - this.spentTokens), requests: Math.max(0, a.requests - this.spentRequests) };
  }

  spend(t: number, tokens: number, priority: JobPriority): void {
    this.spentTokens += tokens;
    this.spentRequests += 1;
    const slot = slotOf(t, this.slotMs);
    const s = this.spends.get(slot) ?? { tokens: 0, requests: 0, interactive: 0, batch: 0 };
    s.tokens += tokens;
    s.requests += 1;
    s[priority] += tokens;
    this.spends.set(slot, s);
  }

  /** What was really spent, slot by slot, for the report to the shared row. */
  report(): SlotSpend[] {
    return [...this.spends].map(([slot, s]) => ({ slot, tokens: s.tokens, requests: s.requests }));
  }
}
