export interface CachedAnswer { body: string; promptTokens: number; completionTokens: number; costUsd: number | null; modelVersion: string; storedAt: number }
export interface SyncCache {
  /** TTL in ms when this request may use the cache (team setting or `x-sluice-cache: exact[; ttl=<s>]`), else undefined. */
  policy(team: string, headers: { get(name: string): string | null }, now: number): Promise<number | undefined>;
  /** Never throws: an outage is a miss. */
  lookup(team: string, model: string, modelVersion: string, kind: 'chat' | 'embeddings', body: unknown, now: number): Promise<CachedAnswer | undefined>;
  /** Never throws. */
  save(team: string, model: string, modelVersion: string, kind: 'chat' | 'embeddings', body: unknown, answer: CachedAnswer, ttlMs: number, now: number): Promise<void>;
}
