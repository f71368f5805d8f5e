/**
 * The fleet-wide budget gate: one shared row per deployment (window.ts), leased in slices so that storage sees
 * about one read and one conditional write per lease instead of per job. The algorithm and its terms:
 * docs/design/budget.md.
 *
 * Lifecycle per deployment and instance:
 * - admit(): if the held lease is about to end (or there is none), renew: read the row, settle leases that expired
 *   (crashed holders), report what the old lease really spent per slot, apply pending observations (pause,
 *   drift), reserve a new slice for the next leaseMs, and replace the row with If-Match. Then spend locally.
 * - The lease length adapts so a lease covers about `jobsPerLease` jobs at this instance's pace (between
 *   minLeaseMs and leaseMs): storage transactions per job stay ≈ 2 / jobsPerLease at steady state. (Sizing, weight
 *   and the end of a drain: leaseSizing.ts.)
 * - A lease wants what the instance used recently (×1.5) unless it is hungry (jobs were turned away), then it wants
 *   its fair share plus whatever the other live leases left; a lease that turned out too small for real demand is
 *   renewed early (at most once per `minRenewGapMs`).
 * - observe(): remaining-* headers are kept and reconciled into the row at the next write (no extra write);
 *   a 429 writes pauseUntil into the row at once, so every instance stops at its next write (≤ one lease).
 * - No budget → { granted: false, retryAt } with the earliest moment the job would fit; never throws for quota,
 *   and a storage failure keeps the current lease and answers "retry shortly".
 */
import { randomUUID } from 'node:crypto';
import type { JobPriority } from '../jobs';
import type { Admission, BudgetGate, Claimant, DeploymentRef, QuotaSignal } from './gate';
import { DEFAULT_PRIORITY, HeldLease, type PrioritySettings } from './lease';
import type { BudgetRowStore, StoredBudgetRow } from './store';
import { newDeploymentState, type DeploymentState } from './deploymentState';
import { lineHead, noteRefused, type WaitingJob } from './waitingLine';
import { RATE_WINDOW_MS, sizeLease, TAIL_WINDOW_MS, type SizingSettings } from './leaseSizing';
import type { PeerGrant } from './teamLedger';
import { reconcile } from './reconcile';
import { grantFitted, grantOneJob, hasSeat, oneJobLease, oneJobSeatFree, seatsFor } from './seats';
import {
  DEFAULT_BUDGET_POLICY,
  emptyRow,
  limitsFor,
  OBSERVATION_MAX_AGE_MS,
  pruneRow,
  reportLease,
  sum,
  type BudgetPolicy,
  type BudgetRow,
  type LeaseRecord,
  type Limits,
} from './window';

export interface SharedBudgetOptions {
  store: BudgetRowStore;
  /** This instance's id in lease records. @default a random UUID */
  owner?: string;
  policy?: Partial<BudgetPolicy>;
  priority?: Partial<PrioritySettings>;
  /** Longest lease, ms. Setting `SLUICE_BUDGET_LEASE_MS`. @default 10000 */
  leaseMs?: number;
  /** Shortest lease (and the first one), ms. @default 2000 */
  minLeaseMs?: number;
  /** Jobs a lease should cover at this instance's recent pace. Setting `SLUICE_BUDGET_JOBS_PER_LEASE`. @default 24 */
  jobsPerLease?: number;
  /** Earliest early renewal after the previous one, ms. @default 1000 */
  minRenewGapMs?: number;
  /** Pause applied on a 429 without Retry-After, ms. @default 1000 */
  defaultPauseMs?: number;
  /** Longest wait the worker holds a job in-process (longer ones are parked on the queue), ms. Setting
   *  `SLUICE_HOLD_IN_PROCESS_MS`. @default 30000 */
  holdMs?: number;
  /** Called with storage errors (the gate carries on with its current lease). */
  onError?: (err: unknown) => void;
  /**
   * Runs `fn` after `ms` (real time). When given, a lease that ends without its holder asking again (no more jobs
   * here) is reported just after its end: otherwise the next writer settles it as fully spent SETTLE_GRACE_MS later,
   * and for a minute the fleet is short of what it did not use (the end of a drain). @default none (tests drive
   * time by hand)
   */
  schedule?: (fn: () => void, ms: number) => void;
  /** Current time for scheduled work (admit() and observe() take theirs as arguments). @default Date.now */
  now?: () => number;
  /** Longest back-off of an instance that found every seat taken, ms. @default 20000 */
  seatWaitMaxMs?: number;
  /** Jitter source. @default Math.random */
  random?: () => number;
  /** Diagnostics: one line per row write (SLUICE_BUDGET_DEBUG=1). */
  debug?: (line: string) => void;
}

