/** The synchronous path's contract with its host: the upstream calls it makes and what it needs to make them. */
import type { BudgetGate } from '../budget/gate';
import type { EndpointHealth } from '../breaker/health';
import type { EndpointSettings } from '../endpoints';
import type { Clock, ModelCallRecord } from '../worker';
import type { SyncCache } from './cacheContract';

export interface UpstreamCallOptions {
  /** The sync request's id, sent to the deployment for diagnostics. */
  requestId: string;
  /** Time allowed until the deployment's answer (or a stream's headers) arrives, ms. */
  timeoutMs: number;
  /** Aborts the call (the client went away). */
  signal: AbortSignal;
}

/** A JSON answer (non-streaming chat, embeddings). */
export interface UpstreamAnswer {
  status: number;
  header(name: string): string | null;
  body: Record<string, unknown>;
}

/** A stream whose headers arrived: its bytes follow. */
export interface UpstreamStream {
  status: number;
  header(name: string): string | null;
  /** The SSE bytes as they arrive. Throws when the connection breaks mid-stream. */
  body: AsyncIterable<Uint8Array>;
}

/**
 * What the sync path sends to a deployment. Every method throws a SluiceError (core/errors.ts) for a non-2xx or a
 * transport failure before the answer (or the stream's headers) arrives.
 */
export interface SyncUpstream {
  complete(target: EndpointSettings, body: Record<string, unknown>, opts: UpstreamCallOptions): Promise<UpstreamAnswer>;
  stream(target: EndpointSettings, body: Record<string, unknown>, opts: UpstreamCallOptions): Promise<UpstreamStream>;
  embed(target: EndpointSettings, body: Record<string, unknown>, opts: UpstreamCallOptions): Promise<UpstreamAnswer>;
}

export interface SyncSettings {
  /** Quota wait when the request names none (`x-sluice-max-wait-ms`), ms. */
  defaultMaxWaitMs: number;
  /** Longest quota wait a request may ask for, ms. */
  maxWaitCapMs: number;
  /** Time allowed until a deployment answers (or a stream's headers arrive), ms. */
  callTimeoutMs: number;
  /** Longest delay a Retry-After may impose between tries, ms. */
  maxRetryDelayMs: number;
  /** Failed calls (5xx, timeouts, connection failures) after which the request fails. */
  maxTransientFailures: number;
}

export type SyncLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface SyncDeps {
  endpoints: readonly EndpointSettings[];
  budget: BudgetGate;
  health: EndpointHealth;
  upstream: SyncUpstream;
  settings: SyncSettings;
  clock: Clock;
  /** Per-model spill-over to the next priority group when a group's budget is spent. @default always true */
  spillover?(model: string): boolean;
  random?: () => number;
  log(level: SyncLogLevel, message: string): void;
  /** One dependency per upstream call (App Insights). */
  onModelCall?(call: ModelCallRecord): void;
  /** Optional exact-match cache for non-streaming chat and embeddings. */
  cache?: SyncCache;
}
