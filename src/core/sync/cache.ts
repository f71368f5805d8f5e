/**
 * The exact cache of synchronous answers: an identical non-streaming chat completion or embeddings request of the
 * same team, to the same logical model and model version, is answered from the app's own storage until its TTL ends.
 *
 * - Key: sha256 (hex) of the team, logical model, model version, kind and the canonical request body (object keys
 *   sorted, no whitespace). `model` is left out of the body (the key names the logical model already; the OpenAI path
 *   sends it and the Azure path does not), and so are `stream` and `stream_options` (streaming requests never reach
 *   the cache). `user` stays in: it names the application's end user, and answering one end user with what was
 *   generated for another is not what a team opts into.
 * - Isolation: the team is in the hash and in the partition, and an entry read back must name the team asking.
 * - Size: answers over MAX_CACHED_BODY_BYTES (UTF-8) are not cached: the store splits bodies across table properties
 *   and the entity must stay under Table Storage's 1 MiB, counted as sent (UTF-8) and as stored (UTF-16).
 * - Expiry: an expired entry is a miss and is deleted when met; besides, each process sweeps the partition it just
 *   wrote at most once a minute (one page of expired entries), so entries nobody asks for again do not pile up.
 * - Outage: a store call that throws or takes longer than `timeoutMs` is a miss (or an unsaved answer), never an
 *   error; a warning is logged at most once a minute.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../errors';
import type { TeamCacheSetting } from '../teams/model';
import type { CachedAnswer, SyncCache } from './cacheContract';

export type { CachedAnswer, SyncCache } from './cacheContract';

/** Largest answer body cached, UTF-8 bytes: at most 450,000 characters, 900 KB as UTF-16, under the 1 MiB entity. */
export const MAX_CACHED_BODY_BYTES = 450_000;
/** The request header that opts a request in (`exact`, `exact; ttl=<seconds>`) or out (`off`). */
export const CACHE_HEADER = 'x-sluice-cache';
/** Warnings about an unreachable cache, and sweeps, happen at most this often per process. */
const QUIET_MS = 60_000;
/** Expired entries one sweep deletes at most. */
const SWEEP_LIMIT = 100;

export interface CacheEntry {
  partition: string;
  row: string;
  team: string;
  /** Epoch ms after which the entry is a miss. */
  expiresAt: number;
  answer: CachedAnswer;
}

/** Where entries live (src/azure/cacheStore.ts). */
export interface CacheStore {
  get(partition: string, row: string): Promise<CacheEntry | undefined>;
  put(entry: CacheEntry): Promise<void>;
  delete(partition: string, row: string): Promise<void>;
  /** Deletes up to `limit` entries of `partition` that expired before `now`; resolves how many. */
  sweep(partition: string, now: number, limit: number): Promise<number>;
}

export interface ExactCacheDeps {
  store: CacheStore;
  /** The team's cache setting (undefined: none). May read storage; a failure counts as no setting. */
  settingOf(team: string, now: number): Promise<TeamCacheSetting | undefined>;
  settings: { defaultTtlMs: number; maxTtlMs: number; timeoutMs: number };
  warn(message: string): void;
  debug?(message: string): void;
  /** Runs fn after ms; returns a cancel function. @default setTimeout */
  schedule?(fn: () => void, ms: number): () => void;
}

type Kind = 'chat' | 'embeddings';

/** JSON with object keys sorted at every level and no whitespace: equal for requests that differ only in layout. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const fields = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${fields.join(',')}}`;
}

/** Request fields that never change a cacheable answer (see the file comment). */
const IGNORED_FIELDS = new Set(['model', 'stream', 'stream_options']);

/** Where a request's answer is kept: partition = team + first two hex digits of the hash, row = the hash. */
export function cacheKey(team: string, model: string, modelVersion: string, kind: Kind, body: unknown): { partition: string; row: string } {
  const request = body !== null && typeof body === 'object' && !Array.isArray(body)
    ? Object.fromEntries(Object.entries(body).filter(([k]) => !IGNORED_FIELDS.has(k)))
    : body;
  const row = createHash('sha256').update(canonicalJson([team, model, modelVersion, kind, request])).digest('hex');
  return { partition: `${team}~${row.slice(0, 2)}`, row };
}

/** A parsed `x-sluice-cache` header: undefined when absent. */
export type CacheHeader = { mode: 'off' } | { mode: 'exact'; ttlSeconds?: number };