/** A lease not renewed this long after its end is reported by its idle holder, ms. Releasing sooner, after a few
 *  quiet seconds, would cost more budget writes per job and gain no drain time (watchIdle covers the end of a drain). */
const IDLE_RELEASE_MS = 1_000;
/** A holder nobody has asked anything for this long (no refused job due back either) gives its lease back before
 *  its end when other instances share the deployment, so their next leases get its share (the end of a drain), ms. */
const IDLE_EARLY_RELEASE_MS = 1_500;
/** A refused interactive job told to wait longer than this renews the lease early, weighted for it, ms. */
const INTERACTIVE_RENEW_AFTER_MS = 1_500;
/** At most one such renewal per instance in this long, ms: per time rather than per lease, so that a second
 *  interactive job within one long lease does not wait for that lease to accrue its tokens. */
const INTERACTIVE_RENEW_GAP_MS = 2_000;
const MAX_WRITE_ATTEMPTS = 6;
/** A job refused for want of a seat is handed back after this long (to twice it, jittered), ms. */
const SEAT_HAND_BACK_MS = 1_000;
/** First back-off of an instance that found every seat taken, ms (doubling up to seatWaitMaxMs). */
const SEAT_WAIT_MIN_MS = 1_000;
const MAX_OBSERVATIONS = 4;

export class SharedBudgetGate implements BudgetGate {
  readonly owner: string;
  private readonly store: BudgetRowStore;
  private readonly policy: BudgetPolicy;
  private readonly prio: PrioritySettings;
  private readonly sizing: SizingSettings;
  private readonly minRenewGapMs: number;
  private readonly defaultPauseMs: number;
  private readonly holdMs: number;
  private readonly onError: (err: unknown) => void;
  private readonly debug?: (line: string) => void;
  private readonly schedule?: (fn: () => void, ms: number) => void;
  private readonly now: () => number;
  private readonly seatWaitMaxMs: number;
  private readonly random: () => number;
  private readonly states = new Map<string, DeploymentState>();
  private readonly refs = new Map<string, DeploymentRef>();
  private leaseCounter = 0;

  constructor(options: SharedBudgetOptions) {
    this.store = options.store;
    this.owner = options.owner ?? randomUUID();
    this.policy = { ...DEFAULT_BUDGET_POLICY, ...options.policy };
    this.prio = { ...DEFAULT_PRIORITY, ...options.priority };
    const leaseMs = options.leaseMs ?? 10_000;
    this.sizing = { owner: this.owner, prio: this.prio, leaseMs, minLeaseMs: Math.min(options.minLeaseMs ?? 2_000, leaseMs), jobsPerLease: options.jobsPerLease ?? 24 };
    this.minRenewGapMs = options.minRenewGapMs ?? 1_000;
    this.defaultPauseMs = options.defaultPauseMs ?? 1_000;
    this.holdMs = options.holdMs ?? 30_000;
    this.onError = options.onError ?? (() => {});
    this.debug = options.debug;
    this.schedule = options.schedule;
    this.now = options.now ?? Date.now;
    this.seatWaitMaxMs = options.seatWaitMaxMs ?? 20_000;
    this.random = options.random ?? Math.random;
  }

