/**
 * Fair share of a deployment between teams, as a BudgetGate in front of the shared budget. Terms (finish tag, owed,
 * backlogged, parked, solo, arbiter): docs/design/budget.md.
 *
 * Without it, the budget's tokens go to whichever waiting job polls first after a refill, so a team with 300 jobs
 * in flight takes ~everything from a team with 3. Here every job that asks is a *waiter* of its team at that
 * deployment, and tokens are divided by weight with start-time fair queuing:
 *   - each team has a finish tag F; granting `tokens` to team T advances F_T by tokens / weight_T;
 *   - a team that becomes active again (its first waiter after being idle) is raised to the current minimum of the
 *     active teams, so idleness banks no credit and an idle team holds nothing back (work-conserving);
 *   - a waiter may ask the inner gate only while its team is the one furthest behind: its F is the smallest among
 *     teams with waiters, or less than one job (tokens / weight, or `slackTokens` if larger; two for an interactive
 *     job) ahead of it. The tokens a waiter leaves unasked are not lost: the budget behind keeps them for the next
 *     asker;
 *   - a team below its guaranteed TPM for the model (over the last 60 s) may ask first, before teams that are not;
 *   - within a team, and between teams level with each other, interactive waiters go before batch ones.
 * Refused waiters are told to come back after `tickMs`; a waiter not seen for `expiryMs` after its last answer
 * (its job parked or its worker died) is forgotten, so it never blocks anyone.
 *
 * Fleet-wide: each instance orders the jobs it holds, but a team's tag also advances by what instances holding no
 * other team's jobs granted it (the inner gate's takePeerGrants: counters published in the budget row at every lease
 * renewal, see budget/teamLedger.ts), split between the instances that divide tokens between teams. A
 * team whose jobs sit at one instance of four is favoured there for what the other three gave the rest; grants that
 * another instance already divided fairly are not corrected again (that would make the fleet swing between teams). The
 * quota itself stays enforced by the shared budget behind this gate.
 * Plain TypeScript driven by the `now` argument.
 */
import type { JobPriority } from '../jobs';
import type { Admission, BudgetGate, Claimant, DeploymentRef, QuotaSignal } from '../budget/gate';

export type { Claimant };

export interface FairShareOptions {
  /** Team weight (> 0). @default 1 */
  weightOf?(team: string): number;
  /** Tokens per minute guaranteed to the team for the model. @default none */
  guaranteedTpmOf?(team: string, model: string | undefined): number | undefined;
  /** How long a refused waiter waits before asking again, ms. @default 100 */
  tickMs?: number;
  /** A waiter not seen for this long after its last answer is dropped, ms. @default 2000 */
  expiryMs?: number;
  /** A waiter told to come back later than this parks its job (the worker's in-process hold) and is dropped at once, ms. @default 2000 */
  holdMs?: number;
  /** Extra lead (in weighted tokens) a team may take over the team furthest behind, beyond one job. @default 0 */
  slackTokens?: number;
  /** Diagnostics: one line per decision on an interactive job (SLUICE_BUDGET_DEBUG=1). */
  debug?: (line: string) => void;
}

interface Waiter {
  jobId: string;
  priority: JobPriority;
  /** Drop after this (epoch ms). */
  expiresAt: number;
  /** The budget behind refused it until then (epoch ms): it cannot use tokens before. */
  budgetRetryAt?: number;
}

interface TeamState {
  finish: number;
  /** When its first waiter since it was last idle here arrived (epoch ms). */
  joinedAt: number;
  /** The latest moment one of its jobs asked here or was told to come back (a parked job is still backlog), epoch ms. */
  dueBackAt: number;
  waiters: Map<string, Waiter>;
  /** [time, tokens] granted in the last 60 s, for guarantees and the read model. */
  granted: Array<[number, number]>;
}

interface DeploymentState {
  teams: Map<string, TeamState>;
}

const WINDOW_MS = 60_000;
/** Longest a parked job keeps its team backlogged here (no fresh start level with the others), ms: a lease. */
const PARKED_BACKLOG_MS = 10_000;
/** A team further behind another waiting team than this many of its jobs is owed (Claimant.owed). */
const OWED_JOBS = 4;

export interface TeamShareView {
  team: string;
  waiters: number;
  tokensLast60s: number;
}

export class FairShareGate implements BudgetGate {
  private readonly deployments = new Map<string, DeploymentState>();
  private readonly tickMs: number;
  private readonly expiryMs: number;
  private readonly slack: number;
  private readonly holdMs: number;

  constructor(private readonly inner: BudgetGate, private readonly opts: FairShareOptions = {}) {
    this.tickMs = opts.tickMs ?? 100;
    this.expiryMs = opts.expiryMs ?? 2_000;
    this.slack = opts.slackTokens ?? 0;
    this.holdMs = opts.holdMs ?? 2_000;
  }

