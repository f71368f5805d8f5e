/**
 * Teams and their API keys: who may submit work, how much of each deployment they are owed, and what
 * they may spend. Plain data, validation and key material; storage lives in src/azure/teamTable.ts.
 *
 * An API key looks like `slk_<key id>_<secret>`. Only sha256(secret) is stored; the key id lets a request be checked
 * with one point read. Keys are 32 random bytes, so a fast hash is enough (there is nothing to brute-force).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ValidationError } from '../errors';

export const TEAM_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const KEY_ID_PATTERN = /^[a-f0-9]{16}$/;
const KEY_PATTERN = /^slk_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

export type BudgetAction = 'warn' | 'stop';
export type KeyRole = 'member' | 'admin';

export interface Team {
  id: string;
  /** Shown in listings; defaults to the id. */
  name: string;
  /** Share of a contended deployment relative to other waiting teams. @default 1 */
  weight: number;
  /** Tokens per minute this team is guaranteed per logical model, ahead of weights. @default none */
  guaranteedTpm: Record<string, number>;
  /** Most jobs this team may have waiting in its queue lane; 0 = only the global limit. @default 0 */
  maxBacklog: number;
  /** Monthly spend limit in USD; 0 = none. @default 0 */
  monthlyBudgetUsd: number;
  /** At 100 % of the monthly budget: keep accepting (warn) or refuse new work (stop). @default "warn" */
  budgetAction: BudgetAction;
  /** Queue lane (0-based) the team's jobs travel in; assigned at creation, least-used first. */
  lane: number;
  disabled: boolean;
  /** Exact cache of the team's synchronous answers (src/core/sync/cache.ts). @default off */
  cache?: TeamCacheSetting;
  createdAt: number;
  updatedAt: number;
}

/** `exact`: identical non-streaming requests are answered from the cache for ttlSeconds (else the configured default). */
export interface TeamCacheSetting {
  mode: 'exact' | 'off';
  ttlSeconds?: number;
}

export interface ApiKeyRecord {
  id: string;
  team: string;
  role: KeyRole;
  /** sha256 of the secret part, hex. */
  hash: string;
  name: string;
  createdAt: number;
  /** Epoch ms after which the key is refused. */
  expiresAt?: number;
  revokedAt?: number;
}

const teamSettings = {
  name: z.string().min(1).max(200),
  weight: z.number().positive().max(1000),
  guaranteed_tpm: z.record(z.string().min(1), z.number().int().min(0)),
  max_backlog: z.number().int().min(0),
  monthly_budget_usd: z.number().min(0),
  budget_action: z.enum(['warn', 'stop']),
  lane: z.number().int().min(0),
  disabled: z.boolean(),
  cache: z.object({ mode: z.enum(['exact', 'off']), ttl_seconds: z.number().int().min(1).max(2_592_000).optional() }).strict(),
};

export const createTeamSchema = z.object({ id: z.string().regex(TEAM_ID_PATTERN, 'must be 1-63 lowercase letters, digits or hyphens'), ...teamSettings }).partial({
  name: true,
  weight: true,
  guaranteed_tpm: true,
  max_backlog: true,
  monthly_budget_usd: true,
  budget_action: true,
  lane: true,
  disabled: true,
  cache: true,
}).strict();

export const updateTeamSchema = z.object(teamSettings).partial().strict();

export const createKeySchema = z
  .object({
    name: z.string().min(1).max(200).optional(),
    role: z.enum(['member', 'admin']).optional(),
    /** Seconds from now, or an ISO time. */
    expires_in_s: z.number().int().positive().optional(),
    expires_at: z.string().datetime({ offset: true }).optional(),
  })
  .strict();

/** Parses with a schema, or throws a ValidationError naming the first bad field. */
export function parseWith<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const result = schema.safeParse(body ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.join('.');
  throw new ValidationError(`${what}${path ? `.${path}` : ''}: ${issue.message}`, path || what);
}

export function newTeam(input: z.output<typeof createTeamSchema>, lane: number, now: number): Team {
  return {
    id: input.id,
    name: input.name ?? input.id,
    weight: input.weight ?? 1,
    guaranteedTpm: input.guaranteed_tpm ?? {},
    maxBacklog: input.max_backlog ?? 0,
    monthlyBudgetUsd: input.monthly_budget_usd ?? 0,
    budgetAction: input.budget_action ?? 'warn',
    lane: input.lane ?? lane,
    disabled: input.disabled ?? false,
    ...(input.cache ? { cache: cacheSettingOf(input.cache) } : {}),
    createdAt: now,
    updatedAt: now,
  };
}