  async admit(target: DeploymentRef, tokens: number, priority: JobPriority, now: number, claimant?: Claimant): Promise<Admission> {
    const st = this.stateOf(target, now);
    const lim = limitsFor(target, this.policy, st.typicalCharge);
    st.lastAskAt = Math.max(st.lastAskAt, now);
    if (claimant && !st.waiting.has(claimant.jobId)) {
      st.arrivals.push(now);
      while (st.arrivals.length > 0 && st.arrivals[0]! < now - TAIL_WINDOW_MS) st.arrivals.shift();
    }
    this.watchIdle(st, target);
    if (priority === 'interactive') {
      st.demand.lastInteractiveAt = now;
      st.demand.lastInteractiveTokens = tokens;
    }
    st.typicalCharge = st.typicalCharge > 0 ? 0.9 * st.typicalCharge + 0.1 * tokens : tokens;
    if (tokens > lim.tokens60) {
      // Azure can never admit a call above the TPM; it answers 429 with retry-after 60.
      return { granted: false, retryAt: now + 60_000, reason: 'tokens' };
    }
    if (st.pauseUntil > now) return { granted: false, retryAt: st.pauseUntil, reason: 'paused' };
    // An interactive job does not wait for a seat: it may take a one-job lease (below).
    if (st.seatlessUntil > now && !st.lease && priority === 'batch') return this.seatless(st, claimant, tokens, priority, now);
    while (st.writing) await st.writing;
    // The line (waitingLine.ts): its head, the oldest job ahead of this one in its team and priority, keeps its tokens.
    const head = lineHead(st.waiting, claimant, priority, now);
    // A renewal makes room in its first slot for the head of the line, not only for whoever asks when it is due.
    const pending = Math.max(tokens, head?.tokens ?? 0);
    if (this.needsRenewal(st, now, priority)) await this.renewOnce(st, target, now, pending, false, priority === 'interactive');
    if (st.pauseUntil > now) return { granted: false, retryAt: st.pauseUntil, reason: 'paused' };
    if (st.seatlessUntil > now && !st.lease) return this.seatless(st, claimant, tokens, priority, now);

    // Only one job's tokens are kept, and only while this lease can still hold them.
    const ahead = head && st.lease?.canHold(head.tokens) ? head : undefined;
    // A batch job first in line fits in the next lease's first slot; an interactive one keeps the plain estimate,
    // which decides whether it renews at once (below).
    const firstInLine = !!claimant && !head && priority === 'batch';
    if (this.trySpend(st, now, tokens, priority, false, ahead?.tokens)) return this.granted(st, claimant, tokens, now);
    st.lastDeniedAt = now;
    if (priority === 'batch') st.demand.batchWaitingSince ??= now;
    if (st.lease && st.demandLimited && now - st.lastRenewAt >= this.minRenewGapMs && now >= st.storageBackoffUntil) {
      // The lease was sized for a quieter past: take a fair-share one now rather than wait for this one to end.
      await this.renewOnce(st, target, now, pending, true);
      if (this.trySpend(st, now, tokens, priority, false, ahead?.tokens)) return this.granted(st, claimant, tokens, now);
    }
    let denied = this.denial(st, lim, now, tokens, priority, ahead, firstInLine);
    // An interactive job that would wait long renews the lease at once (at most once per INTERACTIVE_RENEW_GAP_MS, and
    // not within minRenewGapMs of the last renewal), weighted for it and asking for its tokens from the pacing window's
    // interactive reserve: at an instance whose share of the pace is small, it would otherwise wait for that share.
    const waitsLong = (d: Admission): d is Extract<Admission, { granted: false }> => !d.granted && priority === 'interactive' && d.retryAt - now > INTERACTIVE_RENEW_AFTER_MS;
    const renewAllowedAt = () => Math.max(st.lastRenewAt + this.minRenewGapMs, st.interactiveRenewAt + INTERACTIVE_RENEW_GAP_MS, st.storageBackoffUntil);
    if (waitsLong(denied) && now >= renewAllowedAt()) {
      if (claimant) noteRefused(st.waiting, claimant, tokens, priority, denied.retryAt, now, this.holdMs);
      st.interactiveRenewAt = now;
      await this.renewOnce(st, target, now, tokens, true, true);
      if (this.trySpend(st, now, tokens, priority, true)) return this.granted(st, claimant, tokens, now);
      denied = this.denial(st, lim, now, tokens, priority, ahead, firstInLine);
    }
    // Too soon for the early renewal: come back when it is allowed, not when this lease would fit.
    if (waitsLong(denied)) denied = { ...denied, retryAt: Math.min(denied.retryAt, Math.max(now + 1, renewAllowedAt())) };
    if (!denied.granted) {
      st.promisedUntil = Math.max(st.promisedUntil, denied.retryAt);
      st.pendingCharge = pending;
      if (claimant) noteRefused(st.waiting, claimant, tokens, priority, denied.retryAt, now, this.holdMs);
      this.renewOnTime(st, target);
    }
    return denied;
  }