  async admit(target: DeploymentRef, tokens: number, priority: JobPriority, now: number, claimant?: Claimant): Promise<Admission> {
    if (!claimant) return this.inner.admit(target, tokens, priority, now);
    const dep = this.deployment(target.key);
    this.absorbPeers(dep, target.key, now);
    this.prune(dep, now);
    const team = this.join(dep, claimant, priority, now);
    const trace = priority === 'interactive' && this.opts.debug ? this.opts.debug : undefined;
    if (!this.mayAsk(dep, claimant, team, priority, tokens, now)) {
      trace?.(`fair t=${now % 1_000_000} job=${claimant.jobId.slice(0, 8)} team=${claimant.team} held back (${this.describe(dep)})`);
      // Still work waiting for the deployment: the budget's lease weight counts it.
      this.inner.noteWaiting?.(target, claimant, tokens, now + this.tickMs, priority, now);
      return this.refuse(team, claimant.jobId, now + this.tickMs, now);
    }
    // Whether another team's job waits here too (the ledger shares only uncontested grants with the fleet), and whether
    // this team is behind the others by more than a few jobs (its jobs weigh more in this instance's lease).
    const ahead = furthestAhead(dep, claimant.team);
    const owed = ahead !== undefined && team.finish + OWED_JOBS * (tokens / this.weight(claimant.team)) < ahead;
    const answer = await this.inner.admit(target, tokens, priority, now, { ...claimant, contested: ahead !== undefined, owed });
    trace?.(`fair t=${now % 1_000_000} job=${claimant.jobId.slice(0, 8)} team=${claimant.team} tokens=${tokens} ${answer.granted ? 'granted' : `refused ${answer.reason} retry+${answer.retryAt - now}`} (${this.describe(dep)})`);
    if (!answer.granted) {
      const w = team.waiters.get(claimant.jobId);
      if (w) w.budgetRetryAt = answer.retryAt;
      return this.refuse(team, claimant.jobId, answer.retryAt, now, answer.reason);
    }
    team.waiters.delete(claimant.jobId);
    team.finish += tokens / this.weight(claimant.team);
    team.granted.push([now, tokens]);
    return answer;
  }

  /**
   * What the other instances granted each team (read from the budget row at this instance's renewals) counts as if
   * granted here: every instance orders teams by the fleet's tokens. A team that has had a job here lately but waits
   * elsewhere is thus not favoured here again for tokens it already got there.
   */
  private absorbPeers(dep: DeploymentState, key: string, now: number): void {
    const peers = this.inner.takePeerGrants?.(key);
    if (!peers) return;
    for (const g of peers) {
      const team = dep.teams.get(g.team) ?? addTeam(dep, g.team, this.minActiveFinish(dep) ?? 0, now);
      const delta = g.tokens / this.weight(g.team);
      team.finish += delta;
      team.granted.push([now, g.tokens]);
      // Tokens granted elsewhere before another team started waiting here are no debt to that team: it joined level
      // with the others after them (join()). They arrive a lease late; counted only against the team granted them,
      // they would give every team that has just arrived a burst far above its share. The part granted before it
      // joined moves its tag too.
      for (const other of dep.teams.values()) {
        if (other === team || other.joinedAt <= g.from) continue;
        other.finish += delta * Math.min(1, (other.joinedAt - g.from) / Math.max(1, g.to - g.from));
      }
    }
  }

  observe(target: DeploymentRef, signal: QuotaSignal, now: number): Promise<void> {
    return this.inner.observe(target, signal, now);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }

  /** Waiters and recent tokens per team at a deployment (telemetry, tests). */
  shares(deploymentKey: string, now: number): TeamShareView[] {
    const dep = this.deployments.get(deploymentKey);
    if (!dep) return [];
    this.prune(dep, now);
    return [...dep.teams.entries()].map(([team, t]) => ({ team, waiters: t.waiters.size, tokensLast60s: t.granted.reduce((s, [, n]) => s + n, 0) }));
  }

  private describe(dep: DeploymentState): string {
    return [...dep.teams.entries()].map(([name, t]) => `${name}:F=${Math.round(t.finish)},w=${t.waiters.size}`).join(' ');
  }

  private deployment(key: string): DeploymentState {
    let dep = this.deployments.get(key);
    if (!dep) this.deployments.set(key, (dep = { teams: new Map() }));
    return dep;
  }

  private weight(team: string): number {
    const w = this.opts.weightOf?.(team) ?? 1;
    return Number.isFinite(w) && w > 0 ? w : 1;
  }

  /**
   * Registers (or refreshes) the waiter; a team returning from idle starts at the active teams' minimum. Idle means no
   * waiter here, and none due back, for expiryMs: a team whose jobs were parked for budget, or all granted a moment
   * before its next one asked, is still backlogged: starting it afresh would throw away what it is owed.
   */
  private join(dep: DeploymentState, c: Claimant, priority: JobPriority, now: number): TeamState {
    const team = dep.teams.get(c.team) ?? addTeam(dep, c.team, 0, now);
    const idle = team.waiters.size === 0 && now - team.dueBackAt > this.expiryMs;
    team.dueBackAt = Math.max(team.dueBackAt, now);
    if (idle) {
      const floor = this.minActiveFinish(dep, c.team);
      if (floor !== undefined) team.finish = Math.max(team.finish, floor);
      team.joinedAt = now;
    }
    const w = team.waiters.get(c.jobId);
    if (w) {
      w.priority = priority;
      w.expiresAt = Math.max(w.expiresAt, now + this.expiryMs);
    } else {
      team.waiters.set(c.jobId, { jobId: c.jobId, priority, expiresAt: now + this.expiryMs });
    }
    return team;
  }

