/**
 * The team's month-to-date spend for the stop-at-budget check at submit, from the rollup's month-to-date row for
 * the team. Read in the background and kept per process for SLUICE_TEAM_SPEND_CACHE_MS (core/teamSpend.ts): a
 * submit never waits on telemetry storage, and the stop lags real spend by the rollup's delay.
 */
import { stopsAtBudget } from '../core/admission';
import { TeamSpendCache } from '../core/teamSpend';
import type { Team } from '../core/teams/model';
import { monthToDateOf, ROLLUP_PARTITIONS, scopeKey } from '../core/telemetry/rollup';
import { monthOf } from '../core/telemetry/windows';
import { getServices, type Services } from './services';
import { getTelemetryServices } from './telemetry';

let cache: { for: Services; spend: TeamSpendCache } | undefined;

function spendCache(): TeamSpendCache {
  const services = getServices();
  if (cache?.for !== services) cache = { for: services, spend: new TeamSpendCache(readSpend, { maxAgeMs: services.config.teams.spendCacheMs }) };
  return cache.spend;
}

async function readSpend(team: string): Promise<number> {
  const { rollup } = getTelemetryServices();
  const row = await rollup.get(ROLLUP_PARTITIONS.monthToDate(monthOf(Date.now())), scopeKey({ kind: 'team', team }));
  return monthToDateOf(row?.value)?.costUsd ?? 0;
}

/** The team's month-to-date spend in USD as last read; 0 before the first read, and for teams with no stop. */
export function teamSpendUsd(team: Team): number {
  return stopsAtBudget(team) ? (spendCache().peek(team.id) ?? 0) : 0;
}

/** Reads a team's spend now (tests that write month-to-date rows directly, then submit). */
export function refreshTeamSpend(team: string): Promise<number> {
  return spendCache().refresh(team);
}
