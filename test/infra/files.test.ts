/**
 * Infra files and packaging: the JSON files parse, main.bicep and its parameters file and modules agree, azd finds
 * the service, and the deployed package (.funcignore over the built tree) holds what runs in Azure and nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import { posix } from 'node:path';
import { bicepParams, blockAfter, exists, filesUnder, read, topLevelKeys } from './infraSource';

test('JSON files are valid JSON', () => {
  for (const f of ['infra/main.parameters.json', 'infra/abbreviations.json', 'infra/app/workbook.json']) {
    assert.doesNotThrow(() => JSON.parse(read(f)), f);
  }
});

test('main.bicep declares what the parameters file supplies, and the file supplies what has no default', () => {
  const declared = bicepParams(read('infra/main.bicep'));
  const supplied = Object.keys((JSON.parse(read('infra/main.parameters.json')) as { parameters: object }).parameters);
  for (const p of supplied) assert.ok(declared.has(p), `main.parameters.json supplies ${p}, main.bicep lacks it`);
  for (const [p, { hasDefault }] of declared) if (!hasDefault) assert.ok(supplied.includes(p), `${p} has no default and is not supplied`);
});

test('every abbreviation main.bicep uses exists', () => {
  const abbrs = JSON.parse(read('infra/abbreviations.json')) as Record<string, string>;
  for (const m of read('infra/main.bicep').matchAll(/\babbrs\.(\w+)/g)) assert.ok(m[1]! in abbrs, `abbreviations.json lacks ${m[1]}`);
});

test('each module call passes every required module parameter and nothing the module does not declare', () => {
  const main = read('infra/main.bicep');
  for (const m of main.matchAll(/^module (\w+) '([^']+)'/gm)) {
    const [, symbol, path] = m;
    const file = `infra/${path}`;
    assert.ok(exists(file), `${symbol}: ${file} exists`);
    const declared = bicepParams(read(file));
    const passed = topLevelKeys(blockAfter(blockAfter(main, new RegExp(`^module ${symbol} '`, 'm')), /\bparams:\s*/));
    for (const p of passed) assert.ok(declared.has(p), `${symbol} passes ${p}, which ${file} does not declare`);
    for (const [p, { hasDefault }] of declared) if (!hasDefault) assert.ok(passed.includes(p), `${symbol} must pass ${p} to ${file}`);
  }
});

test('azd finds the api service on the Flex Consumption app', () => {
  const yaml = read('azure.yaml');
  assert.match(yaml, /^services:\n {2}api:\n(?: {4}.*\n)*? {4}project: \.\n/m);
  assert.match(yaml, /^ {4}language: ts$/m);
  assert.match(yaml, /^ {4}host: function$/m);
  const api = read('infra/app/api.bicep');
  assert.match(api, /'azd-service-name': 'api'/);
  assert.match(api, /name: 'FC1'/);
  assert.match(api, /tier: 'FlexConsumption'/);
  assert.match(api, /runtime: \{\s*name: 'node'\s*version: '22'/);
  assert.match(api, /type: 'blobContainer'/);
  assert.match(api, /maximumInstanceCount: maximumInstanceCount/);
  assert.match(api, /instanceMemoryMB: instanceMemoryMB/);
  for (const output of ['AZURE_FUNCTION_APP_NAME', 'SLUICE_API_URL', 'AZURE_STORAGE_ACCOUNT_NAME', 'APPLICATIONINSIGHTS_CONNECTION_STRING']) {
    assert.match(read('infra/main.bicep'), new RegExp(`^output ${output} `, 'm'));
  }
});

interface PackageJson {
  main?: string;
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}
const funcignore = () => read('.funcignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const packageJson = () => JSON.parse(read('package.json')) as PackageJson;

test('.funcignore keeps developer-only trees and devDependencies out, and the runnable code in', () => {
  const lines = funcignore();
  for (const p of ['local/', '/cli/', '/dist/cli/', 'test/', 'bench/', '.azurite/', 'docs/', '*.ts', 'infra/', '/src/']) assert.ok(lines.includes(p), `.funcignore lists ${p}`);
  for (const p of ['dist', 'dist/', 'src/', 'node_modules', 'node_modules/', 'host.json', 'package.json', '*.js']) {
    assert.ok(!lines.includes(p), `.funcignore must not drop ${p}`);
  }
  const pkg = packageJson();
  assert.match(pkg.main ?? '', /^dist\/src\//, 'the host loads dist/src, which .funcignore keeps');
  for (const dep of Object.keys(pkg.devDependencies ?? {})) {
    const top = dep.startsWith('@') ? dep.split('/')[0]! : dep;
    assert.ok(lines.includes(`node_modules/${dep}/`) || lines.includes(`node_modules/${top}/`), `devDependency ${dep} is excluded`);
  }
});

test('.funcignore drops no package that production code needs', () => {
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean }> };
  for (const line of funcignore().filter((l) => l.startsWith('node_modules/'))) {
    const dir = line.replace(/\/$/, '');
    // Type packages never load at run time, whoever depends on them.
    if (dir === 'node_modules/@types') continue;
    const entries = Object.entries(lock.packages).filter(([path]) => path === dir || (dir.split('/')[1]!.startsWith('@') && path.startsWith(`${dir}/`)));
    assert.ok(entries.length > 0, `${line}: no such package in package-lock.json`);
    for (const [path, entry] of entries) assert.equal(entry.dev, true, `${path} is dropped by .funcignore but production code needs it`);
  }
});

/** The compiled twin of each file under src/ (stale outputs of deleted sources are left out). */
function deployedFiles(): string[] {
  return filesUnder('src', '.ts').map((f) => `dist/${f.replace(/\.ts$/, '.js')}`);
}

test('the deployed tree is the app only: no CLI, no test doubles, nothing from developer-only trees or devDependencies', () => {
  const pkg = packageJson();
  assert.ok(!exists('src/cli'), 'the CLI lives in cli/, outside the deployed src/');
  assert.equal(pkg.bin?.sluice, 'dist/cli/sluice.js');
  const files = deployedFiles();
  assert.ok(files.length > 20 && files.every(exists), 'the build is current (npm run build)');
  const production = new Set(Object.keys(pkg.dependencies ?? {}));
  const builtins = new Set(builtinModules);
  for (const file of files) {
    const js = read(file);
    assert.doesNotMatch(js, /\bclass Memory\w*Store\b/, `${file}: in-memory test stores belong in test/support`);
    for (const [, spec] of js.matchAll(/\brequire\((?:"|')([^"']+)(?:"|')\)/g)) {
      if (spec!.startsWith('.')) {
        const target = posix.normalize(posix.join(posix.dirname(file), spec!));
        assert.ok(target.startsWith('dist/src/'), `${file} requires ${spec}, outside the deployed dist/src`);
        assert.ok([target, `${target}.js`, `${target}.json`, `${target}/index.js`].some(exists), `${file} requires ${spec}, which is not built`);
      } else if (!spec!.startsWith('node:') && !builtins.has(spec!)) {
        const name = spec!.split('/').slice(0, spec!.startsWith('@') ? 2 : 1).join('/');
        assert.ok(production.has(name), `${file} requires ${name}, which is not a production dependency (package.json dependencies)`);
      }
    }
  }
  assert.ok(exists(pkg.bin!.sluice!), `the CLI builds where package.json bin points (${pkg.bin!.sluice}), outside what ships`);
});
