/**
 * `npm run test:unit`: the compiled tests that start no servers, for the inner loop (seconds, not minutes).
 *
 * A test file is a unit test unless the modules it loads (its require graph inside this repo, as compiled to dist/)
 * include one that starts Azurite, the simulator or a functions host, spawns processes, or simulates a fleet over
 * minutes of virtual time (CPU-bound property tests that take minutes). The rule reads the code, so a new test is
 * sorted by what it imports and needs no list or marker kept in step. `npm test` runs every test file.
 *
 *   node dist/test/support/unitTests.js [--list] [node --test options…]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const DIST = resolve(__dirname, '..', '..');

/** Modules (paths under dist/, without .js) that start a server; loading any of them makes a test a server test. */
export const SERVER_MODULES = ['local/azurite', 'local/stack', 'local/host/index', 'local/host/httpServer', 'local/simulator/index', 'local/simulator/simulator', 'local/simulator/regionServer'];
/** Modules that simulate a whole fleet: tests using them are CPU-bound for minutes. */
export const SIMULATION_MODULES = ['test/budget/fleetSim'];
/** Built-in modules that start processes. */
const PROCESS_BUILTINS = new Set(['child_process', 'node:child_process', 'worker_threads', 'node:worker_threads']);

const REQUIRE = /\brequire\(\s*["']([^"']+)["']\s*\)/g;

function resolveLocal(from: string, spec: string): string | undefined {
  const base = resolve(dirname(from), spec);
  for (const candidate of [`${base}.js`, join(base, 'index.js'), base]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

/**
 * Why `file` is not a unit test (the first server module, fleet simulation or process built-in its require graph
 * reaches), or undefined when it is one.
 */
export function nonUnitReason(file: string, seen = new Set<string>()): string | undefined {
  if (seen.has(file)) return undefined;
  seen.add(file);
  const rel = relative(DIST, file).replace(/\\/g, '/').replace(/\.js$/, '');
  if (SERVER_MODULES.includes(rel) || SIMULATION_MODULES.includes(rel)) return rel;
  for (const [, spec] of readFileSync(file, 'utf8').matchAll(REQUIRE)) {
    if (PROCESS_BUILTINS.has(spec!)) return `${rel} → ${spec}`;
    if (!spec!.startsWith('.')) continue;
    const target = resolveLocal(file, spec!);
    const reason = target && nonUnitReason(target, seen);
    if (reason) return reason === relative(DIST, target!).replace(/\.js$/, '') ? `${rel} → ${reason}` : reason;
  }
  return undefined;
}

/** Every compiled test file under dist/test, sorted. */
export function testFiles(dir = join(DIST, 'test')): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...testFiles(path));
    else if (entry.name.endsWith('.test.js')) out.push(path);
  }
  return out.sort();
}

function main(): void {
  const args = process.argv.slice(2);
  const files = testFiles();
  const unit = files.filter((f) => nonUnitReason(f) === undefined);
  if (args.includes('--list')) {
    for (const f of files) {
      const reason = nonUnitReason(f);
      console.log(`${reason ? 'other' : 'unit '}  ${relative(DIST, f)}${reason ? `  (${reason})` : ''}`);
    }
    console.log(`${unit.length} unit test files; ${files.length - unit.length} others (servers, processes or fleet simulations) run in npm test`);
    return;
  }
  if (unit.length === 0) throw new Error('no unit tests found under dist/test (run npm run build first)');
  const run = spawnSync(process.execPath, ['--test', ...args, ...unit], { stdio: 'inherit' });
  process.exit(run.status ?? 1);
}

if (require.main === module) main();
