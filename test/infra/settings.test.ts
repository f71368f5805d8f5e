/**
 * Drift test 1: every setting the app reads is set on the Function App by infra/, or is knowingly left to its code
 * default. Keyless: the identity-based storage and Application Insights settings are there, and nothing with a key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessedProperties, allBicep, appSources, blockAfter, read, stringLiterals, topLevelEntries, topLevelKeys } from './infraSource';
import { SETTING_NAMES } from '../../src/configSchema';

/** Settings the app reads but Azure need not set: the code default applies. Name → default (as documented). */
const OPTIONAL_SETTINGS: Record<string, string> = {
  SLUICE_MODELS: 'built-in model limits (src/core/models.ts KNOWN_MODELS)',
  SLUICE_OPENAI_API_VERSION: '2024-10-21',
  SLUICE_MAX_REQUEST_BYTES: '1048576',
  SLUICE_CALL_TIMEOUT_MS: '120000',
  SLUICE_MAX_RETRY_DELAY_MS: '60000',
  SLUICE_MAX_FILE_BYTES: '209715200',
  SLUICE_MAX_FILE_LINES: '50000',
  SLUICE_BATCH_COMPLETION_WINDOW_S: '86400',
  SLUICE_BATCH_FANOUT_CHUNK: '2500',
  SLUICE_BATCH_CONCURRENCY: '64',
  SLUICE_BATCH_LEASE_S: '60',
  SLUICE_MAX_BACKLOG: '100000',
  SLUICE_HOLD_IN_PROCESS_MS: '30000',
  SLUICE_BUDGET_DEBUG: 'false',
  SLUICE_BREAKER_ENABLED: 'true',
  SLUICE_BREAKER_FAILURE_THRESHOLD: '3',
  SLUICE_BREAKER_WINDOW_MS: '30000',
  SLUICE_BREAKER_COOLDOWN_MS: '15000',
  SLUICE_BREAKER_PROBE_LEASE_MS: '30000',
  SLUICE_BREAKER_CACHE_MS: '1000',
  SLUICE_BUDGET_ENABLED: 'true',
  SLUICE_BUDGET_LEASE_MS: '10000',
  SLUICE_BUDGET_JOBS_PER_LEASE: '24',
  SLUICE_BUDGET_TPM_PER_SEAT: '60000',
  SLUICE_BUDGET_MAX_SEATS: '16',
  SLUICE_BUDGET_SAFETY: '0.99',
  SLUICE_PRICES: 'none: built-in price table (src/core/telemetry/prices.json)',
  SLUICE_BUDGET_THRESHOLDS: '50,80,100',
  SLUICE_TEAM_BUDGETS: 'none',
  SLUICE_QUOTA_ADVICE_MINUTES: '15',
  SLUICE_QUOTA_ADVICE_PERCENT: '80',
  SLUICE_ROLLUP_LATENESS_SECONDS: '120',
  // Teams.
  SLUICE_AUTH_CACHE_MS: '30000',
  SLUICE_TEAM_SPEND_CACHE_MS: '60000',
  SLUICE_ENTRA_ADMIN_TEAM: 'admin',
  SLUICE_FAIR_SHARE: 'true (false only for comparison runs)',
  // Set by App Service when App Service Authentication is on; infra must never set it itself.
  WEBSITE_AUTH_ENABLED: 'false (App Service sets it)',
  // The exact cache of synchronous answers.
  SLUICE_CACHE_DEFAULT_TTL_SECONDS: '3600',
  SLUICE_CACHE_MAX_TTL_SECONDS: '86400',
  SLUICE_CACHE_TIMEOUT_MS: '300',
  // The alternative to the three service URIs infra sets.
  AzureWebJobsStorage__accountName: 'derived from the service URIs',
};

const SETTING = /^(SLUICE_[A-Z0-9_]+|AzureWebJobsStorage(__\w+)?|APPLICATIONINSIGHTS_[A-Z0-9_]+)$/;

/** Setting names the deployed code reads: the settings schema, and literals and `env.X` accesses in src/ (settings
 * read outside the schema, such as Application Insights'), and `%X%` in trigger bindings. */
function settingsReadByCode(): Map<string, string> {
  const found = new Map<string, string>(SETTING_NAMES.map((name) => [name, 'src/configSchema.ts']));
  const files = appSources();
  for (const lit of stringLiterals(files)) {
    for (const m of lit.text.matchAll(/\b(SLUICE_[A-Z0-9_]+)\b/g)) found.set(m[1]!, lit.file);
    if (SETTING.test(lit.text)) found.set(lit.text, lit.file);
    if (lit.file.startsWith('src/functions/')) for (const m of lit.text.matchAll(/%(\w+)%/g)) found.set(m[1]!, `${lit.file} (binding)`);
  }
  for (const { file, name } of accessedProperties(files)) if (SETTING.test(name)) found.set(name, file);
  return found;
}

