/**
 * Settings of teams, API keys, Entra ID mapping and queue lanes (issue 10), read and validated once. Part of the
 * config: src/config.ts loadConfig() reads these, so a bad value stops the app at start-up naming the setting.
 *
 * SLUICE_QUEUE_LANES decides how many worker registrations exist (src/functions/worker.ts registers one per lane
 * and priority at import time), so it is read from process.env there too and must be the same on every instance.
 */
import { z } from 'zod';
import { ConfigError } from '../../configError';
import type { EntraMapping } from './auth';

type Env = Record<string, string | undefined>;

export interface TeamSettings {
  /** Table of teams and API key hashes. @default "sluiceteams" */
  table: string;
  /** How long an instance reuses a key or team lookup, ms (revocation reaches other instances within it). @default 30000 */
  authCacheMs: number;
  /** Entra ID principal mapping; undefined unless SLUICE_ENTRA_TEAMS or SLUICE_ENTRA_ADMINS is set. */
  entra?: EntraMapping;
  /** Queue lanes per priority; each team's jobs travel in one lane. 0: one plain FIFO queue (comparison runs). @default 4 */
  lanes: number;
  /** Weighted fair admission between teams at each deployment (false: first come, first served). @default true */
  fairShare: boolean;
  /** How long submit reuses a team's month-to-date cost, ms. @default 60000 */
  spendCacheMs: number;
}

export const MAX_LANES = 16;
export const DEFAULT_LANES = 4;

const selector = z.string().regex(/^(app|group|role|oid):.+$/, 'selectors look like app:<application id>, group:<object id>, role:<app role> or oid:<object id>');
const entraTeamsSchema = z.record(selector, z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'is not a team id'));

function int(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(name, `expected an integer from ${min} to ${max}, got "${raw}"`);
  return n;
}

function bool(env: Env, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw || raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(name, `expected true or false, got "${env[name]}"`);
}

/** The lane count, as the worker registrations need it at import time. */
export function laneCount(env: Env = process.env): number {
  return int(env, 'SLUICE_QUEUE_LANES', DEFAULT_LANES, 0, MAX_LANES);
}

export function loadTeamSettings(env: Env = process.env): TeamSettings {
  const table = env.SLUICE_TEAMS_TABLE?.trim() || 'sluiceteams';
  if (!/^[A-Za-z][A-Za-z0-9]{2,62}$/.test(table)) throw new ConfigError('SLUICE_TEAMS_TABLE', `"${table}" is not a valid table name`);
  const teamsRaw = env.SLUICE_ENTRA_TEAMS?.trim();
  const adminsRaw = env.SLUICE_ENTRA_ADMINS?.trim();
  let entra: EntraMapping | undefined;
  if (teamsRaw || adminsRaw) {
    let teams: Record<string, string> = {};
    if (teamsRaw) {
      let json: unknown;
      try {
        json = JSON.parse(teamsRaw);
      } catch (err) {
        throw new ConfigError('SLUICE_ENTRA_TEAMS', `not valid JSON (${(err as Error).message})`);
      }
      const parsed = entraTeamsSchema.safeParse(json);
      if (!parsed.success) throw new ConfigError('SLUICE_ENTRA_TEAMS', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      teams = parsed.data;
    }
    const admins = (adminsRaw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const a of admins) {
      if (!selector.safeParse(a).success) throw new ConfigError('SLUICE_ENTRA_ADMINS', `"${a}": selectors look like role:<app role>, group:<object id>, app:<application id> or oid:<object id>`);
    }
    entra = { teams, admins, adminTeam: env.SLUICE_ENTRA_ADMIN_TEAM?.trim() || 'admin' };
  }
  return {
    table,
    authCacheMs: int(env, 'SLUICE_AUTH_CACHE_MS', 30_000, 0),
    ...(entra ? { entra } : {}),
    lanes: laneCount(env),
    fairShare: bool(env, 'SLUICE_FAIR_SHARE'),
    spendCacheMs: int(env, 'SLUICE_TEAM_SPEND_CACHE_MS', 60_000, 0),
  };
}