  /**
   * Every seat is taken (window.ts hasSeat): this instance holds no lease and asks the row again only at
   * `seatlessUntil`, so that however many instances the platform adds, those beyond the seats cost one row read per
   * back-off, not per job. The job is told to come back then (the worker holds or parks it).
   */
  private seatless(st: DeploymentState, claimant: Claimant | undefined, tokens: number, priority: JobPriority, now: number): Admission {
    // The job goes back to the queue soon (the worker hands back a job refused for a seat), where an instance with a
    // seat, or with room in its line for another deployment's job, takes it; this instance asks the row again only
    // at seatlessUntil.
    const retryAt = Math.min(st.seatlessUntil, now + Math.round(SEAT_HAND_BACK_MS * (1 + this.random())));
    if (claimant) noteRefused(st.waiting, claimant, tokens, priority, retryAt, now, this.holdMs);
    return { granted: false, retryAt, reason: 'seat' };
  }

  private granted(st: DeploymentState, claimant: Claimant | undefined, tokens: number, now: number): Admission {
    if (claimant) {
      st.waiting.delete(claimant.jobId);
      st.teams.record(claimant.team, tokens, now, claimant.contested);
    }
    return { granted: true };
  }

  noteWaiting(target: DeploymentRef, claimant: Claimant, tokens: number, until: number, priority: JobPriority, now: number): void {
    noteRefused(this.stateOf(target, now).waiting, claimant, tokens, priority, until, now, this.holdMs);
  }

  takePeerGrants(deploymentKey: string): readonly PeerGrant[] | undefined {
    return this.states.get(deploymentKey)?.teams.take();
  }

  async observe(target: DeploymentRef, signal: QuotaSignal, now: number): Promise<void> {
    const st = this.stateOf(target, now);
    if (signal.remainingTokens !== undefined || signal.remainingRequests !== undefined) {
      st.observations.push({ at: now, remainingTokens: signal.remainingTokens, remainingRequests: signal.remainingRequests });
      if (st.observations.length > MAX_OBSERVATIONS) st.observations.shift();
    }
    if (signal.status !== 429) return;
    const until = now + (signal.retryAfterMs ?? this.defaultPauseMs);
    if (until <= st.pendingPause || until <= st.pauseUntil) return;
    st.pauseUntil = until;
    st.pendingPause = until;
    // Tell every instance now: write the pause into the row (keeping our lease as it is).
    while (st.writing) await st.writing;
    if (st.pendingPause === 0) return;
    await this.single(st, now, () => this.write(st, target, now, { kind: 'pause' }));
  }

  /** Reports what every held lease spent and gives back the rest (graceful shutdown). `now` for fake clocks. */
  async close(now = Date.now()): Promise<void> {
    for (const st of this.states.values()) {
      while (st.writing) await st.writing;
      const target = this.refs.get(st.key);
      if (!st.lease || !target) continue;
      await this.single(st, now, () => this.write(st, target, now, { kind: 'release' }));
    }
  }

  /** Found every seat taken: back off, longer each time in a row (with jitter, so that waiting instances spread). */
  private noSeat(st: DeploymentState, now: number, lim: Limits): void {
    const backoff = Math.min(this.seatWaitMaxMs, SEAT_WAIT_MIN_MS * 2 ** st.seatlessStreak);
    st.seatlessStreak += 1;
    st.seatlessUntil = now + Math.max(lim.slotMs, Math.round(backoff * (0.5 + this.random() / 2)));
  }

  /** The lease this instance holds on a deployment (tests, diagnostics). */
  heldLease(key: string): LeaseRecord | undefined {
    return this.states.get(key)?.lease?.record;
  }

