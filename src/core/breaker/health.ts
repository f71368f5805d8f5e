/**
 * EndpointHealth: the worker's view of every deployment's circuit breaker. The state lives in a shared
 * `BreakerStore` so one instance's discovery reaches all of them; each instance trusts its last read for at most
 * `cacheMs` (default 1 s), so the store sees at most one read per second per instance per deployment, and a write
 * only when a breaker changes state. Steady healthy traffic therefore costs no writes at all.
 */
import { randomUUID } from 'node:crypto';
import type { DeploymentRef } from '../budget/gate';
import {
  allows,
  claimProbe,
  closedState,
  DEFAULT_BREAKER_POLICY,
  recordFailure,
  recordSuccess,
  type BreakerPolicy,
  type BreakerState,
  type FailureKind,
  type Permission,
} from '../breaker';
import type { BreakerStore, StoredBreaker } from './store';

export type CallOutcome = { ok: true } | { ok: false; kind: FailureKind; retryAfterMs?: number; message: string };

export interface EndpointSnapshot {
  key: string;
  region?: string;
  deployment?: string;
  state: BreakerState['state'];
  lastError?: string;
  lastErrorAt?: number;
  /** Epoch ms the breaker last opened. */
  openedAt?: number;
  /** open: epoch ms a probe may start; half-open: epoch ms the probe lease runs out. */
  until?: number;
}

export interface EndpointHealth {
  /** May this deployment be tried now? 'probe' means this call holds the half-open probe: report its outcome. */
  check(ref: DeploymentRef, now: number): Promise<Permission>;
  /** Report a call outcome. Never throws. */
  report(ref: DeploymentRef, outcome: CallOutcome, now: number): Promise<void>;
  /** Epoch ms an open breaker will allow a probe, from this instance's last read; undefined when closed or unknown. */
  retryAt(ref: DeploymentRef): number | undefined;
  /** For GET /api/v1/health: each known deployment's breaker. */
  snapshot(): Promise<EndpointSnapshot[]>;
}

/** The breaker switched off: every deployment is always tried (the baseline, or `SLUICE_BREAKER_ENABLED=false`). */
export const alwaysClosed: EndpointHealth = {
  check: async () => 'closed',
  report: async () => {},
  retryAt: () => undefined,
  snapshot: async () => [],
};

export interface SharedEndpointHealthOptions {
  store: BreakerStore;
  /** Thresholds and cool-downs; see `BreakerPolicy` for defaults. */
  policy?: Partial<BreakerPolicy>;
  /** This instance's name as a probe holder. @default a random UUID */
  instanceId?: string;
  /** Longest time a read of the shared state is trusted, ms. @default 1000 */
  cacheMs?: number;
  /** Most deployments kept in the local cache (least recently used go first). @default 1000 */
  maxCached?: number;
  /** Deployments to list in snapshots even before they have a stored state. */
  refs?: readonly DeploymentRef[];
  /** Store failures are reported here and otherwise ignored: a broken breaker table must not stop jobs. */
  onError?(err: unknown, key: string): void;
}

interface CacheEntry {
  stored?: StoredBreaker;
  /** `now` of the read (or of our own write). */
  readAt: number;
  /** Order in which this knowledge was obtained (read started / write done): an older read never replaces it. */
  seq: number;
}

/** A CAS loop gives up after this many lost races; by then another instance has decided for us. */
const MAX_CAS_TRIES = 4;

export class SharedEndpointHealth implements EndpointHealth {
  readonly instanceId: string;
  readonly policy: BreakerPolicy;
  private readonly store: BreakerStore;
  private readonly cacheMs: number;
  private readonly maxCached: number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly reading = new Map<string, Promise<CacheEntry>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly refs = new Map<string, DeploymentRef>();
  /** Deployments this instance just saw fail in a way that opens the breaker, until the shared write settles. */
  private readonly opening = new Map<string, number>();
  private seq = 0;
  private readonly onError: (err: unknown, key: string) => void;

  constructor(options: SharedEndpointHealthOptions) {
    this.store = options.store;
    this.policy = { ...DEFAULT_BREAKER_POLICY, ...options.policy };
    this.instanceId = options.instanceId ?? randomUUID();
    this.cacheMs = options.cacheMs ?? 1_000;
    this.maxCached = options.maxCached ?? 1_000;
    this.onError = options.onError ?? (() => {});
    for (const ref of options.refs ?? []) this.refs.set(ref.key, ref);
  }

  async check(ref: DeploymentRef, now: number): Promise<Permission> {
    this.remember(ref);
    if ((this.opening.get(ref.key) ?? -Infinity) > now) return 'open';
    const entry = await this.fresh(ref.key, now);
    const permission = allows(stateOf(entry), now);
    if (permission !== 'probe') return permission;
    return this.exclusive(ref.key, () => this.claim(ref.key, now));
  }

