/**
 * What the admin API does with teams and keys, over the TeamRepository. Used by the HTTP admin routes,
 * the `sluice` CLI's bootstrap and the local stack.
 */
import { SluiceError, ValidationError } from '../errors';
import {
  applyTeamUpdate,
  createKeySchema,
  createTeamSchema,
  leastUsedLane,
  mintKey,
  newTeam,
  parseWith,
  updateTeamSchema,
  type ApiKeyRecord,
  type KeyRole,
  type Team,
  type TeamRepository,
} from './model';

export class NotFoundError extends SluiceError {
  constructor(code: string, message: string) {
    super(code, message, false, 404);
  }
}

export class ConflictError extends SluiceError {
  constructor(code: string, message: string) {
    super(code, message, false, 409);
  }
}

export async function createTeam(repo: TeamRepository, body: unknown, lanes: number, now: number): Promise<Team> {
  const input = parseWith(createTeamSchema, body, 'team');
  const team = newTeam(input, leastUsedLane(await repo.listTeams(), lanes), now);
  if (!(await repo.createTeam(team))) throw new ConflictError('team_exists', `team "${team.id}" already exists`);
  return team;
}

export async function updateTeam(repo: TeamRepository, id: string, body: unknown, now: number): Promise<Team> {
  const patch = parseWith(updateTeamSchema, body, 'team');
  const team = await requireTeam(repo, id);
  const next = applyTeamUpdate(team, patch, now);
  await repo.putTeam(next);
  return next;
}

export async function requireTeam(repo: TeamRepository, id: string): Promise<Team> {
  const team = await repo.getTeam(id);
  if (!team) throw new NotFoundError('team_not_found', `No team with id "${id}"`);
  return team;
}

/** Fresh ids tried when a minted key id is taken (64 random bits: a second collision means something is wrong). */
const MINT_ATTEMPTS = 3;

/** Mints a key for the team; the returned `key` is shown once and never stored. Never replaces an existing key. */
export async function createKey(repo: TeamRepository, teamId: string, body: unknown, now: number): Promise<{ key: string; record: ApiKeyRecord }> {
  const input = parseWith(createKeySchema, body, 'key');
  await requireTeam(repo, teamId);
  let expiresAt: number | undefined;
  if (input.expires_in_s !== undefined) expiresAt = now + input.expires_in_s * 1000;
  if (input.expires_at !== undefined) expiresAt = Date.parse(input.expires_at);
  if (expiresAt !== undefined && expiresAt <= now) throw new ValidationError('key.expires_at: must be in the future', 'expires_at');
  for (let attempt = 0; attempt < MINT_ATTEMPTS; attempt++) {
    const minted = mintKey(teamId, { role: (input.role ?? 'member') as KeyRole, ...(input.name !== undefined ? { name: input.name } : {}), ...(expiresAt !== undefined ? { expiresAt } : {}), now });
    if (await repo.createKey(minted.record)) return minted;
  }
  throw new ConflictError('key_id_conflict', 'Could not find a free key id; try again.');
}

export async function revokeKey(repo: TeamRepository, teamId: string, keyId: string, now: number): Promise<ApiKeyRecord> {
  const key = await repo.getKey(keyId);
  if (!key || key.team !== teamId) throw new NotFoundError('key_not_found', `No key "${keyId}" for team "${teamId}"`);
  if (key.revokedAt !== undefined) return key;
  const revoked = { ...key, revokedAt: now };
  await repo.putKey(revoked);
  return revoked;
}

/** Creates the team if missing (bootstrap and `npm start`), then mints a key of `role`. */
export async function ensureTeamWithKey(repo: TeamRepository, teamId: string, role: KeyRole, lanes: number, now: number, name?: string) {
  const team = (await repo.getTeam(teamId)) ?? (await createTeam(repo, { id: teamId }, lanes, now).catch(async (err) => {
    if (err instanceof ConflictError) return requireTeam(repo, teamId);
    throw err;
  }));
  const minted = await createKey(repo, team.id, { role, ...(name ? { name } : {}) }, now);
  return { team, ...minted };
}
