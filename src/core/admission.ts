/**
 * May a submitted job be written now? Pure: the caller reads the inputs (the team's month-to-date spend from a
 * cache refreshed in the background, backlog counts per team that are at most seconds old) and maps a refusal to
 * its answer. Checked in order: the job fits a deployment's quota at all, the team may start work (`teamRefusal`),
 * the team's own backlog limit, Sluice's backlog limit (only a team over its fair part is refused). `teamRefusal`
 * is the one rule every path that makes or runs work applies: POST /v1/jobs, POST /v1/batches and the batch driver,
 * the submission queue and the worker.
 */
import { overQuotaCeiling, teamBacklogVerdict } from './backpressure';
import { chargeOf, type JobRecord } from './jobs';
import type { Team } from './teams/model';

export interface AdmissionInput {
  job: Pick<JobRecord, 'model' | 'priority' | 'promptTokens' | 'maxOutputTokens'>;
  team: Pick<Team, 'id' | 'monthlyBudgetUsd' | 'budgetAction' | 'maxBacklog' | 'disabled'>;
  /** The team's month-to-date spend, USD, as last read (0 before the first read). */
  monthToDateUsd: number;
  /** Jobs waiting per team with work (core/backlog.ts), this team's included; read only when a limit applies. */
  backlogs: ReadonlyMap<string, number>;
  /** A team's fair-share weight, to weigh the teams' parts of Sluice's backlog limit. */
  weightOf?: (team: string) => number;
  /** Tokens per minute of each deployment serving the job's model. */
  deploymentTpms: readonly number[];
  /** Sluice's backlog limit, jobs; 0 = none. */
  maxBacklog: number;
  /** The share of each deployment's quota the budget plans to use (1 when the budget is off). */
  safety: number;
}

/** An answer that refuses the job; nothing has been written. */
export interface Refusal {
  status: 400 | 401 | 429;
  code: string;
  message: string;
  /** OpenAI error type. */
  type: 'invalid_request_error' | 'insufficient_quota' | 'rate_limit_error';
  /** The request field at fault, for a 400. */
  param?: string;
  /** Retry-After, seconds. */
  retryAfterS?: number;
}

/** Does this team stop accepting work at 100 % of a monthly budget? Only then does admission need its spend. */
export function stopsAtBudget(team: Pick<Team, 'monthlyBudgetUsd' | 'budgetAction'>): boolean {
  return team.monthlyBudgetUsd > 0 && team.budgetAction === 'stop';
}

/**
 * The spend `teamRefusal` needs, from a cache of last-read spends: only teams set to stop ask for it (so others start
 * no read), and an unread team counts as 0.
 */
export function knownSpendUsd(team: Pick<Team, 'id' | 'monthlyBudgetUsd' | 'budgetAction'>, spend: { peek(team: string): number | undefined }): number {
  return stopsAtBudget(team) ? (spend.peek(team.id) ?? 0) : 0;
}

/**
 * May this team start new work now? A disabled team may not (401 team_disabled, as its keys are refused), nor a
 * team set to stop at 100 % of its monthly budget once its month-to-date spend reaches it (429
 * team_budget_exceeded). `monthToDateUsd` is the spend as last read (0 before the first read).
 */
export function teamRefusal(team: Pick<Team, 'id' | 'monthlyBudgetUsd' | 'budgetAction' | 'disabled'>, monthToDateUsd: number): Refusal | undefined {
  if (team.disabled) {
    return { status: 401, code: 'team_disabled', type: 'invalid_request_error', message: `Team "${team.id}" is disabled; ask a Sluice admin.` };
  }
  if (stopsAtBudget(team) && monthToDateUsd >= team.monthlyBudgetUsd) {
    return {
      status: 429,
      code: 'team_budget_exceeded',
      type: 'insufficient_quota',
      message: `Team "${team.id}" has spent $${monthToDateUsd.toFixed(2)} of its $${team.monthlyBudgetUsd.toFixed(2)} monthly budget and is set to stop work at 100 %. Ask a Sluice admin to raise the budget; the stop lifts when the month rolls over.`,
    };
  }
  return undefined;
}

/** The refusal for this job, or undefined when it may be written. */
export function admitJob(input: AdmissionInput): Refusal | undefined {
  const { job, team } = input;
  const charge = chargeOf(job);
  const ceiling = overQuotaCeiling(charge, input.deploymentTpms, input.safety);
  if (ceiling !== undefined) {
    return {
      status: 400,
      code: 'exceeds_deployment_quota',
      type: 'invalid_request_error',
      param: 'request.max_tokens',
      message: `request: this job is charged ${charge} tokens (${job.promptTokens} prompt + ${job.maxOutputTokens} max output), more than any deployment of "${job.model}" admits per minute (${ceiling}); lower max_tokens or split the prompt`,
    };
  }
  const teamRefused = teamRefusal(team, input.monthToDateUsd);
  if (teamRefused) return teamRefused;
  const teamBacklog = input.backlogs.get(team.id) ?? 0;
  if (team.maxBacklog > 0 && teamBacklog >= team.maxBacklog) {
    return {
      status: 429,
      code: 'team_backlog_full',
      type: 'rate_limit_error',
      retryAfterS: 10,
      message: `Team "${team.id}" already has about ${teamBacklog} jobs waiting (limit ${team.maxBacklog}); nothing was written. Retry later.`,
    };
  }
  const tpm = input.deploymentTpms.reduce((sum, t) => sum + t, 0);
  const verdict = teamBacklogVerdict(team.id, input.backlogs, input.maxBacklog, charge, tpm, input.weightOf);
  if (!verdict.accept) {
    return {
      status: 429,
      code: 'backlog_full',
      type: 'rate_limit_error',
      retryAfterS: verdict.retryAfterS,
      message: `Sluice's backlog is over ${input.maxBacklog} jobs and team "${team.id}" has its fair part of it (about ${teamBacklog} jobs) waiting; nothing was written. Retry after ${verdict.retryAfterS} s.`,
    };
  }
  return undefined;
}
