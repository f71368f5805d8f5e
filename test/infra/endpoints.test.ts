/**
 * Drift test 5: SLUICE_ENDPOINTS, generated in main.bicep from openAiRegions, is valid for the app. The Bicep rule is
 * mirrored here, applied to the example in infra/main.parameters.json, and the result goes through the app's own
 * endpointsSchema and loadConfig. The Bicep source must still spell the rule this test mirrors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config';
import { endpointsSchema } from '../../src/core/endpoints';
import { blockAfter, read, stringValue, stringVars, topLevelEntries } from './infraSource';

interface Deployment { name: string; model: string; version: string; sku: string; capacity: number }
interface Region { location: string; name?: string; priority?: number; deployments: Deployment[] }

const main = read('infra/main.bicep');
const parameters = JSON.parse(read('infra/main.parameters.json')) as { parameters: Record<string, { value: unknown }> };
const regions = parameters.parameters.openAiRegions!.value as Region[];
const abbrs = JSON.parse(read('infra/abbreviations.json')) as Record<string, string>;

/** The rule main.bicep applies (see sluiceEndpoints there). */
function endpointsFor(list: Region[], resourceToken: string): unknown[] {
  const accountName = (r: Region): string => r.name ?? `${abbrs.openAiAccounts}${resourceToken}-${r.location}`;
  return list.flatMap((r, i) =>
    r.deployments.map((d) => ({
      region: r.location,
      endpoint: `https://${accountName(r)}.openai.azure.com/`,
      deployment: d.name,
      model: d.model,
      modelVersion: d.version,
      priority: r.priority ?? i + 1,
      tpm: d.capacity * 1000,
      rpm: d.capacity * 6,
      auth: 'managed-identity',
    })),
  );
}

test('main.bicep builds SLUICE_ENDPOINTS by the rule this test mirrors', () => {
  const flat = main.replace(/\s+/g, ' ');
  for (const piece of [
    "var openAiAccountNames = map(openAiRegions, r => r.?name ?? '${abbrs.openAiAccounts}${resourceToken}-${r.location}')",
    'var sluiceEndpoints = flatten(map(range(0, length(openAiRegions)), i => map(openAiRegions[i].deployments, d => {',
    'region: openAiRegions[i].location',
    "endpoint: 'https://${openAiAccountNames[i]}.openai.azure.com/'",
    'deployment: d.name',
    'model: d.model',
    'modelVersion: d.version',
    'priority: openAiRegions[i].?priority ?? (i + 1)',
    'tpm: d.capacity * 1000',
    'rpm: d.capacity * 6',
    "auth: 'managed-identity'",
    '})))',
  ]) {
    assert.ok(flat.includes(piece), `main.bicep no longer contains: ${piece}`);
  }
  const rule = blockAfter(main, /^var sluiceEndpoints = flatten\(map\(range\(0, length\(openAiRegions\)\), i => map\(openAiRegions\[i\]\.deployments, d => /m);
  assert.deepEqual([...topLevelEntries(rule).keys()].sort(), ['auth', 'deployment', 'endpoint', 'model', 'modelVersion', 'priority', 'region', 'rpm', 'tpm']);
  assert.equal(topLevelEntries(blockAfter(main, /^var sluiceSettings\s*=\s*/m)).get('SLUICE_ENDPOINTS'), 'string(sluiceEndpoints)');
  assert.match(read('infra/app/openai.bicep'), /customSubDomainName: name\b/, 'the endpoint host is the account name');
  assert.match(read('infra/app/openai.bicep'), /@batchSize\(1\)\s*\nresource modelDeployments/, 'deployments in one account are serial');
});

test('the example regions produce endpoints the app accepts', () => {
  assert.ok(regions.length >= 2, 'the example spans at least two regions');
  const endpoints = endpointsFor(regions, 'abcdefghijklm');
  const parsed = endpointsSchema.safeParse(endpoints);
  assert.ok(parsed.success, parsed.success ? '' : JSON.stringify(parsed.error.issues));
  assert.equal(parsed.data.length, regions.reduce((n, r) => n + r.deployments.length, 0));
  for (const r of regions) for (const d of r.deployments) assert.ok(['GlobalStandard', 'DataZoneStandard', 'Standard'].includes(d.sku));
});

/** Values of the Bicep app settings that can be known without Azure: literals, string vars, params from the file. */
function knowableSettings(): Record<string, string> {
  const vars = stringVars(main);
  const env: Record<string, string> = {};
  for (const [key, expr] of topLevelEntries(blockAfter(main, /^var sluiceSettings\s*=\s*/m))) {
    const direct = stringValue(expr, vars);
    if (direct !== undefined) env[key] = direct;
    const param = /^(?:string\()?(\w+)\)?$/.exec(expr)?.[1];
    const fromFile = param ? parameters.parameters[param]?.value : undefined;
    if (typeof fromFile === 'string') {
      const m = /^\$\{\w+=([^}]*)\}$/.exec(fromFile);
      if (m) env[key] = m[1]!;
    }
    const paramDefault = param ? new RegExp(`^param ${param} string = '([^']*)'`, 'm').exec(main)?.[1] : undefined;
    if (direct === undefined && paramDefault !== undefined && env[key] === undefined) env[key] = paramDefault;
  }
  return env;
}

test('the generated settings load with the app\'s loadConfig (models known, rpm as the app derives it)', () => {
  const endpoints = endpointsFor(regions, 'abcdefghijklm');
  const env: Record<string, string> = {
    ...knowableSettings(),
    SLUICE_ENDPOINTS: JSON.stringify(endpoints),
    AzureWebJobsStorage__credential: 'managedidentity',
    AzureWebJobsStorage__clientId: '00000000-0000-0000-0000-000000000000',
    AzureWebJobsStorage__blobServiceUri: 'https://stexample.blob.core.windows.net/',
    AzureWebJobsStorage__queueServiceUri: 'https://stexample.queue.core.windows.net/',
    AzureWebJobsStorage__tableServiceUri: 'https://stexample.table.core.windows.net/',
  };
  const config = loadConfig(env);
  assert.equal(config.jobsQueue, env.SLUICE_JOBS_QUEUE);
  for (const e of config.endpoints) {
    assert.equal(e.auth, 'managed-identity');
    assert.equal(e.rpm, Math.floor((e.tpm * 6) / 1000), 'rpm = capacity × 6 matches the app\'s own default ratio');
    assert.ok(config.models[e.model], `model ${e.model} has limits (built in, or add SLUICE_MODELS)`);
  }
});
