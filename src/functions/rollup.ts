/**
 * Timer (SLUICE_ROLLUP_SCHEDULE, every minute by default): closes finished minute windows of usage rows exactly
 * once and sends their metrics, month-to-date cost and alerts to Application Insights (src/core/telemetry/rollup.ts).
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { runRollup } from '../core/telemetry/rollup';
import type { RollupLog } from '../core/telemetry/rollupDeps';
import { bindingSettings } from '../config';
import { getTelemetryServices } from '../runtime/telemetry';

export async function rollup(_timer: Timer, context: InvocationContext): Promise<void> {
  const telemetry = getTelemetryServices();
  const log: RollupLog = (level, message) => context[level](message);
  const teamBudgets = await telemetry.teamBudgets().catch((err: unknown) => {
    log('warn', `rollup: team budgets not read (${(err as Error).message}); using SLUICE_TEAM_BUDGETS only`);
    return {};
  });
  const result = await runRollup(telemetry.rollupDeps(log, teamBudgets));
  // A routine tick: a person sees the rollup only when it warns (budget, quota, a claim taken over).
  context.debug(
    `rollup: closed ${result.closed.length} window(s)${result.closed.length ? ` ${result.closed[0]}…${result.closed.at(-1)}` : ''}, ` +
      `${result.rows} rows${result.busy ? '; another run holds the next window' : ''}; ${result.lagWindows} window(s) behind`,
  );
}

app.timer('rollup', { schedule: bindingSettings().rollupSchedule, handler: rollup });
