/**
 * Per-team limits checked at submit (issue 10): a monthly budget that stops accepting work at 100 % (when the team's
 * budget_action is "stop"), and the team's own backlog limit. Month-to-date cost comes from the rollup's
 * month-to-date row for the team, re-read at most every SLUICE_TEAM_SPEND_CACHE_MS per instance, so the check costs
 * no storage call on most submits (and the stop lags real spend by the rollup's delay, about two minutes).
 */
import type { HttpResponseInit } from '@azure/functions';
import type { JobRecord } from '../core/jobs';
import type { Team } from '../core/teams/model';
import { monthToDateOf, ROLLUP_PARTITIONS, scopeKey } from '../core/telemetry/rollup';
import { monthOf } from '../core/telemetry/windows';
import type { JobQueue } from '../azure/jobQueue';
import { errorBody, json } from './http';
import { getServices } from './services';
import { getTelemetryServices } from './telemetry';

const BACKLOG_CHECK_MS = 2_000;
const spend = new Map<string, { usd: number; until: number }>();
const refreshing = new Map<string, Promise<number>>();

/**
 * Month-to-date cost of the team in USD. Cached: only a team's first check waits for storage; a stale value is
 * answered while it is re-read in the background, so a submit never pays for the read.
 */
export async function teamMonthToDateUsd(team: string, now = Date.now()): Promise<number> {
  const hit = spend.get(team);
  if (hit && hit.until > now) return hit.usd;
  let pending = refreshing.get(team);
  if (!pending) {
    pending = readSpend(team, now).finally(() => refreshing.delete(team));
    refreshing.set(team, pending);
  }
  if (hit) {
    pending.catch(() => undefined); // keep the last value; the next check retries
    return hit.usd;
  }
  return pending;
}

async function readSpend(team: string, now: number): Promise<number> {
  const { rollup } = getTelemetryServices();
  const row = await rollup.get(ROLLUP_PARTITIONS.monthToDate(monthOf(now)), scopeKey({ kind: 'team', team }));
  const usd = monthToDateOf(row?.value)?.costUsd ?? 0;
  spend.set(team, { usd, until: Date.now() + getServices().config.teams.spendCacheMs });
  return usd;
}

/** Forget cached spend (tests that write month-to-date rows directly). */
export function forgetTeamSpend(): void {
  spend.clear();
  refreshing.clear();
}

/** A 429 answer when the team may not add this job now, else undefined. Nothing has been written yet. */
export async function teamAdmission(team: Team, job: Pick<JobRecord, 'priority'>, laneQueue: JobQueue): Promise<HttpResponseInit | undefined> {
  if (team.monthlyBudgetUsd > 0 && team.budgetAction === 'stop') {
    const usd = await teamMonthToDateUsd(team.id);
    if (usd >= team.monthlyBudgetUsd) {
      return json(
        429,
        errorBody(
          'team_budget_exceeded',
          `Team "${team.id}" has spent $${usd.toFixed(2)} of its $${team.monthlyBudgetUsd.toFixed(2)} monthly budget and is set to stop accepting work at 100 %; nothing was written. Ask a Sluice admin to raise the budget.`,
          undefined,
          'insufficient_quota',
        ),
      );
    }
  }
  if (team.maxBacklog > 0) {
    const depth = await laneQueue.recentDepth(BACKLOG_CHECK_MS);
    if (depth >= team.maxBacklog) {
      return json(429, errorBody('team_backlog_full', `Team "${team.id}" already has about ${depth} ${job.priority} jobs waiting (limit ${team.maxBacklog}); nothing was written. Retry later.`, undefined, 'rate_limit_error'), {
        'retry-after': '10',
      });
    }
  }
  return undefined;
}
