/**
 * Teams and API keys. Admin routes under /api/v1/admin/teams manage teams, shares, budgets and keys; a
 * new key is shown once in the creation answer and only its hash is kept. GET /api/v1/me tells any caller who
 * Sluice thinks they are.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { createKey, createTeam, requireTeam, revokeKey, updateTeam } from '../core/teams/admin';
import { toKeyView, toTeamView, TEAM_ID_PATTERN, KEY_ID_PATTERN } from '../core/teams/model';
import { authorize } from '../runtime/auth';
import { errorBody, errorResponse, json, readJsonBody } from '../runtime/http';
import { getServices } from '../runtime/services';

const SMALL_BODY = 64 * 1024;

type Handler = (request: HttpRequest, context: InvocationContext, who: string) => Promise<HttpResponseInit>;

/** Admin-only wrapper: authorise, map errors, log who did what (the key id, never the key). */
function adminRoute(handler: Handler) {
  return async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    try {
      const auth = await authorize(request, { admin: true });
      if (auth.denied) return auth.denied;
      const team = request.params.team;
      if (team !== undefined && !TEAM_ID_PATTERN.test(team)) return json(404, errorBody('team_not_found', `No team with id "${team}"`, 'team'));
      return await handler(request, context, auth.principal.via);
    } catch (err) {
      return errorResponse(err, context);
    }
  };
}

const listTeams: Handler = async () => {
  const teams = await getServices().teams.listTeams();
  return json(200, { object: 'list', data: teams.sort((a, b) => a.id.localeCompare(b.id)).map(toTeamView) });
};

const postTeam: Handler = async (request, context, who) => {
  const { teams, config } = getServices();
  const team = await createTeam(teams, await readJsonBody(request, SMALL_BODY), config.teams.lanes, Date.now());
  context.info(`[team=${team.id}] created by ${who} (lane ${team.lane}, weight ${team.weight})`);
  return json(201, toTeamView(team));
};

const getTeam: Handler = async (request) => json(200, toTeamView(await requireTeam(getServices().teams, request.params.team!)));

const patchTeam: Handler = async (request, context, who) => {
  const { teams, auth } = getServices();
  const team = await updateTeam(teams, request.params.team!, await readJsonBody(request, SMALL_BODY), Date.now());
  auth.forget(); // shares, budgets and disabled take effect on this instance at once
  context.info(`[team=${team.id}] updated by ${who}`);
  return json(200, toTeamView(team));
};

const listKeys: Handler = async (request) => {
  const { teams } = getServices();
  await requireTeam(teams, request.params.team!);
  const now = Date.now();
  return json(200, { object: 'list', data: (await teams.listKeys(request.params.team!)).map((k) => toKeyView(k, now)) });
};

const postKey: Handler = async (request, context, who) => {
  const { teams } = getServices();
  const now = Date.now();
  // An empty body is fine here (a member key that never expires).
  const body = request.headers.get('content-length') === '0' || !request.body ? {} : await readJsonBody(request, SMALL_BODY).catch((err) => {
    if ((err as { param?: string }).param === 'body' && /empty/.test((err as Error).message)) return {};
    throw err;
  });
  const { key, record } = await createKey(teams, request.params.team!, body, now);
  context.info(`[team=${record.team}] key ${record.id} (${record.role}) created by ${who}`);
  // The only time the key is ever shown.
  return json(201, { ...toKeyView(record, now), key });
};

const deleteKey: Handler = async (request, context, who) => {
  const { teams, auth } = getServices();
  const keyId = request.params.key ?? '';
  if (!KEY_ID_PATTERN.test(keyId)) return json(404, errorBody('key_not_found', `No key "${keyId}"`, 'key'));
  const revoked = await revokeKey(teams, request.params.team!, keyId, Date.now());
  auth.forget(keyId);
  context.info(`[team=${revoked.team}] key ${revoked.id} revoked by ${who}`);
  return json(200, toKeyView(revoked, Date.now()));
};

export async function me(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const auth = await authorize(request);
    if (auth.denied) return auth.denied;
    const { team, role, via, expiresAt } = auth.principal;
    return json(200, { object: 'sluice.principal', team: toTeamView(team), role, via, expires_at: expiresAt === undefined ? null : new Date(expiresAt).toISOString() });
  } catch (err) {
    return errorResponse(err, context);
  }
}

app.http('adminTeams', { methods: ['GET', 'POST'], route: 'v1/admin/teams', authLevel: 'anonymous', handler: adminRoute((r, c, w) => (r.method === 'POST' ? postTeam(r, c, w) : listTeams(r, c, w))) });
app.http('adminTeam', { methods: ['GET', 'PATCH'], route: 'v1/admin/teams/{team}', authLevel: 'anonymous', handler: adminRoute((r, c, w) => (r.method === 'PATCH' ? patchTeam(r, c, w) : getTeam(r, c, w))) });
app.http('adminKeys', { methods: ['GET', 'POST'], route: 'v1/admin/teams/{team}/keys', authLevel: 'anonymous', handler: adminRoute((r, c, w) => (r.method === 'POST' ? postKey(r, c, w) : listKeys(r, c, w))) });
app.http('adminKey', { methods: ['DELETE'], route: 'v1/admin/teams/{team}/keys/{key}', authLevel: 'anonymous', handler: adminRoute(deleteKey) });
app.http('me', { methods: ['GET'], route: 'v1/me', authLevel: 'anonymous', handler: me });
