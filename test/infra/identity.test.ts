/**
 * Drift test: an Entra ID mapping reaches the app only together with the App Service Authentication config that
 * makes its principal header trustworthy, and the parameters file passes the Entra ID parameters from the azd
 * environment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allBicep, blockAfter, read, resourceBlocks, topLevelEntries } from './infraSource';

const main = read('infra/main.bicep');
const api = read('infra/app/api.bicep');

/** The app settings that make the app map Entra ID principals to teams or to admin. */
const MAPPING_SETTINGS = ['SLUICE_ENTRA_TEAMS', 'SLUICE_ENTRA_ADMINS'];

test('an Entra ID mapping is set only when entraClientId turns App Service Authentication on', () => {
  assert.match(main, /^var entraAuth = !empty\(entraClientId\)\s*$/m, 'main.bicep: entraAuth is "entraClientId is set"');
  const settings = topLevelEntries(blockAfter(main, /^var sluiceSettings\s*=\s*/m));
  for (const name of MAPPING_SETTINGS) {
    const value = settings.get(name);
    assert.ok(value, `${name} is in sluiceSettings`);
    // Set as given when entraAuth; without it, only the empty string passes and anything else fails the deployment.
    const m = /^\(entraAuth \|\| empty\((\w+)\)\) \? (\w+) : fail\('[^']+'\)$/.exec(value!);
    assert.ok(m && m[1] === m[2], `${name} must be "(entraAuth || empty(p)) ? p : fail('…')", got: ${value}`);
  }

  const module = blockAfter(main, /^module api 'app\/api\.bicep'\s*=\s*/m);
  assert.equal(topLevelEntries(blockAfter(module, /\bparams:\s*/)).get('entraClientId'), 'entraClientId', 'main.bicep passes entraClientId to the api module');

  const [auth, ...more] = resourceBlocks(api, 'Microsoft.Web/sites/config').filter((b) => /name:\s*'authsettingsV2'/.test(b.body));
  assert.ok(auth && more.length === 0, 'api.bicep has one authsettingsV2 config');
  assert.match(auth.header, /=\s*if \(!empty\(entraClientId\)\)/, 'the auth config is deployed exactly when entraClientId is set');
  assert.match(blockAfter(auth.body, /\bplatform:\s*/), /enabled: true/, 'App Service Authentication is on');
  const aad = blockAfter(auth.body, /\bazureActiveDirectory:\s*/);
  assert.match(aad, /enabled: true/);
  assert.match(aad, /clientId: entraClientId/);
  assert.match(blockAfter(aad, /\ballowedAudiences:\s*/), /entraClientId/, 'tokens must be issued for this app');
});

test('infra never sets WEBSITE_AUTH_ENABLED: only the platform says authentication is on', () => {
  for (const { path, text } of allBicep()) assert.doesNotMatch(text, /WEBSITE_AUTH_ENABLED/, path);
});

test('the parameters file passes the Entra ID parameters from the azd environment', () => {
  const params = (JSON.parse(read('infra/main.parameters.json')) as { parameters: Record<string, { value: unknown }> }).parameters;
  const expected: Record<string, string> = { entraClientId: 'ENTRA_CLIENT_ID', entraTeams: 'SLUICE_ENTRA_TEAMS', entraAdmins: 'SLUICE_ENTRA_ADMINS' };
  for (const [param, env] of Object.entries(expected)) {
    assert.equal(params[param]?.value, `\${${env}}`, `${param} comes from azd env ${env} (empty when unset)`);
  }
  assert.match(read('docs/teams.md'), /azd env set ENTRA_CLIENT_ID/);
});