/** Parses `exact`, `exact; ttl=<seconds>` or `off` (any case, any spacing); anything else is a 400. */
export function parseCacheHeader(raw: string | null): CacheHeader | undefined {
  if (raw === null || raw.trim() === '') return undefined;
  const bad = () => new ValidationError(`${CACHE_HEADER}: expected "exact", "exact; ttl=<seconds>" or "off", got "${raw.slice(0, 100)}"`, CACHE_HEADER);
  const [mode, ...params] = raw.split(';').map((p) => p.trim().toLowerCase());
  if (mode === 'off' && params.length === 0) return { mode: 'off' };
  if (mode !== 'exact' || params.length > 1) throw bad();
  if (params.length === 0) return { mode: 'exact' };
  const m = /^ttl\s*=\s*(\d{1,9})$/.exec(params[0]!);
  if (!m || Number(m[1]) < 1) throw bad();
  return { mode: 'exact', ttlSeconds: Number(m[1]) };
}

/**
 * The TTL (ms) a request may use the cache with, or undefined. The header wins over the team setting (`off` opts a
 * request out; `exact` opts it in); a TTL comes from the header, else the team setting, else the default, and is cut
 * to the cap.
 */
export function cachePolicy(header: CacheHeader | undefined, team: TeamCacheSetting | undefined, settings: { defaultTtlMs: number; maxTtlMs: number }): number | undefined {
  if (header?.mode === 'off') return undefined;
  if (header === undefined && team?.mode !== 'exact') return undefined;
  const seconds = (header?.mode === 'exact' ? header.ttlSeconds : undefined) ?? team?.ttlSeconds;
  return Math.min(seconds !== undefined ? seconds * 1000 : settings.defaultTtlMs, settings.maxTtlMs);
}

const defaultSchedule = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return () => clearTimeout(t);
};

export class ExactCache implements SyncCache {
  private lastWarnAt = Number.NEGATIVE_INFINITY;
  private quietWarnings = 0;
  private lastSweepAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: ExactCacheDeps) {}

  async policy(team: string, headers: { get(name: string): string | null }, now: number): Promise<number | undefined> {
    const header = parseCacheHeader(headers.get(CACHE_HEADER));
    if (header?.mode === 'off') return undefined;
    const setting = await this.deps.settingOf(team, now).catch(() => undefined);
    return cachePolicy(header, setting, this.deps.settings);
  }

  async lookup(team: string, model: string, modelVersion: string, kind: Kind, body: unknown, now: number): Promise<CachedAnswer | undefined> {
    try {
      const { partition, row } = cacheKey(team, model, modelVersion, kind, body);
      const entry = await this.bounded(this.deps.store.get(partition, row), 'read');
      if (!entry || entry.team !== team) return undefined;
      if (entry.expiresAt <= now) {
        this.deps.store.delete(partition, row).catch(() => {});
        return undefined;
      }
      return entry.answer;
    } catch (err) {
      this.outage(now, err);
      return undefined;
    }
  }

  async save(team: string, model: string, modelVersion: string, kind: Kind, body: unknown, answer: CachedAnswer, ttlMs: number, now: number): Promise<void> {
    if (!(ttlMs > 0)) return;
    const bytes = Buffer.byteLength(answer.body, 'utf8');
    if (bytes > MAX_CACHED_BODY_BYTES) {
      this.deps.debug?.(`[team=${team}] ${kind} answer of ${bytes} bytes is over the cache's ${MAX_CACHED_BODY_BYTES}: not cached`);
      return;
    }
    try {
      const { partition, row } = cacheKey(team, model, modelVersion, kind, body);
      await this.bounded(this.deps.store.put({ partition, row, team, expiresAt: now + ttlMs, answer }), 'write');
      if (now - this.lastSweepAt >= QUIET_MS) {
        this.lastSweepAt = now;
        // In the background: a sweep must not hold the request that happened to trigger it.
        this.deps.store.sweep(partition, now, SWEEP_LIMIT).then(
          (n) => n > 0 && this.deps.debug?.(`cache: swept ${n} expired entries of ${partition}`),
          () => {},
        );
      }
    } catch (err) {
      this.outage(now, err);
    }
  }

  /** The store call, or a rejection once timeoutMs has passed (the call itself is left to finish or fail). */
  private bounded<T>(call: Promise<T>, what: string): Promise<T> {
    call.catch(() => {});
    const schedule = this.deps.schedule ?? defaultSchedule;
    return new Promise<T>((resolve, reject) => {
      const cancel = schedule(() => reject(new Error(`cache ${what} took over ${this.deps.settings.timeoutMs} ms`)), this.deps.settings.timeoutMs);
      call.then(
        (v) => (cancel(), resolve(v)),
        (e: unknown) => (cancel(), reject(e)),
      );
    });
  }

  private outage(now: number, err: unknown): void {
    if (now - this.lastWarnAt < QUIET_MS) {
      this.quietWarnings += 1;
      return;
    }
    const more = this.quietWarnings > 0 ? ` (${this.quietWarnings} more since the last warning)` : '';
    this.lastWarnAt = now;
    this.quietWarnings = 0;
    this.deps.warn(`cache unavailable, answering without it: ${(err as Error).message ?? String(err)}${more}`);
  }
}
