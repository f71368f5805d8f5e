// `npm start [-- --verbose | --log-level LEVEL]`: Azurite (10000-10002, data in .azurite/) + the Azure OpenAI
// simulator (8400-8402) + the real functions in the local host on 127.0.0.1:7071 — no Azure Functions Core Tools
// needed. Ctrl-C stops everything. The console shows what the functions log at Information and above (one line per
// finished job or batch) and every warning; --verbose adds the host's per-invocation lines and debug detail.
import { resolve } from 'node:path';
import { startAzurite, type RunningAzurite } from './azurite';
import { parseLogLevel, startFunctionsHost, type LogLevel, type RunningFunctionsHost } from './host';
import { loadLocalSettings } from './host/settings';
import { loadSimulatorConfig, startSimulator, type RunningSimulator } from './simulator';
import { describeSimulator, withCliPorts } from './simulator/cli';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { TableClient } from '@azure/data-tables';
import { bootstrapKeys, endpointsFromSimulator } from './stack';
import { TeamStore } from '../src/azure/teamTable';
import { keyState, parseKey } from '../src/core/teams/model';
import { laneCount } from '../src/config';

const ROOT_DIR = resolve(__dirname, '..', '..');
const AZURITE_PORTS = { blobPort: 10000, queuePort: 10001, tablePort: 10002 };

/** Dev storage: unset, UseDevelopmentStorage=true, or an explicit connection string to devstoreaccount1 on this machine. */
function wantsLocalAzurite(connection: string | undefined): boolean {
  if (process.env.SLUICE_SKIP_AZURITE === '1') return false;
  if (!connection) return true;
  if (/UseDevelopmentStorage=true/i.test(connection)) return true;
  return /AccountName=devstoreaccount1/i.test(connection) && /QueueEndpoint=http:\/\/(127\.0\.0\.1|localhost):10001\b/i.test(connection);
}

function portHint(err: unknown, what: string, fix: string): Error {
  const message = (err as Error).message ?? String(err);
  return /EADDRINUSE|already in use/.test(message) ? new Error(`${what}: a port is already in use. ${fix}\n(${message})`) : (err as Error);
}

const USAGE = `usage: npm start [-- --verbose | --log-level LEVEL]
  --verbose          every line: the host's Executing/Executed lines, timer runs, debug detail (= --log-level Trace)
  --log-level LEVEL  Trace, Debug, Information, Warning, Error, Critical or None, for every category
Without either, host.json logging.logLevel applies (AzureFunctionsJobHost__logging__logLevel__<category> settings
win over it): function logs from Information, the host's own lines from Warning.`;

