// host.json: the subset the local host honours, with the Functions defaults. Durations are .NET TimeSpan strings
// ("hh:mm:ss", "d.hh:mm:ss", "hh:mm:ss.fff"); a bare number is taken as milliseconds (the v1 format).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseLogLevelRules, type LogLevelRules } from './logging';

export interface QueueSettings {
  /** Messages fetched per receive, 1..32. @default 16 */
  batchSize: number;
  /** Fetch the next batch once in-flight messages drop to this number. @default batchSize / 2 */
  newBatchThreshold: number;
  /** Longest wait between polls of an empty queue, ms. @default 60000 */
  maxPollingIntervalMs: number;
  /** Delay before a failed message becomes visible again, ms. @default 0 */
  visibilityTimeoutMs: number;
  /** Failed deliveries before a message moves to `<queue>-poison`. @default 5 */
  maxDequeueCount: number;
  /** How message text is encoded in the queue. @default 'base64' */
  messageEncoding: 'base64' | 'none';
}

export interface HostSettings {
  /** Prefix of every HTTP route, without slashes; '' = none. @default 'api' */
  routePrefix: string;
  queues: QueueSettings;
  /** Parsed for information only: the local host does not enforce it. */
  functionTimeoutMs: number | undefined;
  /** `logging.logLevel`: category → lowest level shown (see logging.ts). @default {} */
  logLevels: LogLevelRules;
}

/** Shortest polling interval the Functions host accepts (and the start of its exponential back-off). */
export const MIN_POLLING_INTERVAL_MS = 100;

export function parseDuration(value: unknown, setting: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  const match = typeof value === 'string' ? /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$/.exec(value.trim()) : null;
  if (!match) throw new Error(`host.json ${setting}: expected a duration "hh:mm:ss", got ${JSON.stringify(value)}`);
  const [, days, hours, minutes, seconds, fraction] = match;
  const fractionMs = fraction ? Number(`0.${fraction}`) * 1000 : 0;
  return ((Number(days ?? 0) * 24 + Number(hours)) * 60 + Number(minutes)) * 60_000 + Number(seconds) * 1000 + fractionMs;
}

function intSetting(value: unknown, setting: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new Error(`host.json ${setting}: expected an integer ${min}..${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep merge where `override` wins; arrays and scalars are replaced. */
export function mergeJson(base: unknown, override: unknown): unknown {
  if (!isObject(base) || !isObject(override)) return override === undefined ? base : override;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) merged[key] = mergeJson(base[key], value);
  return merged;
}

/** Turns parsed host.json content into settings with defaults applied; throws on invalid values, naming them. */
export function parseHostJson(json: unknown): HostSettings {
  const root = isObject(json) ? json : {};
  const extensions = isObject(root.extensions) ? root.extensions : {};
  const http = isObject(extensions.http) ? extensions.http : {};
  const queues = isObject(extensions.queues) ? extensions.queues : {};
  const logging = isObject(root.logging) ? root.logging : {};

  const rawPrefix = http.routePrefix ?? 'api';
  if (typeof rawPrefix !== 'string') throw new Error('host.json extensions.http.routePrefix: expected a string');

  const batchSize = intSetting(queues.batchSize, 'extensions.queues.batchSize', 16, 1, 32);
  const encoding = queues.messageEncoding ?? 'base64';
  if (encoding !== 'base64' && encoding !== 'none') {
    throw new Error(`host.json extensions.queues.messageEncoding: expected "base64" or "none", got ${JSON.stringify(encoding)}`);
  }
  const maxPollingIntervalMs =
    queues.maxPollingInterval === undefined ? 60_000 : parseDuration(queues.maxPollingInterval, 'extensions.queues.maxPollingInterval');
  return {
    routePrefix: rawPrefix.replace(/^\/+|\/+$/g, ''),
    queues: {
      batchSize,
      newBatchThreshold: intSetting(queues.newBatchThreshold, 'extensions.queues.newBatchThreshold', Math.floor(batchSize / 2), 0, 1000),
      maxPollingIntervalMs: Math.max(MIN_POLLING_INTERVAL_MS, maxPollingIntervalMs),
      visibilityTimeoutMs:
        queues.visibilityTimeout === undefined ? 0 : parseDuration(queues.visibilityTimeout, 'extensions.queues.visibilityTimeout'),
      maxDequeueCount: intSetting(queues.maxDequeueCount, 'extensions.queues.maxDequeueCount', 5, 1, 1000),
      messageEncoding: encoding,
    },
    functionTimeoutMs: root.functionTimeout === undefined ? undefined : parseDuration(root.functionTimeout, 'functionTimeout'),
    logLevels: parseLogLevelRules(logging.logLevel),
  };
}

/** Reads `<rootDir>/host.json` (absent = all defaults) and applies `override` on top (test hook). */
export function readHostJson(rootDir: string, override?: object): HostSettings {
  let fileJson: unknown = {};
  try {
    fileJson = JSON.parse(readFileSync(join(rootDir, 'host.json'), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`host.json: ${(err as Error).message}`);
  }
  return parseHostJson(override ? mergeJson(fileJson, override) : fileJson);
}
