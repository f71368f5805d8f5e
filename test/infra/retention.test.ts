/**
 * The storage lifecycle policy deletes what the retention settings say, by the prefixes the app writes: main.bicep's
 * retention parameters default to the settings' defaults, and the storage module's rules are built from them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settingsSchema } from '../../src/configSchema';
import { DAY_MS, EXPIRES_AFTER_MAX_S } from '../../src/core/retention/policy';
import { blockAfter, read, resourceBlocks, stringValue, stringVars, topLevelEntries } from './infraSource';

const codeDefault = (name: 'SLUICE_RETENTION_JOBS_DAYS' | 'SLUICE_RETENTION_USAGE_DAYS' | 'SLUICE_RETENTION_FILES_DAYS' | 'SLUICE_PAYLOAD_CONTAINER' | 'SLUICE_FILES_CONTAINER') =>
  settingsSchema.shape[name].parse(undefined);

function paramDefault(main: string, name: string): string {
  const m = new RegExp(`^param ${name} \\w+ = (.+)$`, 'm').exec(main);
  assert.ok(m, `main.bicep declares ${name} with a default`);
  return m[1]!.trim().replace(/^'|'$/g, '');
}

test('main.bicep retention parameters default to the settings defaults and feed the settings', () => {
  const main = read('infra/main.bicep');
  assert.equal(Number(paramDefault(main, 'retentionJobsDays')), codeDefault('SLUICE_RETENTION_JOBS_DAYS'));
  assert.equal(Number(paramDefault(main, 'retentionUsageDays')), codeDefault('SLUICE_RETENTION_USAGE_DAYS'));
  assert.equal(Number(paramDefault(main, 'retentionFilesDays')), codeDefault('SLUICE_RETENTION_FILES_DAYS'));
  assert.equal(paramDefault(main, 'retentionSweepSchedule'), settingsSchema.shape.SLUICE_RETENTION_SWEEP_SCHEDULE.parse(undefined));
  assert.equal(Number(paramDefault(main, 'retentionSweepMaxRows')), settingsSchema.shape.SLUICE_RETENTION_SWEEP_MAX_ROWS.parse(undefined));
  const settings = topLevelEntries(blockAfter(main, /^var sluiceSettings\s*=\s*/m));
  assert.equal(settings.get('SLUICE_RETENTION_JOBS_DAYS'), 'string(retentionJobsDays)');
  assert.equal(settings.get('SLUICE_RETENTION_USAGE_DAYS'), 'string(retentionUsageDays)');
  assert.equal(settings.get('SLUICE_RETENTION_FILES_DAYS'), 'string(retentionFilesDays)');
});

test('the lifecycle policy deletes payload blobs a day after the jobs period and files after the longest file expiry', () => {
  const main = read('infra/main.bicep');
  const vars = stringVars(main);
  const params = topLevelEntries(blockAfter(blockAfter(main, /^module storage 'app\/storage\.bicep'\s*=\s*/m), /\bparams:\s*/));
  assert.equal(stringValue(params.get('payloadContainer')!, vars), codeDefault('SLUICE_PAYLOAD_CONTAINER'));
  assert.equal(stringValue(params.get('filesContainer')!, vars), codeDefault('SLUICE_FILES_CONTAINER'));
  assert.equal(params.get('payloadRetentionDays'), 'retentionJobsDays + 1');
  // A file keeps its expires_after (at most 30 days) even when the default period is shorter.
  assert.equal(EXPIRES_AFTER_MAX_S * 1000, 30 * DAY_MS);
  assert.equal(params.get('filesRetentionDays'), 'max(retentionFilesDays, 30)');

  const storage = read('infra/app/storage.bicep');
  const [policy] = resourceBlocks(storage, 'Microsoft.Storage/storageAccounts/managementPolicies');
  assert.ok(policy, 'storage.bicep has a lifecycle management policy');
  const rules = policy.body.replace(/\s+/g, ' ');
  // The prefixes JobStore writes payloads under (requests/<id>.json, responses/<id>.json), and the whole files container.
  assert.match(rules, /prefixMatch: \['\$\{payloadContainer\}\/requests\/', '\$\{payloadContainer\}\/responses\/'\] \} actions: \{ baseBlob: \{ delete: \{ daysAfterCreationGreaterThan: payloadRetentionDays \} \} \}/);
  assert.match(rules, /prefixMatch: \['\$\{filesContainer\}\/'\] \} actions: \{ baseBlob: \{ delete: \{ daysAfterCreationGreaterThan: filesRetentionDays \} \} \}/);
});
