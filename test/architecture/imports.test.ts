/**
 * The import graph follows the layers (STYLE.md "The shape we want"): no cycles; src/core imports neither the
 * config nor runtime/azure/functions/cli nor an Azure SDK; the app never imports local/, test/ or bench/. The rules
 * live in .dependency-cruiser.cjs; dependency-cruiser reads the TypeScript sources (type-only imports count too).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..', '..');

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
  cycle?: Array<{ name: string } | string>;
}

function cruise(): { violations: Violation[]; modules: number } {
  const bin = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
  let out: string;
  try {
    out = execFileSync(process.execPath, [bin, 'src', 'local', 'bench', 'test', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
  } catch (err) {
    // Exit code 1+ means violations; the report is still on stdout.
    out = (err as { stdout?: string }).stdout ?? '';
    if (!out) throw err;
  }
  const report = JSON.parse(out) as { summary: { violations: Violation[]; totalCruised: number } };
  return { violations: report.summary.violations, modules: report.summary.totalCruised };
}

test('no import cycles and no imports against the layers', () => {
  const { violations, modules } = cruise();
  assert.ok(modules > 100, `cruised the sources (${modules} modules)`);
  const lines = violations.map((v) => {
    const cycle = v.cycle?.map((c) => (typeof c === 'string' ? c : c.name)).join(' → ');
    return `${v.rule.name}: ${v.from} → ${cycle ?? v.to}`;
  });
  assert.deepEqual(lines, [], 'see .dependency-cruiser.cjs for the rules');
});
