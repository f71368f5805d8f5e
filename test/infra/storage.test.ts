/**
 * Drift test 2: every queue, table and container name the code defaults to is created by infra/ (queues with their
 * -poison twin), and the app settings name the same resources.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appSources, arrayItems, blockAfter, read, stringLiterals, stringValue, stringVars, topLevelEntries } from './infraSource';

type Kind = 'queue' | 'table' | 'container';

/**
 * What a `sluice…` literal names, from the first identifier before it on its line that says so: `jobsQueue: 'sluice-jobs'`,
 * `SLUICE_FILES_CONTAINER: withDefault(queueName, 'sluice-files')`, `DEFAULT_BREAKER_TABLE = 'sluicebreakers'`.
 */
function kindOf(line: string, literal: string): Kind | undefined {
  const before = line.slice(0, line.indexOf(literal));
  for (const id of before.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []) {
    if (/table/i.test(id)) return 'table';
    if (/container|blob/i.test(id)) return 'container';
    if (/queue/i.test(id)) return 'queue';
  }
  return undefined;
}

/** Storage names the code uses: `sluice…` literals named as a queue, table or container where they are defined. */
function codeStorageNames(): Map<string, Kind> {
  const names = new Map<string, Kind>();
  for (const lit of stringLiterals(appSources())) {
    if (!/^sluice[a-z0-9-]{2,62}$/.test(lit.text)) continue;
    const kind = kindOf(lit.line, `'${lit.text}'`) ?? kindOf(lit.line, `"${lit.text}"`);
    if (kind) names.set(lit.text, kind);
  }
  return names;
}

/** Queues that get a poison twin: all but dead-letter and poison queues themselves. */
const needsPoison = (queue: string): boolean => !/-(poison|deadletter)$/.test(queue);

/** queues/tables/containers main.bicep passes to the storage module, resolved to names. */
function bicepStorage(): Record<Kind, string[]> {
  const main = read('infra/main.bicep');
  const vars = stringVars(main);
  const params = topLevelEntries(blockAfter(blockAfter(main, /^module storage 'app\/storage\.bicep'\s*=\s*/m), /\bparams:\s*/));
  const list = (key: string): string[] => {
    const raw = params.get(key);
    assert.ok(raw, `storage module gets ${key}`);
    return arrayItems(raw.replace(/^\[|\]$/g, '')).map((e) => {
      const v = stringValue(e, vars);
      assert.ok(v, `cannot resolve ${e} in ${key}: keep storage names as plain string variables`);
      return v;
    });
  };
  return { queue: list('queues'), table: list('tables'), container: list('containers') };
}

test('storage names the code uses exist in Bicep, queues with their poison queue', () => {
  const code = codeStorageNames();
  assert.equal(code.get('sluice-jobs'), 'queue', 'found the jobs queue default in src/config.ts');
  assert.equal(code.get('sluicejobs'), 'table');
  assert.equal(code.get('sluice-payloads'), 'container');
  const infra = bicepStorage();
  const missing: string[] = [];
  for (const [name, kind] of code) {
    if (!infra[kind].includes(name)) missing.push(`${kind} ${name}`);
    if (kind === 'queue' && needsPoison(name) && !infra.queue.includes(`${name}-poison`)) missing.push(`queue ${name}-poison`);
  }
  assert.deepEqual(missing, [], 'create these in infra/main.bicep (storage module queues/tables/containers)');
});

test('the storage module creates what it is given', () => {
  const storage = read('infra/app/storage.bicep');
  assert.match(storage, /queueServices\/queues@[^']+' = \[for q in queues:/);
  assert.match(storage, /tableServices\/tables@[^']+' = \[for t in tables:/);
  assert.match(storage, /blobServices\/containers@[^']+' = \[for c in containers:/);
  assert.ok(bicepStorage().container.includes(stringVars(read('infra/main.bicep')).get('deploymentContainerName')!));
});

/** Setting → default storage name, from the code: `SLUICE_X: withDefault(queueName, 'sluice-…')` lines of the
 * settings schema (src/configSchema.ts). */
function codeNameDefaults(): Map<string, string> {
  const out = new Map<string, string>();
  for (const lit of stringLiterals(appSources())) {
    const setting = /\b(SLUICE_[A-Z0-9_]+)\b/.exec(lit.line.slice(0, lit.line.indexOf(lit.text)))?.[1];
    if (setting && /^sluice[a-z0-9-]{2,62}$/.test(lit.text) && !out.has(setting)) out.set(setting, lit.text);
  }
  return out;
}

test('name settings in Bicep equal the code defaults, so settings and resources agree', () => {
  const main = read('infra/main.bicep');
  const vars = stringVars(main);
  const settings = topLevelEntries(blockAfter(main, /^var sluiceSettings\s*=\s*/m));
  const pairs = codeNameDefaults();
  assert.equal(pairs.get('SLUICE_JOBS_QUEUE'), 'sluice-jobs', 'found the name settings in src/configSchema.ts');
  for (const [setting, codeDefault] of pairs) {
    const bicep = settings.get(setting);
    assert.ok(bicep, `${setting} (default ${codeDefault}) is set in Bicep sluiceSettings`);
    assert.equal(stringValue(bicep, vars), codeDefault, `${setting}: Bicep value and code default`);
  }
});
