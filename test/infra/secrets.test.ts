/**
 * Drift test: infra puts no secret in app settings. Azure OpenAI is called with the managed identity, so the generated
 * SLUICE_ENDPOINTS carries no apiKey; whoever adds an `auth: "key"` endpoint keeps it in Key Vault, which the app
 * reads through a Key Vault reference resolved as its user-assigned identity (docs/deploy.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allBicep, blockAfter, read, topLevelEntries } from './infraSource';

const main = read('infra/main.bicep');
const api = read('infra/app/api.bicep');

test('the generated endpoint list authenticates with the managed identity and carries no apiKey', () => {
  const entry = topLevelEntries(blockAfter(main, /^var sluiceEndpoints\s*=\s*flatten\(map\(range\(0, length\(openAiRegions\)\), i => map\(openAiRegions\[i\]\.deployments, d => /m));
  assert.equal(entry.get('auth'), "'managed-identity'", 'every generated endpoint uses the managed identity');
  assert.ok(!entry.has('apiKey'), 'no apiKey in the generated endpoints');
});

test('no Bicep file puts a key or a secret-bearing connection string into app settings', () => {
  for (const { path, text } of allBicep()) {
    assert.doesNotMatch(text, /\bapiKey\b/, `${path}: apiKey`);
    assert.doesNotMatch(text, /auth:\s*'key'/, `${path}: an endpoint with auth "key"`);
    assert.doesNotMatch(text, /\blistKeys\(|AccountKey=|SharedAccessSignature=|\.key1\b|\.primaryKey\b/, `${path}: a storage or service key`);
  }
  const settings = topLevelEntries(blockAfter(api, /^var platformSettings\s*=\s*/m));
  for (const [name, value] of settings) assert.doesNotMatch(value, /key/i, `${name} in platformSettings looks like a key: ${value}`);
});

test('Key Vault references resolve as the app\'s user-assigned identity, and the docs say how to use them', () => {
  const site = blockAfter(api, /^resource site 'Microsoft\.Web\/sites@[^']+'\s*=\s*/m);
  assert.equal(topLevelEntries(blockAfter(site, /\bproperties:\s*/)).get('keyVaultReferenceIdentity'), 'identityId');
  const deploy = read('docs/deploy.md');
  assert.ok(/@Microsoft\.KeyVault\(SecretUri=/.test(deploy), 'docs/deploy.md shows a Key Vault reference');
  assert.ok(/Key Vault Secrets User/.test(deploy), 'docs/deploy.md names the role the identity needs on the vault');
});