  private mayAsk(dep: DeploymentState, c: Claimant, team: TeamState, priority: JobPriority, tokens: number, now: number): boolean {
    // Interactive before batch within the team.
    if (priority === 'batch' && hasInteractive(team)) return false;
    // Between teams level with each other, interactive first: a team back from idle starts level with the busiest
    // one, and its interactive job must not lose the next allowance to that team's batch jobs.
    if (priority === 'batch') {
      for (const [name, other] of dep.teams) {
        if (name !== c.team && other.finish <= team.finish && hasInteractive(other)) return false;
      }
    }
    // Work-conserving for interactive jobs: when every other team waiting here has only batch jobs that the budget has
    // just refused, those teams cannot take the tokens now, and the budget keeps part of each refill for interactive
    // work while there is some (lease.ts). Holding this job back for them would waste that part, and the counters
    // that put this team ahead may be a lease stale.
    if (priority === 'interactive' && this.othersBlocked(dep, c.team, now)) return true;
    const under = (name: string, t: TeamState) => this.underGuarantee(name, t, c.model, now);
    if (under(c.team, team)) return true;
    for (const [name, other] of dep.teams) {
      if (name !== c.team && other.waiters.size > 0 && under(name, other)) return false;
    }
    const floor = this.minActiveFinish(dep);
    // An interactive job may lead by one job more: held back one job ahead of a team whose own jobs wait for budget,
    // it would wait as long as they do. The tags still count its tokens.
    const lead = Math.max(this.slack, tokens / this.weight(c.team)) * (priority === 'interactive' ? 2 : 1);
    return floor === undefined || team.finish <= floor || team.finish < floor + lead;
  }

  /** Every other team with waiters has only batch waiters, each refused by the budget until later than `now`. */
  private othersBlocked(dep: DeploymentState, self: string, now: number): boolean {
    for (const [name, t] of dep.teams) {
      if (name === self) continue;
      for (const w of t.waiters.values()) if (w.priority === 'interactive' || !(w.budgetRetryAt !== undefined && w.budgetRetryAt > now)) return false;
    }
    return true;
  }

  private underGuarantee(name: string, team: TeamState, model: string | undefined, now: number): boolean {
    const tpm = this.opts.guaranteedTpmOf?.(name, model);
    if (!tpm || team.waiters.size === 0) return false;
    let used = 0;
    for (const [t, n] of team.granted) if (t > now - WINDOW_MS) used += n;
    return used < tpm;
  }

  private minActiveFinish(dep: DeploymentState, except?: string): number | undefined {
    let min: number | undefined;
    for (const [name, t] of dep.teams) {
      if (name === except || t.waiters.size === 0) continue;
      if (min === undefined || t.finish < min) min = t.finish;
    }
    return min;
  }

  private refuse(team: TeamState, jobId: string, retryAt: number, now: number, reason: Extract<Admission, { granted: false }>['reason'] = 'tokens'): Admission {
    // A job told to wait longer than the worker holds one in-process is parked: it must not hold others back.
    if (retryAt - now > this.holdMs) team.waiters.delete(jobId);
    // Backlogged while parked, but for a lease at most: a job parked for a minute must not bank a minute of credit.
    team.dueBackAt = Math.max(team.dueBackAt, Math.min(retryAt, now + PARKED_BACKLOG_MS));
    const w = team.waiters.get(jobId);
    if (w) w.expiresAt = Math.max(w.expiresAt, retryAt + this.expiryMs);
    return { granted: false, retryAt: Math.max(retryAt, now + 1), reason };
  }

  private prune(dep: DeploymentState, now: number): void {
    for (const [name, t] of dep.teams) {
      for (const [id, w] of t.waiters) if (w.expiresAt < now) t.waiters.delete(id);
      while (t.granted.length > 0 && t.granted[0]![0] <= now - WINDOW_MS) t.granted.shift();
      if (t.waiters.size === 0 && t.granted.length === 0 && dep.teams.size > 64) dep.teams.delete(name);
    }
  }
}

function addTeam(dep: DeploymentState, name: string, finish: number, now: number): TeamState {
  const team: TeamState = { finish, joinedAt: now, dueBackAt: Number.NEGATIVE_INFINITY, waiters: new Map(), granted: [] };
  dep.teams.set(name, team);
  return team;
}

/** The largest tag among the other teams with a job waiting at the deployment (undefined: none waits). */
function furthestAhead(dep: DeploymentState, self: string): number | undefined {
  let max: number | undefined;
  for (const [name, t] of dep.teams) if (name !== self && t.waiters.size > 0 && (max === undefined || t.finish > max)) max = t.finish;
  return max;
}

/** Whether the team has an interactive job waiting (no copy of the waiters: this runs on every ask). */
function hasInteractive(team: TeamState): boolean {
  for (const w of team.waiters.values()) if (w.priority === 'interactive') return true;
  return false;
}
