// `node dist/local/host/cli.js [--only worker,other] [--exclude a,b] [--no-http] [--no-queues] [--no-timers] [--port N]
//  [--root DIR] [--verbose | --log-level LEVEL]`
// Runs one local Functions host process ("a Function instance" for benchmarks). On SIGTERM/SIGINT it stops taking
// messages, lets in-flight invocations finish, and exits 0.
import { parseLogLevel, startFunctionsHost, type FunctionsHostOptions } from './index';

/** JSON merged over host.json in this process (used by local/stack.ts to pass test overrides to workers). */
export const HOST_JSON_OVERRIDE_ENV = 'SLUICE_HOST_JSON_OVERRIDE';

export function parseHostArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): FunctionsHostOptions {
  const options: FunctionsHostOptions = {};
  const override = env[HOST_JSON_OVERRIDE_ENV];
  if (override) options.hostJson = JSON.parse(override) as object;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inlineValue] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inlineValue ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--only':
        options.only = value().split(',').map((s) => s.trim()).filter((s) => s !== '');
        break;
      case '--exclude':
        options.exclude = value().split(',').map((s) => s.trim()).filter((s) => s !== '');
        break;
      case '--port': {
        const port = Number(value());
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: not a port number`);
        options.port = port;
        break;
      }
      case '--root':
        options.rootDir = value();
        break;
      case '--no-http':
        options.http = false;
        break;
      case '--no-queues':
        options.queues = false;
        break;
      case '--no-timers':
        options.timers = false;
        break;
      case '--verbose':
        options.logLevel = 'Trace';
        break;
      case '--log-level':
        options.logLevel = parseLogLevel(value(), '--log-level');
        break;
      case '--help':
      case '-h':
        console.log(
          'usage: node dist/local/host/cli.js [--only a,b] [--exclude a,b] [--no-http] [--no-queues] [--no-timers] [--port N] [--root DIR] [--verbose | --log-level LEVEL]',
        );
        process.exit(0);
      // falls through (exit never returns)
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  return options;
}

async function main(): Promise<void> {
  const host = await startFunctionsHost(parseHostArgs(process.argv.slice(2)));
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal} received: draining in-flight invocations`);
    host.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // Announced once the handlers are in place, so a SIGTERM sent on seeing the line gets a clean drain.
  if (host.url) console.log(`Local Functions host listening on ${host.url}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
