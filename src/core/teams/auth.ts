/**
 * Who is calling. A request carries a Sluice API key (`api-key: slk_…` or `Authorization: Bearer slk_…`,
 * so the openai SDKs work with `apiKey` unchanged) or, in Azure, a Microsoft Entra ID token that App Service
 * Authentication has already validated and turned into the `x-ms-client-principal` header.
 *
 * Key records are cached per process by key id for `cacheMs` (a revoked key stops working on other instances within
 * that time; the instance that revoked it forgets it at once), and the secret is checked against the cached hash on
 * every request. Only key ids that exist enter that cache, in a bounded LRU, so no flood of made-up keys can push a
 * valid key out. Text that is not shaped like a key is refused without a lookup; a well-formed id that does not exist
 * is remembered briefly in a separate small LRU, so repeating it costs one storage read per interval.
 */
import { LRUCache } from 'lru-cache';
import { keyState, parseKey, secretMatches, type ApiKeyRecord, type KeyRole, type Team, type TeamRepository } from './model';

export interface Principal {
  team: Team;
  role: KeyRole;
  /** How the caller proved who they are: `key:<key id>` or `entra:<object id>`. Safe to log (never the secret). */
  via: string;
  /** When the key used ends (cached grants end with it), epoch ms. */
  expiresAt?: number;
}

export type AuthResult = { ok: true; principal: Principal } | { ok: false; code: 'missing_credentials' | 'invalid_api_key' | 'team_disabled' | 'unmapped_principal'; message: string };

/** Entra ID principal → team mapping: selectors `app:<application id>`, `group:<object id>`, `role:<app role>`, `oid:<object id>`. */
export interface EntraMapping {
  teams: Record<string, string>;
  /** Selectors whose principals are admins. */
  admins: string[];
  /** Team for admins that no selector maps to a team. @default "admin" */
  adminTeam: string;
  /**
   * App Service Authentication fronts the app (the platform's WEBSITE_AUTH_ENABLED). Only then has the platform
   * validated the token and stripped any client-sent x-ms-client-principal; otherwise anyone can write that header,
   * so it is ignored. @default false
   */
  appServiceAuth: boolean;
}

export interface AuthenticatorOptions {
  repo: TeamRepository;
  /** How long a key or team lookup is reused, ms. @default 30000 */
  cacheMs?: number;
  /** How long a failed lookup is reused, ms. @default 5000 */
  negativeCacheMs?: number;
  /** Most key records cached (least recently used go first). @default 10000 */
  cachedKeys?: number;
  /** Most unknown key ids remembered. @default 1000 */
  cachedMisses?: number;
  /** Entra ID mapping; its principal header is read only where App Service Authentication fronts the app. */
  entra?: EntraMapping;
}

type HeaderGetter = (name: string) => string | null | undefined;

interface Cached<T> {
  value: T;
  until: number;
}

export class Authenticator {
  /** Key records by key id: only ids that exist. */
  private readonly keys: LRUCache<string, Cached<ApiKeyRecord>>;
  /** Key ids the table does not have. */
  private readonly misses: LRUCache<string, Cached<true>>;
  private readonly teams = new Map<string, Cached<Team | undefined>>();
  private readonly cacheMs: number;
  private readonly negativeMs: number;

  constructor(private readonly opts: AuthenticatorOptions) {
    this.cacheMs = opts.cacheMs ?? 30_000;
    this.negativeMs = opts.negativeCacheMs ?? 5_000;
    this.keys = new LRUCache({ max: opts.cachedKeys ?? 10_000 });
    this.misses = new LRUCache({ max: opts.cachedMisses ?? 1_000 });
  }

  /** Entries held by the key caches (bounded by `cachedKeys` and `cachedMisses`). */
  get cacheSize(): { keys: number; misses: number } {
    return { keys: this.keys.size, misses: this.misses.size };
  }

  async authenticate(header: HeaderGetter, now: number): Promise<AuthResult> {
    const presented = presentedKey(header);
    if (presented !== undefined) return this.byKey(presented, now);
    const principalHeader = this.opts.entra && platformAuthenticated(this.opts.entra, header) ? header('x-ms-client-principal') : undefined;
    if (principalHeader) return this.byEntra(principalHeader, now);
    return { ok: false, code: 'missing_credentials', message: 'No API key: send it as the api-key header or as Authorization: Bearer <key>.' };
  }

  /** Forget cached answers for a key (after revoking it) or for every key (after changing a team). */
  forget(keyId?: string): void {
    if (keyId === undefined) {
      this.keys.clear();
      this.misses.clear();
      this.teams.clear();
      return;
    }
    this.keys.delete(keyId);
    this.misses.delete(keyId);
  }

  private async byKey(presented: string, now: number): Promise<AuthResult> {
    const invalid: AuthResult = { ok: false, code: 'invalid_api_key', message: 'Incorrect API key provided, or the key was revoked or has expired.' };
    const parsed = parseKey(presented);
    if (!parsed) return invalid;
    const record = await this.keyRecord(parsed.id, now);
    if (!record || !secretMatches(parsed.secret, record.hash) || keyState(record, now) !== 'active') return invalid;
    const team = await this.team(record.team, now);
    if (!team) return invalid;
    if (team.disabled) return { ok: false, code: 'team_disabled', message: `Team "${team.id}" is disabled; ask a Sluice admin.` };
    return { ok: true, principal: { team, role: record.role, via: `key:${record.id}`, ...(record.expiresAt !== undefined ? { expiresAt: record.expiresAt } : {}) } };
  }

