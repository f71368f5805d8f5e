// local/azurite-fixes.cjs is written for one Azurite: package.json pins that version, and an Azurite the fixes do
// not (all) apply to refuses to start, naming each fix and why. A stand-in Azurite package plays the other versions.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { appliedFixes, startAzurite } from '../../local/azurite';

const ROOT = join(__dirname, '..', '..', '..');
const fixes = require(join(ROOT, 'local', 'azurite-fixes.cjs')) as { WRITTEN_FOR: string; FIXES: string[]; REPORT_PREFIX: string };

/** A project root whose node_modules/azurite is a stand-in: `files` (path under the package → source). */
function fakeAzurite(version: string, files: Record<string, string> = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'sluice-fake-azurite-'));
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  mkdirSync(join(root, 'local'));
  copyFileSync(join(ROOT, 'local', 'azurite-fixes.cjs'), join(root, 'local', 'azurite-fixes.cjs'));
  write('node_modules/azurite/package.json', JSON.stringify({ name: 'azurite', version }));
  // Says it listens (the ports it was given, or 1000x) and stays up until killed.
  write(
    'node_modules/azurite/dist/src/azurite.js',
    `const arg = (n) => process.argv[process.argv.indexOf('--' + n + 'Port') + 1];
     ['Blob', 'Queue', 'Table'].forEach((s, i) => console.log('Azurite ' + s + ' service is successfully listening at http://127.0.0.1:' + (Number(arg(s.toLowerCase())) || 10000 + i)));
     setInterval(() => {}, 1000);`,
  );
  for (const [path, text] of Object.entries(files)) write(`node_modules/azurite/${path}`, text);
  return root;
}

test('package.json pins the Azurite version the fixes were written for, and that version is installed', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  assert.equal(pkg.devDependencies.azurite, fixes.WRITTEN_FOR, 'an exact version, no range');
  const installed = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'azurite', 'package.json'), 'utf8')) as { version: string };
  assert.equal(installed.version, fixes.WRITTEN_FOR);
});

test('the report: all applied, one failed, not yet written', () => {
  const report = (failed: object[]) => `${fixes.REPORT_PREFIX}${JSON.stringify({ azurite: '3.35.0', writtenFor: '3.35.0', applied: ['a'], failed })}\n`;
  assert.deepEqual(appliedFixes(`noise\n${report([])}Azurite Blob service is successfully listening`), ['a']);
  assert.throws(() => appliedFixes(report([{ fix: 'b', reason: 'gone' }])), /did not apply to Azurite 3\.35\.0:\n {2}b: gone\n.*SLUICE_AZURITE_FIXES=false/);
  assert.equal(appliedFixes(report([]).slice(0, -5)), undefined, 'a report cut mid-line is not read yet');
});

test('another Azurite version: start fails and names the version the fixes were written for', async () => {
  const root = fakeAzurite('3.99.0');
  await assert.rejects(startAzurite({ rootDir: root, inMemory: true }), (err: Error) => {
    assert.match(err.message, /did not apply to Azurite 3\.99\.0/);
    for (const fix of fixes.FIXES) assert.match(err.message, new RegExp(`${fix}: written for Azurite ${fixes.WRITTEN_FOR.replace(/\./g, '\\.')}, found 3\\.99\\.0`));
    return true;
  });
  // Turned off on purpose, the same Azurite starts unpatched.
  const unpatched = await startAzurite({ rootDir: root, inMemory: true, fixes: false });
  assert.deepEqual(unpatched.fixes, []);
  await unpatched.stop();
});

test('the pinned version with internals of another shape: start fails naming each fix that did not apply', async () => {
  const method = (name: string) => `${name}() {}`;
  const root = fakeAzurite(fixes.WRITTEN_FOR, {
    'node_modules/lokijs/package.json': JSON.stringify({ name: 'lokijs', main: 'index.js' }),
    'node_modules/lokijs/index.js': `class Collection { ${['remove', 'removeBatchByPositions', 'insert', 'insertOne', 'clear', 'update', 'calculateRange'].map(method).join(' ')} }
      class Resultset { ${method('find')} }
      module.exports = { Collection, Resultset };`,
    'dist/src/queue/persistence/LokiQueueMetadataStore.js': `exports.default = class { ${method('clearExpiredMessages')} };`,
  });
  await assert.rejects(startAzurite({ rootDir: root, inMemory: true }), (err: Error) => {
    assert.match(err.message, /expiry-scan: LokiQueueMetadataStore has changed shape \(no insertMessage\)/);
    assert.match(err.message, /partition-queries: Cannot find module/);
    assert.doesNotMatch(err.message, /list-updates|selective-lookups/, 'the fixes whose shapes are there applied');
    return true;
  });
});