  private stateOf(target: DeploymentRef, now: number): DeploymentState {
    this.refs.set(target.key, target);
    let st = this.states.get(target.key);
    if (!st) {
      st = newDeploymentState(target.key, now);
      this.states.set(target.key, st);
    }
    return st;
  }

  private needsRenewal(st: DeploymentState, now: number, priority: JobPriority = 'batch'): boolean {
    if (now < st.storageBackoffUntil || (!st.lease && now < st.seatlessUntil && priority === 'batch')) return false;
    // Renew a little before the end so the next slice is in place when this one runs out.
    return !st.lease || now >= st.lease.until - 2 * this.policy.slotMs;
  }

  private trySpend(st: DeploymentState, now: number, tokens: number, priority: JobPriority, anyShare = false, aheadTokens = 0): boolean {
    const lease = st.lease;
    if (!lease || !lease.fits(now, tokens, priority, st.demand, this.prio, anyShare, aheadTokens)) return false;
    lease.spend(now, tokens, priority);
    st.admitted.push([now, tokens]);
    while (st.admitted.length > 0 && st.admitted[0]![0] < now - RATE_WINDOW_MS) st.admitted.shift();
    if (priority === 'batch') st.demand.batchWaitingSince = undefined;
    return true;
  }

  /** `firstInLine`: nobody waits ahead of this batch job, so the next lease's first slot makes room for it. */
  private denial(st: DeploymentState, lim: Limits, now: number, tokens: number, priority: JobPriority, ahead?: WaitingJob, firstInLine = false): Admission {
    const lease = st.lease;
    const aheadTokens = ahead?.tokens ?? 0;
    let inLease = lease?.nextFit(now, tokens, priority, st.demand, this.prio, aheadTokens);
    if (ahead && lease) {
      // The job ahead is due back at dueAt and takes its tokens then: after that, this one needs only its own.
      const alone = lease.nextFit(now, tokens, priority, st.demand, this.prio);
      const after = alone === undefined ? undefined : Math.max(alone, ahead.dueAt + 1);
      if (after !== undefined && (inLease === undefined || after < inLease)) inLease = after;
    }
    if (inLease !== undefined) return { granted: false, retryAt: inLease, reason: lease!.spentRequests >= lease!.allowance(inLease).requests ? 'requests' : 'tokens' };
    // Beyond this lease: the next one starts at its end and accrues at about this lease's pace (at least a fair
    // share of a fleet of one per lease seen in the row).
    const from = Math.max(now + this.policy.slotMs, lease ? lease.until : now, st.storageBackoffUntil);
    const leaseRate = lease ? lease.totalTokens / Math.max(1, lease.until - lease.record.from * this.policy.slotMs) : 0;
    const live = Math.max(1, st.cached?.row.leases.filter((l) => l.until >= now).length ?? 1);
    const rate = Math.max(leaseRate, lim.tokensPerSlot / this.policy.slotMs / live);
    const retryAt = firstInLine ? from + this.policy.slotMs : Math.min(now + 60_000, Math.ceil(from + (tokens + aheadTokens) / rate));
    const requestsShort = !!lease && lease.allowance(now).requests - lease.spentRequests < 1;
    return { granted: false, retryAt, reason: requestsShort ? 'requests' : 'tokens' };
  }

  /** One row write at a time per deployment (renewal, pause or release); storage errors keep the lease and back off. */
  private single(st: DeploymentState, now: number, work: () => Promise<void>): Promise<void> {
    const run = work()
      .catch((err) => {
        st.storageBackoffUntil = now + 1_000;
        this.onError(err);
      })
      .finally(() => {
        if (st.writing === run) st.writing = undefined;
      });
    st.writing = run;
    return run;
  }

  /** `interactive`: pendingTokens are an interactive job's (see BudgetPolicy.interactiveReserve). */
  private renewOnce(st: DeploymentState, target: DeploymentRef, now: number, pendingTokens: number, wantAll: boolean, interactive = false): Promise<void> {
    if (st.writing) return st.writing;
    return this.single(st, now, () =>
      this.write(st, target, now, {
        kind: 'renew',
        grant: (row, lim) => grantFitted(row, sizeLease(st, row, lim, now, { pendingTokens, wantAll, interactive }, this.sizing, `${this.owner}.${(this.leaseCounter += 1)}`), lim),
        ...(interactive ? { oneJob: (row: BudgetRow, lim: Limits) => grantOneJob(row, oneJobLease(this.owner, `${this.owner}.${(this.leaseCounter += 1)}`, now, pendingTokens, this.sizing.minLeaseMs), lim) } : {}),
      }),
    );
  }