function bicepAppSettings(): { sluice: Map<string, string>; platform: Map<string, string> } {
  const sluice = topLevelEntries(blockAfter(read('infra/main.bicep'), /^var sluiceSettings\s*=\s*/m));
  const platform = topLevelEntries(blockAfter(read('infra/app/api.bicep'), /^var platformSettings\s*=\s*/m));
  return { sluice, platform };
}

test('every setting the code reads is set in Bicep app settings or allow-listed with its default', () => {
  const read = settingsReadByCode();
  assert.ok(read.has('SLUICE_ENDPOINTS') && read.has('SLUICE_JOBS_QUEUE'), 'the scan found the known settings');
  const { sluice, platform } = bicepAppSettings();
  const missing = [...read]
    .filter(([name]) => !sluice.has(name) && !platform.has(name) && !(name in OPTIONAL_SETTINGS))
    .filter(([name]) => name !== 'AzureWebJobsStorage') // the connection-string form is for Azurite only
    .map(([name, where]) => `${name} (read in ${where})`);
  assert.deepEqual(missing, [], 'set these in infra/main.bicep sluiceSettings, or add them to OPTIONAL_SETTINGS with their default');
});

test('trigger bindings name their queues and schedules directly, so they resolve without the setting', () => {
  const functions = appSources().filter((f) => f.startsWith('src/functions/'));
  const expressions = stringLiterals(functions).filter((l) => /%\w+%/.test(l.text)).map((l) => `${l.file}: ${l.text}`);
  assert.deepEqual(expressions, [], 'register triggers with bindingSettings() from src/config.ts, not %SETTING% expressions');
  const templates = functions.filter((f) => /%SLUICE_\w+%/.test(read(f))).map((f) => `${f}: %SLUICE_…% in a template literal`);
  assert.deepEqual(templates, []);
});

test('the crash-injection settings are read only outside the deployed app (local/faults.ts)', () => {
  const files = appSources();
  const readers = [...stringLiterals(files).filter((l) => /SLUICE_FAULT_/.test(l.text)), ...accessedProperties(files).filter((p) => /SLUICE_FAULT_/.test(p.name))];
  assert.deepEqual(readers.map((r) => r.file), [], 'src/ must not read SLUICE_FAULT_CRASH_AT or SLUICE_FAULT_CRASH_JOB');
  assert.match(read('local/faults.ts'), /process\.env\.SLUICE_FAULT_CRASH_AT/);
});

test('every SLUICE_* setting in Bicep is one the code reads (no typos, nothing stale)', () => {
  const read = settingsReadByCode();
  const { sluice } = bicepAppSettings();
  const unknown = [...sluice.keys()].filter((k) => !read.has(k));
  assert.deepEqual(unknown, [], 'set in Bicep but read nowhere in src/');
});

test('allow-listed optional settings are still read by the code', () => {
  const read = settingsReadByCode();
  const stale = Object.keys(OPTIONAL_SETTINGS).filter((k) => !read.has(k));
  assert.deepEqual(stale, [], 'remove these from OPTIONAL_SETTINGS');
});

test('storage and Application Insights use the managed identity; no keys anywhere', () => {
  const { platform } = bicepAppSettings();
  assert.equal(platform.get('AzureWebJobsStorage__credential'), "'managedidentity'");
  assert.equal(platform.get('AzureWebJobsStorage__clientId'), 'identityClientId');
  for (const svc of ['blob', 'queue', 'table']) {
    assert.equal(platform.get(`AzureWebJobsStorage__${svc}ServiceUri`), `storage.properties.primaryEndpoints.${svc}`);
  }
  assert.equal(platform.get('APPLICATIONINSIGHTS_AUTHENTICATION_STRING'), "'ClientId=${identityClientId};Authorization=AAD'");
  assert.ok(platform.has('APPLICATIONINSIGHTS_CONNECTION_STRING'));
  assert.ok(!platform.has('AzureWebJobsStorage'), 'no storage connection string');

  const main = read('infra/main.bicep');
  const api = read('infra/app/api.bicep');
  assert.match(main, /appSettings: sluiceSettings/, 'main.bicep passes sluiceSettings to the api module');
  assert.match(api, /properties: union\(appSettings, platformSettings\)/, 'api.bicep applies both setting sets');
  for (const { path, text } of allBicep()) {
    assert.doesNotMatch(text, /listKeys\(|listConnectionStrings\(|AccountKey=|@secure\(\)/, `${path}: keyless means no keys`);
  }
  assert.match(read('infra/app/storage.bicep'), /allowSharedKeyAccess: false/);
  assert.match(read('infra/app/storage.bicep'), /allowBlobPublicAccess: false/);
  assert.match(read('infra/app/storage.bicep'), /minimumTlsVersion: 'TLS1_2'/);
  assert.match(read('infra/app/openai.bicep'), /disableLocalAuth: true/);
  assert.match(read('infra/app/monitoring.bicep'), /DisableLocalAuth: true/);
  assert.ok(topLevelKeys(blockAfter(api, /^var platformSettings\s*=\s*/m)).every((k) => !/KEY|SECRET|PASSWORD/i.test(k)));
});