/** The --verbose / --log-level choice; undefined = host.json's levels. */
export function logLevelFromArgs(argv: string[]): LogLevel | undefined {
  let level: LogLevel | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--verbose' || arg === '-v') level = 'Trace';
    else if (arg === '--log-level') level = parseLogLevel(argv[++i], '--log-level');
    else if (arg.startsWith('--log-level=')) level = parseLogLevel(arg.slice('--log-level='.length), '--log-level');
    else throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  return level;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return;
  }
  const logLevel = logLevelFromArgs(argv);
  loadLocalSettings(ROOT_DIR);
  process.env.FUNCTIONS_WORKER_RUNTIME ??= 'node';
  process.env.SLUICE_JOBS_QUEUE ??= 'sluice-jobs';

  let azurite: RunningAzurite | undefined;
  let sim: RunningSimulator | undefined;
  let host: RunningFunctionsHost | undefined;
  let keys: { apiKey: string; adminKey: string } | undefined;
  const stopAll = async () => {
    await host?.close().catch((err: unknown) => console.error(err));
    await sim?.close().catch((err: unknown) => console.error(err));
    await azurite?.stop().catch((err: unknown) => console.error(err));
  };
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1); // second Ctrl-C: do not wait
    stopping = true;
    console.log(`\n${signal} received: stopping (finishing in-flight invocations; Ctrl-C again to force)`);
    stopAll().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    if (wantsLocalAzurite(process.env.AzureWebJobsStorage)) {
      azurite = await startAzurite({ rootDir: ROOT_DIR, location: resolve(ROOT_DIR, '.azurite'), ...AZURITE_PORTS }).catch((err: unknown) => {
        throw portHint(err, 'Azurite', 'Stop the other Azurite (or whatever holds 10000-10002), or run it yourself and set SLUICE_SKIP_AZURITE=1.');
      });
      process.env.AzureWebJobsStorage = azurite.connectionString;
      console.log(`Azurite: blob ${azurite.blobPort}, queue ${azurite.queuePort}, table ${azurite.tablePort} (data in .azurite/)`);
    } else {
      console.log('Azurite: not started (AzureWebJobsStorage points elsewhere or SLUICE_SKIP_AZURITE=1)');
    }

    if (!process.env.SLUICE_ENDPOINTS) {
      const config = withCliPorts(loadSimulatorConfig(process.env));
      sim = await startSimulator(config).catch((err: unknown) => {
        throw portHint(err, 'Azure OpenAI simulator', 'Stop the other simulator (npm run simulator) or set SIMULATOR_BASE_PORT.');
      });
      process.env.SLUICE_ENDPOINTS = JSON.stringify(endpointsFromSimulator(sim, config));
      console.log(describeSimulator(sim, config));
    } else {
      console.log('Simulator: not started (SLUICE_ENDPOINTS is set)');
    }

    if (azurite) keys = await localKeys(azurite.connectionString);
    host = await startFunctionsHost({ rootDir: ROOT_DIR, logLevel });
  } catch (err) {
    console.error(`\nnpm start failed: ${err instanceof Error ? err.message : String(err)}`);
    await stopAll();
    process.exit(1);
  }

  const api = `${host.url}/${host.routePrefix}`.replace(/\/$/, '');
  const keyLines = keys
    ? `Local keys (kept in .azurite/sluice-local-keys.json; they exist only in this local Azurite):
  team "default" (member): ${keys.apiKey}
  team "admin"   (admin):  ${keys.adminKey}
`
    : 'No local keys were created (storage is not the local Azurite): create a team and key with `npx sluice teams` (see README).\n';
  const key = keys?.apiKey ?? '<your key>';
  console.log(`
Sluice is running locally: ${api}
${keyLines}Try:
  export SLUICE_API_KEY=${key}
  curl -s -X POST ${api}/v1/jobs -H "api-key: $SLUICE_API_KEY" -H 'content-type: application/json' -d '{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"max_tokens":50}}'
  curl -s ${api}/v1/jobs/<id> -H "api-key: $SLUICE_API_KEY"
  curl -s ${api}/v1/health -H "api-key: ${keys?.adminKey ?? '<an admin key>'}"   # the full view needs an admin key
${logLevel ? `Logs: every line from ${logLevel} up.` : 'Logs: one line per finished job or batch, and warnings (npm start -- --verbose shows every invocation).'}
Ctrl-C stops everything.`);
}

/** Reuses the keys of an earlier `npm start` while they still work in this Azurite, else creates new ones. */
async function localKeys(connectionString: string): Promise<{ apiKey: string; adminKey: string }> {
  const file = resolve(ROOT_DIR, '.azurite', 'sluice-local-keys.json');
  const table = process.env.SLUICE_TEAMS_TABLE ?? 'sluiceteams';
  if (existsSync(file)) {
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { apiKey: string; adminKey: string };
      const store = new TeamStore(TableClient.fromConnectionString(connectionString, table, { allowInsecureConnection: true }));
      const usable = async (key: string) => {
        const parsed = parseKey(key);
        const record = parsed ? await store.getKey(parsed.id) : undefined;
        return record !== undefined && keyState(record, Date.now()) === 'active';
      };
      if ((await usable(saved.apiKey)) && (await usable(saved.adminKey))) return saved;
    } catch {
      // unreadable or stale: make new ones
    }
  }
  const keys = await bootstrapKeys(connectionString, table, laneCount());
  writeFileSync(file, JSON.stringify(keys, null, 2), { mode: 0o600 });
  return keys;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