  async report(ref: DeploymentRef, outcome: CallOutcome, now: number): Promise<void> {
    this.remember(ref);
    const cached = this.cache.get(ref.key);
    // A success changes only a half-open breaker this instance probes; skip the lock and any read otherwise.
    if (outcome.ok && !(cached && isProbeOf(stateOf(cached), this.instanceId))) return;
    const step = (s: BreakerState) =>
      outcome.ok
        ? recordSuccess(s, now, this.instanceId)
        : recordFailure(s, { kind: outcome.kind, retryAfterMs: outcome.retryAfterMs, message: outcome.message }, now, this.policy, this.instanceId);
    // If this failure opens the breaker, this instance stops sending at once, before the shared write lands:
    // otherwise calls checked while the write is in flight would hit the dead endpoint too.
    const local = step(cached ? stateOf(cached) : closedState());
    if (!outcome.ok && local.state === 'open') this.opening.set(ref.key, local.until ?? now);
    try {
      await this.exclusive(ref.key, () => this.update(ref.key, now, step));
    } finally {
      this.opening.delete(ref.key);
    }
  }

  retryAt(ref: DeploymentRef): number | undefined {
    const entry = this.cache.get(ref.key);
    const s = entry && stateOf(entry);
    return s && s.state !== 'closed' ? s.until : undefined;
  }

  async snapshot(): Promise<EndpointSnapshot[]> {
    const rows = new Map((await this.store.list()).map((row) => [row.key, row.state]));
    const keys = new Set([...this.refs.keys(), ...rows.keys()]);
    return [...keys].sort().map((key) => {
      const s = rows.get(key) ?? closedState();
      const ref = this.refs.get(key);
      return {
        key,
        region: ref?.region,
        deployment: ref?.deployment,
        state: s.state,
        lastError: s.lastError,
        lastErrorAt: s.lastErrorAt,
        openedAt: s.openedAt,
        until: s.until,
      };
    });
  }

  /** Local cache size (tests check it stays bounded). */
  get cachedCount(): number {
    return this.cache.size;
  }

  /** The cached entry if younger than cacheMs, else one read shared by all concurrent callers. */
  private async fresh(key: string, now: number): Promise<CacheEntry> {
    const cached = this.cache.get(key);
    if (cached && now - cached.readAt < this.cacheMs && now >= cached.readAt) return cached;
    return this.reread(key, now);
  }

  private reread(key: string, now: number): Promise<CacheEntry> {
    const pending = this.reading.get(key);
    if (pending) return pending;
    const read = this.readNow(key, now).finally(() => this.reading.delete(key));
    this.reading.set(key, read);
    return read;
  }

  /**
   * One store read; returns the newest knowledge. A read that started before a newer read or one of our writes
   * finished does not replace it (a slow read racing a write would otherwise resurrect a closed breaker).
   */
  private async readNow(key: string, now: number): Promise<CacheEntry> {
    const seq = ++this.seq;
    try {
      return this.put(key, { stored: await this.store.read(key), readAt: now, seq });
    } catch (err) {
      this.onError(err, key);
      // Keep using what we knew (or closed): storage trouble must not stop traffic.
      return this.cache.get(key) ?? { readAt: -Infinity, seq: 0 };
    }
  }

  /** Claims the half-open probe by compare-and-swap; exactly one instance (and one caller in it) wins. */
  private async claim(key: string, now: number): Promise<Permission> {
    let entry = this.cache.get(key) ?? (await this.reread(key, now));
    for (let tries = 0; tries < MAX_CAS_TRIES; tries += 1) {
      const current = stateOf(entry);
      const permission = allows(current, now);
      if (permission !== 'probe') return permission;
      const next = claimProbe(current, this.instanceId, now, this.policy);
      const written = await this.write(key, next, entry, now);
      if (written) return 'probe';
      entry = await this.readNow(key, now);
    }
    return 'open';
  }

  /** Applies `step` to the shared state and writes it if it changed, re-reading after each lost race. */
  private async update(key: string, now: number, step: (s: BreakerState) => BreakerState): Promise<void> {
    let entry = this.cache.get(key) ?? (await this.reread(key, now));
    for (let tries = 0; tries < MAX_CAS_TRIES; tries += 1) {
      const current = stateOf(entry);
      const next = step(current);
      if (next === current) return;
      if (await this.write(key, next, entry, now)) return;
      entry = await this.readNow(key, now);
    }
  }

  private async write(key: string, state: BreakerState, base: CacheEntry, now: number): Promise<boolean> {
    try {
      const etag = await this.store.write(key, state, base.stored?.etag);
      if (etag === undefined) return false;
      this.put(key, { stored: { state, etag }, readAt: now, seq: ++this.seq });
      return true;
    } catch (err) {
      this.onError(err, key);
      return false;
    }
  }

  /** Caches `entry` unless newer knowledge is already cached; returns whichever is newest. */
  private put(key: string, entry: CacheEntry): CacheEntry {
    const current = this.cache.get(key);
    if (current && current.seq > entry.seq) return current;
    this.cache.delete(key);
    this.cache.set(key, entry);
    if (this.cache.size > this.maxCached) this.cache.delete(this.cache.keys().next().value!);
    return entry;
  }

  private remember(ref: DeploymentRef): void {
    if (!this.refs.has(ref.key) && this.refs.size < this.maxCached) this.refs.set(ref.key, ref);
  }

  /** Runs `fn` after any earlier exclusive work on `key` in this instance (claims and updates don't race locally). */
  private exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return run;
  }
}

function stateOf(entry: CacheEntry): BreakerState {
  return entry.stored?.state ?? closedState();
}

function isProbeOf(s: BreakerState, instanceId: string): boolean {
  return s.state === 'half-open' && s.probeOwner === instanceId;
}