  /**
   * Jobs are waiting here: renew just before the lease ends, whether or not one of them happens to ask then. Held jobs
   * sleep until the retryAt they were given, which often lies after the end; renewing only when the first of them
   * wakes would leave a gap with no allowance at every lease change.
   */
  private renewOnTime(st: DeploymentState, target: DeploymentRef): void {
    const lease = st.lease;
    if (!this.schedule || !lease || st.renewalTimerFor === lease.id) return;
    st.renewalTimerFor = lease.id;
    const at = lease.until - 2 * this.policy.slotMs;
    this.schedule(() => {
      const now = this.now();
      if (st.lease?.id !== lease.id || st.writing || now < st.storageBackoffUntil) return;
      // Someone is still waiting: a refused job is due back about now or later.
      if (st.promisedUntil < now - this.policy.slotMs) return;
      void this.renewOnce(st, target, now, st.pendingCharge, false);
    }, Math.max(0, at - this.now()));
  }

  /**
   * The end of a drain: once nobody here has asked for IDLE_EARLY_RELEASE_MS (and no refused job is due back), report
   * the lease and give the rest back, so the instances that still have work get its share at their next renewal
   * instead of after it ends. Only when other instances share the deployment; one write per quiet spell.
   */
  private watchIdle(st: DeploymentState, target: DeploymentRef): void {
    if (!this.schedule || st.idleCheckAt !== undefined) return;
    if (!st.cached?.row.leases.some((l) => l.owner !== this.owner)) return;
    const check = () => {
      st.idleCheckAt = undefined;
      const now = this.now();
      const lease = st.lease;
      if (!lease || lease.until - now <= IDLE_EARLY_RELEASE_MS) return; // ends soon anyway: releaseWhenIdle has it
      const quietFrom = Math.max(st.lastAskAt, st.promisedUntil) + IDLE_EARLY_RELEASE_MS;
      if (st.writing || now < quietFrom) {
        st.idleCheckAt = Math.max(quietFrom, now + this.policy.slotMs);
        this.schedule!(check, st.idleCheckAt - now);
        return;
      }
      void this.single(st, now, () => this.write(st, target, now, { kind: 'release' }));
    };
    st.idleCheckAt = Math.max(st.lastAskAt, st.promisedUntil) + IDLE_EARLY_RELEASE_MS;
    this.schedule(check, Math.max(0, st.idleCheckAt - this.now()));
  }

  /** If nobody renews `lease` by its end, report it then (see SharedBudgetOptions.schedule). */
  private releaseWhenIdle(st: DeploymentState, target: DeploymentRef, lease: LeaseRecord, now: number): void {
    if (!this.schedule) return;
    this.schedule(() => {
      // Any admit() after the lease's end would have renewed it: this holder has had nothing to ask for since.
      if (st.lease?.id !== lease.id || st.writing) return;
      const at = Math.max(this.now(), lease.until);
      void this.single(st, at, () => this.write(st, target, at, { kind: 'release' }));
    }, Math.max(0, lease.until - now) + IDLE_RELEASE_MS);
  }

