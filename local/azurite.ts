// Azurite (the Azure Storage emulator) as a child process, bound to 127.0.0.1. Ports default to ephemeral; once
// known they stay fixed so stop()/start() can simulate a storage outage and recovery on the same endpoints.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { devStorageConnectionString } from './host/settings';

export interface AzuriteOptions {
  /** Data folder. @default <project root>/.azurite */
  location?: string;
  /** Keep data in memory only (lost on stop/restart). @default false */
  inMemory?: boolean;
  /** Ports on 127.0.0.1; 0 or absent = pick a free one. `npm start` uses 10000, 10001, 10002. */
  blobPort?: number;
  queuePort?: number;
  tablePort?: number;
  /** No access log on stdout. @default true */
  silent?: boolean;
  /** Project root holding node_modules/azurite. @default process.cwd() */
  rootDir?: string;
  /** Load local/azurite-fixes.cjs (index fixes for Azurite's queue and table stores; results unchanged); start
   *  fails if any fix did not apply. Env `SLUICE_AZURITE_FIXES=false` turns them off. @default true */
  fixes?: boolean;
  /** How long to wait for the three services to listen, ms. @default 30000 */
  startTimeoutMs?: number;
}

export interface RunningAzurite {
  connectionString: string;
  blobPort: number;
  queuePort: number;
  tablePort: number;
  /** The fixes from local/azurite-fixes.cjs that apply in this Azurite (all of them, or none when turned off). */
  fixes: readonly string[];
  /** Kills the process (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Starts it again after stop() on the same ports (and the same data unless inMemory). */
  start(): Promise<void>;
}

type Service = 'Blob' | 'Queue' | 'Table';
const LISTENING = /Azurite (Blob|Queue|Table) service is successfully listening at http:\/\/[^:]+:(\d+)/g;
/** The line local/azurite-fixes.cjs writes to stderr once it has run. */
const FIXES_REPORT = /^sluice azurite-fixes: (\{.*\})\r?\n/m;

interface FixesReport {
  azurite: string;
  writtenFor: string;
  applied: string[];
  failed: { fix: string; reason: string }[];
}

/**
 * The fixes that applied, from Azurite's output; undefined while the report has not arrived. Throws when any fix
 * did not apply: a benchmark on a partly patched Azurite measures the emulator, so it must not run quietly.
 */
export function appliedFixes(output: string): string[] | undefined {
  const match = FIXES_REPORT.exec(output);
  if (!match) return undefined;
  const report = JSON.parse(match[1]!) as FixesReport;
  if (report.failed.length === 0) return report.applied;
  throw new Error(
    `local/azurite-fixes.cjs did not apply to Azurite ${report.azurite}:\n` +
      report.failed.map((f) => `  ${f.fix}: ${f.reason}`).join('\n') +
      '\nFix local/azurite-fixes.cjs for this Azurite (or install the version it pins), or set SLUICE_AZURITE_FIXES=false to run Azurite unpatched.',
  );
}
const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Never leave an orphaned Azurite holding ports when the parent goes away. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => children.forEach((child) => child.kill('SIGKILL')));
}

export async function startAzurite(options: AzuriteOptions = {}): Promise<RunningAzurite> {
  const rootDir = resolve(options.rootDir ?? process.cwd());
  const location = resolve(options.location ?? join(rootDir, '.azurite'));
  const ports: Record<Service, number> = { Blob: options.blobPort ?? 0, Queue: options.queuePort ?? 0, Table: options.tablePort ?? 0 };
  const entry = join(rootDir, 'node_modules', 'azurite', 'dist', 'src', 'azurite.js');
  const fixes = options.fixes ?? process.env.SLUICE_AZURITE_FIXES !== 'false';
  let applied: readonly string[] = [];
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = [
      // Diagnostics, e.g. SLUICE_AZURITE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/azurite-prof" (written on stop).
      ...(process.env.SLUICE_AZURITE_NODE_ARGS ?? '').split(' ').filter(Boolean),
      ...(fixes ? ['--require', join(rootDir, 'local', 'azurite-fixes.cjs')] : []),
      entry,
      '--blobHost', '127.0.0.1', '--queueHost', '127.0.0.1', '--tableHost', '127.0.0.1',
      '--blobPort', String(ports.Blob), '--queuePort', String(ports.Queue), '--tablePort', String(ports.Table),
      '--disableTelemetry', '--skipApiVersionCheck', '--loose',
    ];
    if (options.silent !== false) args.push('--silent');
    if (options.inMemory) args.push('--inMemoryPersistence');
    else {
      mkdirSync(location, { recursive: true });
      args.push('--location', location);
    }
    const proc = spawn(process.execPath, args, { cwd: rootDir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    children.add(proc);
    installExitHook();
    await new Promise<void>((resolveStart, rejectStart) => {
      const seen = new Set<Service>();
      let output = '';
      const timer = setTimeout(() => fail(new Error(`Azurite did not start within ${options.startTimeoutMs ?? 30000} ms:\n${output}`)), options.startTimeoutMs ?? 30_000);
      const fail = (err: Error) => {
        clearTimeout(timer);
        proc.kill('SIGKILL');
        rejectStart(err);
      };
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        for (const match of output.matchAll(LISTENING)) {
          ports[match[1] as Service] = Number(match[2]);
          seen.add(match[1] as Service);
        }
        let fixesApplied: string[] | undefined;
        try {
          fixesApplied = fixes ? appliedFixes(output) : [];
        } catch (err) {
          fail(err as Error);
          return;
        }
        if (/EADDRINUSE/.test(output)) {
          fail(new Error(`Azurite could not start: a port is already in use (blob ${ports.Blob}, queue ${ports.Queue}, table ${ports.Table}). Stop the other Azurite or point AzureWebJobsStorage elsewhere.`));
        } else if (seen.size === 3 && fixesApplied) {
          applied = fixesApplied;
          clearTimeout(timer);
          proc.stdout?.off('data', onData);
          proc.stderr?.off('data', onData);
          proc.stdout?.resume();
          proc.stderr?.resume();
          resolveStart();
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('exit', (code, signal) => {
        children.delete(proc);
        if (seen.size < 3) fail(new Error(`Azurite exited (code ${code}, signal ${signal}) before listening:\n${output}`));
      });
    });
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolveStop) => {
      const force = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.once('exit', () => {
        clearTimeout(force);
        resolveStop();
      });
      proc.kill('SIGTERM');
    });
  };

  await launch();
  return {
    get connectionString() {
      return devStorageConnectionString({ blob: ports.Blob, queue: ports.Queue, table: ports.Table });
    },
    get blobPort() {
      return ports.Blob;
    },
    get queuePort() {
      return ports.Queue;
    },
    get tablePort() {
      return ports.Table;
    },
    get fixes() {
      return applied;
    },
    stop,
    async start() {
      if (child) return;
      await launch();
    },
  };
}