  private async keyRecord(id: string, now: number): Promise<ApiKeyRecord | undefined> {
    const hit = this.keys.get(id);
    if (hit && hit.until > now) return hit.value;
    const miss = this.misses.get(id);
    if (miss && miss.until > now) return undefined;
    const record = await this.opts.repo.getKey(id);
    if (record) {
      this.misses.delete(id);
      this.keys.set(id, { value: record, until: now + this.cacheMs });
    } else {
      this.keys.delete(id);
      this.misses.set(id, { value: true, until: now + this.negativeMs });
    }
    return record;
  }

  private async byEntra(encoded: string, now: number): Promise<AuthResult> {
    const entra = this.opts.entra!;
    const claims = decodeClientPrincipal(encoded);
    const unmapped: AuthResult = { ok: false, code: 'unmapped_principal', message: 'This Entra ID principal is not mapped to a Sluice team.' };
    if (!claims) return unmapped;
    const selectors = selectorsOf(claims);
    const admin = entra.admins.some((s) => selectors.has(s));
    const mapped = mappedTeam(selectors, entra.teams) ?? (admin ? entra.adminTeam : undefined);
    if (!mapped) return unmapped;
    const team = await this.team(mapped, now);
    if (!team) return { ...unmapped, message: `This Entra ID principal maps to team "${mapped}", which does not exist.` };
    if (team.disabled) return { ok: false, code: 'team_disabled', message: `Team "${team.id}" is disabled; ask a Sluice admin.` };
    const oid = claims.get(OID[1]!)?.[0] ?? claims.get(OID[0]!)?.[0] ?? 'unknown';
    return { ok: true, principal: { team, role: admin ? 'admin' : 'member', via: `entra:${oid}` } };
  }

  /** The team as this instance last read it (the same cache requests are authorised with). */
  cachedTeam(id: string, now: number): Promise<Team | undefined> {
    return this.team(id, now);
  }

  private async team(id: string, now: number): Promise<Team | undefined> {
    const hit = this.teams.get(id);
    if (hit && hit.until > now) return hit.value;
    const team = await this.opts.repo.getTeam(id);
    this.teams.set(id, { value: team, until: now + (team ? this.cacheMs : this.negativeMs) });
    return team;
  }
}

/** The key from `api-key`, or from `Authorization: Bearer` when it is not an Entra token (those come via Easy Auth). */
export function presentedKey(header: HeaderGetter): string | undefined {
  const apiKey = header('api-key')?.trim();
  if (apiKey) return apiKey;
  const authz = header('authorization')?.trim();
  const m = authz ? /^Bearer\s+(\S+)$/i.exec(authz) : null;
  if (!m) return undefined;
  // A JWT (three dot-separated parts) is an Entra token that App Service Authentication validates, not a Sluice key.
  return m[1]!.split('.').length === 3 ? undefined : m[1]!;
}

/**
 * Did App Service Authentication put the principal header there? The app setting says the platform validates tokens
 * (and strips client-sent x-ms-* headers); the identity-provider header, which the platform sets with the principal,
 * says Entra ID validated this one.
 */
function platformAuthenticated(entra: EntraMapping, header: HeaderGetter): boolean {
  return entra.appServiceAuth && header('x-ms-client-principal-idp')?.trim().toLowerCase() === 'aad';
}

/** Claims of App Service Authentication's `x-ms-client-principal` (base64 JSON), by type. */
function decodeClientPrincipal(encoded: string): Map<string, string[]> | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as { claims?: Array<{ typ?: unknown; val?: unknown }> };
    if (!Array.isArray(parsed.claims)) return undefined;
    const claims = new Map<string, string[]>();
    for (const c of parsed.claims) {
      if (typeof c.typ !== 'string' || typeof c.val !== 'string') continue;
      claims.set(c.typ, [...(claims.get(c.typ) ?? []), c.val]);
    }
    return claims;
  } catch {
    return undefined;
  }
}

const OID = ['oid', 'http://schemas.microsoft.com/identity/claims/objectidentifier'];
const ROLES = ['roles', 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role'];
/** Claims only a token issued for a signed-in user carries (delegated scopes, the user's names). */
const USER_CLAIMS = [
  'scp',
  'http://schemas.microsoft.com/identity/claims/scope',
  'name',
  'preferred_username',
  'upn',
  'unique_name',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name',
];

/**
 * Selector kinds, most specific first; the first kind with a mapped selector decides the team. Within a kind, the
 * selector listed first in SLUICE_ENTRA_TEAMS wins, so a user in two mapped groups always lands in the same team.
 */
const PRECEDENCE = ['oid', 'app', 'role', 'group'] as const;

/** The caller's selectors. `app:` only for app-only tokens: in a user's token `appid`/`azp` is the client app the user signed in through. */
function selectorsOf(claims: Map<string, string[]>): Set<string> {
  const all = (types: string[]) => types.flatMap((t) => claims.get(t) ?? []);
  return new Set([
    ...all(OID).map((v) => `oid:${v}`),
    ...(appOnly(claims) ? all(['appid', 'azp']).map((v) => `app:${v}`) : []),
    ...all(ROLES).map((v) => `role:${v}`),
    ...all(['groups']).map((v) => `group:${v}`),
  ]);
}

/** Entra ID marks app-only tokens with `idtyp: app` (an optional claim); without it, an app-only token has no delegated scope and no user. */
function appOnly(claims: Map<string, string[]>): boolean {
  const idtyp = claims.get('idtyp');
  if (idtyp !== undefined) return idtyp.length === 1 && idtyp[0] === 'app';
  return USER_CLAIMS.every((t) => !claims.has(t));
}

function mappedTeam(selectors: Set<string>, teams: Record<string, string>): string | undefined {
  const entries = Object.entries(teams);
  for (const kind of PRECEDENCE) {
    const hit = entries.find(([selector]) => selector.startsWith(`${kind}:`) && selectors.has(selector));
    if (hit) return hit[1];
  }
  return undefined;
}
