/**
 * The HTTP functions' door: every /api/v1 route except health asks `authorize` first. A caller without
 * valid credentials gets 401 in the OpenAI error shape before anything is read or written; the key itself is never
 * logged or echoed. Ownership checks answer 404 for another team's resources, so ids leak nothing.
 */
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import type { Principal } from '../core/teams/auth';
import { errorBody, json } from './http';
import { getServices } from './services';

export type Authorized = { principal: Principal; denied?: undefined } | { principal?: undefined; denied: HttpResponseInit };

export async function authorize(request: HttpRequest, opts: { admin?: boolean } = {}): Promise<Authorized> {
  const result = await getServices().auth.authenticate((name) => request.headers.get(name), Date.now());
  if (!result.ok) {
    return {
      denied: json(401, errorBody(result.code, result.message, undefined, 'invalid_request_error'), { 'www-authenticate': 'Bearer realm="sluice"' }),
    };
  }
  if (opts.admin && result.principal.role !== 'admin') {
    return { denied: json(403, errorBody('admin_required', 'This route needs an admin key or the admin Entra ID role.', undefined, 'permission_error')) };
  }
  return { principal: result.principal };
}

/** May this caller see a resource owned by `team`? Admins see every team's. */
export function canSee(principal: Principal, team: string | undefined): boolean {
  return principal.role === 'admin' || principal.team.id === team;
}
