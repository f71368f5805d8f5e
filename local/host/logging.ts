// Log levels the way the Functions host applies host.json `logging.logLevel`: every line has a category and a
// level; the rule whose category is the longest case-insensitive prefix of the line's category decides, and
// `default` covers the rest. Categories the local host writes:
//   Function.<name>.User   what a function logs (context.info, context.warn, ...)
//   Function.<name>        the host's per-invocation lines (Executing / Executed) and library messages during a run
//   Host.Triggers.Queue    queue polling problems, poison moves
//   Host.General           errors outside an invocation, library messages outside a run
// As Core Tools keeps its own lines off the console unless asked, the host's categories (Function.<name>, Host.*)
// show Warning and above unless a rule names them (e.g. "Function": "Information", "Host": "Debug"); user
// categories follow `default`, which is Information when host.json does not set it.
import type { RpcLogLevel } from './coreTypes';

export const LOG_LEVELS = ['Trace', 'Debug', 'Information', 'Warning', 'Error', 'Critical', 'None'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** category → lowest level shown; `default` is the fallback (host.json `logging.logLevel`). */
export type LogLevelRules = Record<string, LogLevel>;

/** Writes one line under a category at a level; the line is dropped when the level is filtered out. */
export type HostLog = (category: string, level: LogLevel, line: string) => void;

/** Prefix of the settings that override host.json's levels, in Azure as here (`..._logLevel__Function=Debug`). */
export const LOG_LEVEL_SETTING_PREFIX = 'AzureFunctionsJobHost__logging__logLevel__';

const HOST_CONSOLE_LEVEL: LogLevel = 'Warning';
const DEFAULT_LEVEL: LogLevel = 'Information';

const rank = (level: LogLevel) => LOG_LEVELS.indexOf(level);

/** "debug", "Debug", "DEBUG" → 'Debug'; throws naming `where` for anything else. */
export function parseLogLevel(value: unknown, where: string): LogLevel {
  const found = typeof value === 'string' ? LOG_LEVELS.find((l) => l.toLowerCase() === value.trim().toLowerCase()) : undefined;
  if (!found) throw new Error(`${where}: expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
  return found;
}

export function fromRpcLevel(level: RpcLogLevel): LogLevel {
  return level === 'information' ? 'Information' : parseLogLevel(level, 'log level');
}

/** host.json `logging.logLevel` (absent = no rules); throws naming the first invalid entry. */
export function parseLogLevelRules(json: unknown, where = 'host.json logging.logLevel'): LogLevelRules {
  if (json === undefined || json === null) return {};
  if (typeof json !== 'object' || Array.isArray(json)) throw new Error(`${where}: expected an object of category → level`);
  return Object.fromEntries(Object.entries(json).map(([category, level]) => [category, parseLogLevel(level, `${where}.${category}`)]));
}

/** `AzureFunctionsJobHost__logging__logLevel__<category>` settings, which win over host.json as they do in Azure. */
export function logLevelRulesFromSettings(env: Record<string, string | undefined> = process.env): LogLevelRules {
  const rules: LogLevelRules = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !name.toLowerCase().startsWith(LOG_LEVEL_SETTING_PREFIX.toLowerCase())) continue;
    rules[name.slice(LOG_LEVEL_SETTING_PREFIX.length)] = parseLogLevel(value, name);
  }
  return rules;
}

/** Later rule sets win; categories compare case-insensitively, as in .NET logging. */
export function mergeLogLevelRules(...sets: LogLevelRules[]): LogLevelRules {
  const merged = new Map<string, [string, LogLevel]>();
  for (const rules of sets) for (const [category, level] of Object.entries(rules)) merged.set(category.toLowerCase(), [category, level]);
  return Object.fromEntries(merged.values());
}

/** User categories: what a function logs through its context. */
export function isUserCategory(category: string): boolean {
  return /^Function\..+\.User$/i.test(category);
}

/**
 * The lowest level shown for `category`. `override` (--verbose, --log-level) applies to every category alike;
 * otherwise the most specific rule, then the console defaults described at the top of this file.
 */
export function minimumLevel(category: string, rules: LogLevelRules, override?: LogLevel): LogLevel {
  if (override) return override;
  const lower = category.toLowerCase();
  let best: [string, LogLevel] | undefined;
  let fallback: LogLevel | undefined;
  for (const [rule, level] of Object.entries(rules)) {
    const ruleLower = rule.toLowerCase();
    if (ruleLower === 'default') fallback = level;
    else if (lower.startsWith(ruleLower) && (!best || rule.length > best[0].length)) best = [rule, level];
  }
  if (best) return best[1];
  if (isUserCategory(category)) return fallback ?? DEFAULT_LEVEL;
  const base = fallback ?? DEFAULT_LEVEL;
  return rank(base) > rank(HOST_CONSOLE_LEVEL) ? base : HOST_CONSOLE_LEVEL;
}

/** A HostLog that hands the lines that pass the levels to `sink`; each category's level is worked out once. */
export function filteredLog(sink: (line: string) => void, rules: LogLevelRules, override?: LogLevel): HostLog {
  const cache = new Map<string, number>();
  return (category, level, line) => {
    let min = cache.get(category);
    if (min === undefined) cache.set(category, (min = rank(minimumLevel(category, rules, override))));
    if (level !== 'None' && rank(level) >= min) sink(line);
  };
}