  /**
   * Read-modify-write of the row with If-Match, retried on conflicts. Settles expired leases, applies
   * observations and a pending pause; 'renew' and 'release' also report the held lease, and 'renew' grants the
   * next one (none while paused). 'pause' leaves the held lease in place.
   */
  private async write(st: DeploymentState, target: DeploymentRef, now: number, mode: WriteMode): Promise<void> {
    const lim = limitsFor(target, this.policy, st.typicalCharge);
    // Alone on the row (no other live lease last time): the cached ETag is likely current, skip the read.
    const alone = st.cached && !st.cached.row.leases.some((l) => l.owner !== this.owner);
    let stored: StoredBudgetRow | undefined = alone ? st.cached : await this.store.read(st.key);
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      if (!stored) {
        const etag = await this.store.create(st.key, emptyRow(now, lim.slotMs));
        stored = etag ? { row: emptyRow(now, lim.slotMs), etag } : await this.store.read(st.key);
        if (!stored) continue;
      }
      const row = structuredClone(stored.row);
      if (row.leases.some((l) => l.owner !== this.owner && l.until >= now)) st.othersSeenAt = now;
      const leasesBefore = row.leases.length;
      pruneRow(row, now, lim);
      const settledByOthers = leasesBefore - row.leases.length;
      const replacesLease = mode.kind !== 'pause';
      const seated = hasSeat(row, this.owner, lim, seatsFor(lim, st.typicalCharge, this.sizing.leaseMs));
      const oneJob = !seated && mode.kind === 'renew' && mode.oneJob && oneJobSeatFree(row, lim) ? mode.oneJob : undefined;
      if (!seated && !oneJob && !st.lease && mode.kind === 'renew' && st.observations.length === 0 && st.pendingPause === 0 && settledByOthers === 0) {
        // No seat and nothing to report: nothing to write.
        st.cached = stored;
        this.noSeat(st, now, lim);
        return;
      }
      let granted: LeaseRecord | undefined;
      const reported = replacesLease && st.lease ? reportLease(row, st.lease.id, st.lease.report()) : undefined;
      let drift = 0;
      for (const obs of st.observations) if (obs.at >= now - OBSERVATION_MAX_AGE_MS) drift += reconcile(row, obs, target, lim).tokens;
      row.pauseUntil = Math.max(row.pauseUntil, st.pendingPause);
      if (mode.kind === 'renew' && row.pauseUntil <= now) granted = seated ? mode.grant(row, lim) : oneJob?.(row, lim);
      const etag = await this.store.replace(st.key, row, stored.etag);
      if (etag) {
        st.cached = { row, etag };
        st.teams.absorb(row.leases, this.owner, now, lim.slotMs);
        st.observations = [];
        st.pendingPause = 0;
        st.pauseUntil = Math.max(st.pauseUntil, row.pauseUntil);
        if (this.debug) {
          const g = granted ? `granted ${Math.round(granted.tokens.reduce((a, b) => a + b, 0))} tok over ${granted.until - now} ms (${((granted.tokens.reduce((a, b) => a + b, 0) / Math.max(1, granted.until - now)) / (lim.tokensPerSlot / lim.slotMs)).toFixed(2)} of fleet pace), first ${granted.tokens[0]}` : 'no grant';
          const old = st.lease ? `old spent ${st.lease.spentTokens}/${st.lease.totalTokens} tok, ${st.lease.spentRequests}/${sum(st.lease.record.requests).toFixed(1)} req` : 'no old';
          this.debug(`budget ${this.owner.slice(0, 4)} t=${now % 1_000_000} ${mode.kind} attempt=${attempt} ${g}; ${old}; reported=${reported}; drift=${drift}; settledOthers=${settledByOthers}; live=${row.leases.length}; hungry=${!st.demandLimited}`);
        }
        if (mode.kind === 'renew' && !seated) {
          if (!granted) this.noSeat(st, now, lim);
          // A one-job lease is sized for the job that asked: nothing for early renewals to grow.
          st.demandLimited = false;
        } else if (granted) st.seatlessStreak = 0;
        if (replacesLease) {
          st.lease = granted ? new HeldLease(granted, lim.slotMs) : undefined;
          st.lastRenewAt = now;
          if (granted && mode.kind === 'renew') this.releaseWhenIdle(st, target, granted, now);
        }
        return;
      }
      stored = await this.store.read(st.key);
    }
    throw new Error(`budget row ${st.key}: gave up after ${MAX_WRITE_ATTEMPTS} conflicting writes`);
  }
}

type Grant = (row: BudgetRow, lim: Limits) => LeaseRecord | undefined;

/** 'renew' with `oneJob`: an interactive job asks; without a seat, a one-job lease (window.ts oneJobSeatFree) will do. */
type WriteMode = { kind: 'renew'; grant: Grant; oneJob?: Grant } | { kind: 'pause' } | { kind: 'release' };

