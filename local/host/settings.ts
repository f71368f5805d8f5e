// App settings the way Core Tools sees them: local.settings.json `Values` under the process environment,
// `%NAME%` binding expressions, and storage connections named by a trigger's `connection` property.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

type Env = Record<string, string | undefined>;

/** Azurite's well-known development account (public, documented; not a secret). */
export const DEV_STORE_ACCOUNT = 'devstoreaccount1';
export const DEV_STORE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export function devStorageConnectionString(ports = { blob: 10000, queue: 10001, table: 10002 }): string {
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${DEV_STORE_ACCOUNT}`,
    `AccountKey=${DEV_STORE_KEY}`,
    `BlobEndpoint=http://127.0.0.1:${ports.blob}/${DEV_STORE_ACCOUNT}`,
    `QueueEndpoint=http://127.0.0.1:${ports.queue}/${DEV_STORE_ACCOUNT}`,
    `TableEndpoint=http://127.0.0.1:${ports.table}/${DEV_STORE_ACCOUNT}`,
  ].join(';') + ';';
}

export interface LocalSettings {
  /** Values that were applied (only those not already set in the environment). */
  applied: string[];
  /** `Host.LocalHttpPort`, which Core Tools uses as the default HTTP port. */
  localHttpPort: number | undefined;
}

/** Loads `<rootDir>/local.settings.json` Values into `env`, never overriding variables already set (Core Tools' rule). */
export function loadLocalSettings(rootDir: string, env: Env = process.env): LocalSettings {
  let raw: string;
  try {
    raw = readFileSync(join(rootDir, 'local.settings.json'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { applied: [], localHttpPort: undefined };
    throw err;
  }
  let parsed: { IsEncrypted?: boolean; Values?: Record<string, unknown>; Host?: { LocalHttpPort?: unknown } };
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new Error(`local.settings.json is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed.IsEncrypted) throw new Error('local.settings.json is encrypted (IsEncrypted: true); decrypt it with `func settings decrypt`');
  const applied: string[] = [];
  for (const [name, value] of Object.entries(parsed.Values ?? {})) {
    if (env[name] !== undefined || value === null || value === undefined) continue;
    env[name] = typeof value === 'string' ? value : JSON.stringify(value);
    applied.push(name);
  }
  const port = Number(parsed.Host?.LocalHttpPort);
  return { applied, localHttpPort: Number.isInteger(port) && port > 0 ? port : undefined };
}

/** Resolves `%NAME%` app-setting expressions, e.g. "%SLUICE_JOBS_QUEUE%-poison"; a missing setting is an error, as in Functions. */
export function resolveAppSettings(expression: string, env: Env = process.env): string {
  return expression.replace(/%([^%]+)%/g, (_whole, name: string) => {
    const value = env[name];
    if (value === undefined || value === '') throw new Error(`'%${name}%' does not resolve to a value (app setting ${name} is not set)`);
    return value;
  });
}

/**
 * Connection string for a trigger's `connection` (default AzureWebJobsStorage). Like Functions, "X" is looked up
 * as X, then AzureWebJobsX. UseDevelopmentStorage=true means Azurite on its default ports.
 */
export function storageConnectionString(connection: string | undefined, env: Env = process.env): string {
  const name = resolveAppSettings(connection || 'AzureWebJobsStorage', env);
  const value = env[name] ?? env[`AzureWebJobs${name}`];
  if (!value) {
    const identityBased = Object.keys(env).some((key) => key.startsWith(`${name}__`));
    throw new Error(
      identityBased
        ? `connection "${name}" is identity-based (${name}__...): the local host supports connection strings only`
        : `connection "${name}": app setting ${name} is not set`,
    );
  }
  return /^\s*UseDevelopmentStorage=true\s*;?\s*$/i.test(value) ? devStorageConnectionString() : value;
}
