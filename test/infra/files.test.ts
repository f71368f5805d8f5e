/**
 * Drift test 6 and packaging: the JSON files parse, main.bicep and its parameters file and modules agree, azd finds
 * the service, and .funcignore ships only what runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bicepParams, blockAfter, exists, read, topLevelKeys } from './infraSource';

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

test('.funcignore keeps developer-only trees and devDependencies out, and the runnable code in', () => {
  const lines = read('.funcignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const p of ['local/', 'test/', 'bench/', '.azurite/', 'docs/', '*.ts', 'infra/', '/src/']) assert.ok(lines.includes(p), `.funcignore lists ${p}`);
  for (const p of ['dist', 'dist/', 'src/', 'node_modules', 'node_modules/', 'host.json', 'package.json', '*.js']) {
    assert.ok(!lines.includes(p), `.funcignore must not drop ${p}`);
  }
  const pkg = JSON.parse(read('package.json')) as { devDependencies?: Record<string, string>; main?: string };
  assert.match(pkg.main ?? '', /^dist\/src\//, 'the host loads dist/src, which .funcignore keeps');
  for (const dep of Object.keys(pkg.devDependencies ?? {})) {
    const top = dep.startsWith('@') ? dep.split('/')[0]! : dep;
    assert.ok(lines.includes(`node_modules/${dep}/`) || lines.includes(`node_modules/${top}/`), `devDependency ${dep} is excluded`);
  }
});