export function applyTeamUpdate(team: Team, patch: z.output<typeof updateTeamSchema>, now: number): Team {
  return {
    ...team,
    ...(patch.name !== undefined ? { name: patch.name } : {}),
    ...(patch.weight !== undefined ? { weight: patch.weight } : {}),
    ...(patch.guaranteed_tpm !== undefined ? { guaranteedTpm: patch.guaranteed_tpm } : {}),
    ...(patch.max_backlog !== undefined ? { maxBacklog: patch.max_backlog } : {}),
    ...(patch.monthly_budget_usd !== undefined ? { monthlyBudgetUsd: patch.monthly_budget_usd } : {}),
    ...(patch.budget_action !== undefined ? { budgetAction: patch.budget_action } : {}),
    ...(patch.lane !== undefined ? { lane: patch.lane } : {}),
    ...(patch.disabled !== undefined ? { disabled: patch.disabled } : {}),
    ...(patch.cache !== undefined ? { cache: cacheSettingOf(patch.cache) } : {}),
    updatedAt: now,
  };
}

function cacheSettingOf(input: { mode: 'exact' | 'off'; ttl_seconds?: number | undefined }): TeamCacheSetting {
  return { mode: input.mode, ...(input.ttl_seconds !== undefined ? { ttlSeconds: input.ttl_seconds } : {}) };
}

/** The least-used lane among `lanes` lanes, given the teams that exist (ties: lowest lane). */
export function leastUsedLane(teams: Pick<Team, 'lane'>[], lanes: number): number {
  const counts = new Array<number>(lanes).fill(0);
  for (const t of teams) if (t.lane < lanes) counts[t.lane]! += 1;
  return counts.indexOf(Math.min(...counts));
}

/** A new key: the one-time secret to show, and the record to store (hash only). */
export function mintKey(team: string, opts: { role: KeyRole; name?: string; expiresAt?: number; now: number }): { key: string; record: ApiKeyRecord } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return {
    key: `slk_${id}_${secret}`,
    record: { id, team, role: opts.role, hash: hashSecret(secret), name: opts.name ?? id, createdAt: opts.now, ...(opts.expiresAt !== undefined ? { expiresAt: opts.expiresAt } : {}) },
  };
}

/** Splits a presented key into id and secret, or undefined when it is not shaped like a Sluice key. */
export function parseKey(presented: string): { id: string; secret: string } | undefined {
  const m = KEY_PATTERN.exec(presented);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time check of a presented secret against the stored hash. */
export function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export function keyState(key: ApiKeyRecord, now: number): 'active' | 'revoked' | 'expired' {
  if (key.revokedAt !== undefined) return 'revoked';
  if (key.expiresAt !== undefined && key.expiresAt <= now) return 'expired';
  return 'active';
}

export function toTeamView(team: Team): Record<string, unknown> {
  return {
    id: team.id,
    object: 'sluice.team',
    name: team.name,
    weight: team.weight,
    guaranteed_tpm: team.guaranteedTpm,
    max_backlog: team.maxBacklog,
    monthly_budget_usd: team.monthlyBudgetUsd,
    budget_action: team.budgetAction,
    lane: team.lane,
    disabled: team.disabled,
    cache: { mode: team.cache?.mode ?? 'off', ttl_seconds: team.cache?.ttlSeconds ?? null },
    created_at: new Date(team.createdAt).toISOString(),
    updated_at: new Date(team.updatedAt).toISOString(),
  };
}

/** A key as listed: never the hash, never the secret. */
export function toKeyView(key: ApiKeyRecord, now: number): Record<string, unknown> {
  const iso = (t?: number) => (t === undefined ? null : new Date(t).toISOString());
  return {
    id: key.id,
    object: 'sluice.api_key',
    team: key.team,
    role: key.role,
    name: key.name,
    prefix: `slk_${key.id}_…`,
    status: keyState(key, now),
    created_at: iso(key.createdAt),
    expires_at: iso(key.expiresAt),
    revoked_at: iso(key.revokedAt),
  };
}

/** Storage of teams and keys as the core sees it. */
export interface TeamRepository {
  getTeam(id: string): Promise<Team | undefined>;
  listTeams(): Promise<Team[]>;
  /** Inserts; false when a team with that id exists. */
  createTeam(team: Team): Promise<boolean>;
  putTeam(team: Team): Promise<void>;
  getKey(id: string): Promise<ApiKeyRecord | undefined>;
  listKeys(team: string): Promise<ApiKeyRecord[]>;
  /** Inserts a new key; false (and nothing written) when a key with that id exists. */
  createKey(key: ApiKeyRecord): Promise<boolean>;
  /** Replaces an existing key (revocation). */
  putKey(key: ApiKeyRecord): Promise<void>;
}
