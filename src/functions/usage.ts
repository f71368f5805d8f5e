/**
 * GET /api/v1/usage?from=&to=&group_by=team|model|region|deployment|kind — rolled-up tokens, cost, jobs and latency
 * percentiles for the range (closed minute windows only), and month-to-date cost, projection and budget status.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { ValidationError } from '../core/errors';
import { monthStatus, parseUsageQuery, queryUsage } from '../core/telemetry/query';
import { WATERMARK } from '../core/telemetry/partitions';
import { windowIso } from '../core/telemetry/windows';
import { errorResponse, json } from '../runtime/http';
import { getTelemetryServices } from '../runtime/telemetry';
import { authorize } from '../runtime/auth';

export async function usage(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const now = Date.now();
    // A member sees its own team's usage only; an admin sees every team's (or one, with ?team=).
    const q = parseUsageQuery(request.query, now, auth.principal.role === 'admin' ? request.query.get('team') ?? undefined : auth.principal.team.id);
    const { rollup, settings } = getTelemetryServices();
    const [{ groups, total }, month, watermark] = await Promise.all([
      queryUsage(rollup, q),
      monthStatus(rollup, settings, now),
      rollup.get(WATERMARK.partition, WATERMARK.row),
    ]);
    const closedThrough = watermark?.value.closedThrough ? String(watermark.value.closedThrough) : undefined;
    return json(200, {
      object: 'sluice.usage',
      from: new Date(q.from).toISOString(),
      to: new Date(q.to).toISOString(),
      group_by: q.groupBy,
      // Minutes after this one are not rolled up yet (the rollup closes a minute ~2 minutes after it ends).
      closed_through: closedThrough ? new Date(Date.parse(windowIso(closedThrough)) + 60_000).toISOString() : null,
      data: groups,
      total,
      // A member sees its own team's month-to-date line only; the fleet and deployment totals are the admin's.
      month_to_date: q.team === undefined ? month : { ...month, scopes: month.scopes.filter((s) => s.scope === 'team' && s.name === q.team) },
      ...(q.team !== undefined ? { team: q.team } : {}),
    });
  } catch (err) {
    if (err instanceof ValidationError) {
      return json(400, { error: { code: err.code, message: err.message, param: err.param ?? null } });
    }
    return errorResponse(err, context);
  }
}

app.http('usage', { methods: ['GET'], route: 'v1/usage', authLevel: 'anonymous', handler: usage });
