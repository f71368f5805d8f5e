/**
 * The team's month-to-date spend for the stop-at-budget check at submit, from the rollup's month-to-date row for
 * the team. Read in the background and kept per process for SLUICE_TEAM_SPEND_CACHE_MS (core/teamSpend.ts, built in
 * services.ts and shared with the worker): a submit never waits on telemetry storage, and the stop lags real spend
 * by the rollup's delay.
 */
import { knownSpendUsd, teamRefusal, type Refusal } from '../core/admission';
import type { Team } from '../core/teams/model';
import { getServices } from './services';

/** The team's month-to-date spend in USD as last read; 0 before the first read, and for teams with no stop. */
export function teamSpendUsd(team: Team): number {
  return knownSpendUsd(team, getServices().teamSpend);
}

/** Reads a team's spend now (tests that write month-to-date rows directly, then submit). */
export function refreshTeamSpend(team: string): Promise<number> {
  return getServices().teamSpend.refresh(team);
}

/** Why this team may start no new work now (disabled, or stopped at its budget), by the rule submit applies. */
export function teamRefusalNow(team: Team): Refusal | undefined {
  return teamRefusal(team, teamSpendUsd(team));
}
