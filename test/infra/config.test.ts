/**
 * The settings schema: one rule for blank values, a ConfigError that names the setting, defaults as documented, and
 * readers that never write to the environment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bindingSettings, ConfigError, laneCount, loadConfig } from '../../src/config';

const BASE = {
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  SLUICE_ENDPOINTS: JSON.stringify([{ region: 'r1', endpoint: 'https://a.openai.azure.com', deployment: 'd1', model: 'gpt-4o-mini', tpm: 10_000 }]),
};
const load = (env: Record<string, string> = {}) => loadConfig({ ...BASE, ...env });
const namesSetting = (setting: string) => (e: unknown) => e instanceof ConfigError && e.setting === setting && e.message.includes(setting);

test('blank means unset for every kind of setting: the default applies', () => {
  const blank = load({
    SLUICE_BREAKER_ENABLED: '',
    SLUICE_FAIR_SHARE: '  ',
    SLUICE_BUDGET_DEBUG: '',
    SLUICE_CALL_TIMEOUT_MS: ' ',
    SLUICE_JOBS_QUEUE: '',
    SLUICE_BUDGET_SAFETY: '',
    SLUICE_PRICES: '',
    SLUICE_ENTRA_TEAMS: ' ',
    SLUICE_BUDGET_MONTHLY_USD: '',
  });
  assert.deepEqual(blank, load());
  assert.equal(blank.breaker.enabled, true);
  assert.equal(blank.teams.fairShare, true);
  assert.equal(blank.budget.debug, false);
  assert.equal(blank.callTimeoutMs, 120_000);
  assert.equal(blank.jobsQueue, 'sluice-jobs');
  assert.equal(blank.budget.safety, 0.99);
  assert.equal(blank.telemetry.monthlyBudgetUsd, undefined);
  assert.equal(blank.teams.entra, undefined);
});

test('defaults of each feature, and values trimmed and parsed', () => {
  const d = load();
  assert.equal(d.batch.submitQueue, 'sluice-submit');
  assert.equal(d.batch.sweepSchedule, '*/5 * * * * *');
  assert.equal(d.batch.maxFileBytes, 200 * 1024 * 1024);
  assert.deepEqual(d.telemetry.budgetThresholdsPct, [50, 80, 100]);
  assert.equal(d.telemetry.quotaAdviceMinutes, 15);
  assert.equal(d.telemetry.latenessMs, 120_000);
  assert.equal(d.telemetry.rollupSchedule, '0 */1 * * * *');
  assert.equal(d.teams.lanes, 1);
  assert.equal(d.dispatch.enabled, true);
  assert.equal(d.dispatch.depthSeconds, 20);
  assert.equal(d.endpoints[0]!.rpm, 60, '6 RPM per 1,000 TPM');
  const set = load({ SLUICE_BREAKER_ENABLED: ' FALSE ', SLUICE_FAIR_SHARE: '0', SLUICE_BATCH_LEASE_S: ' 5 ', SLUICE_BUDGET_THRESHOLDS: '100, 50,50' });
  assert.equal(set.breaker.enabled, false);
  assert.equal(set.teams.fairShare, false);
  assert.equal(set.batch.leaseS, 5);
  assert.deepEqual(set.telemetry.budgetThresholdsPct, [50, 100]);
});

test('a bad value is a ConfigError naming the setting', () => {
  assert.throws(() => load({ SLUICE_BREAKER_ENABLED: 'yes' }), namesSetting('SLUICE_BREAKER_ENABLED'));
  assert.throws(() => load({ SLUICE_FAIR_SHARE: 'maybe' }), namesSetting('SLUICE_FAIR_SHARE'));
  assert.throws(() => load({ SLUICE_BUDGET_LEASE_MS: '999' }), namesSetting('SLUICE_BUDGET_LEASE_MS'));
  assert.throws(() => load({ SLUICE_BUDGET_SAFETY: '0' }), namesSetting('SLUICE_BUDGET_SAFETY'));
  assert.throws(() => load({ SLUICE_BATCH_FANOUT_CHUNK: '2.5' }), namesSetting('SLUICE_BATCH_FANOUT_CHUNK'));
  assert.throws(() => load({ SLUICE_JOBS_TABLE: 'no-dashes' }), namesSetting('SLUICE_JOBS_TABLE'));
  assert.throws(() => load({ SLUICE_QUEUE_LANES: '17' }), namesSetting('SLUICE_QUEUE_LANES'));
  assert.throws(() => load({ SLUICE_ENTRA_ADMINS: 'nobody' }), namesSetting('SLUICE_ENTRA_ADMINS'));
  assert.throws(() => load({ SLUICE_ENTRA_TEAMS: '{"app:x":"Not A Team"}' }), namesSetting('SLUICE_ENTRA_TEAMS'));
  assert.throws(() => load({ SLUICE_MODELS: '{"custom":{"contextWindow":1000}}' }), namesSetting('SLUICE_MODELS'));
  assert.throws(() => loadConfig({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' }), namesSetting('SLUICE_ENDPOINTS'));
  assert.throws(() => loadConfig({ SLUICE_ENDPOINTS: BASE.SLUICE_ENDPOINTS }), namesSetting('AzureWebJobsStorage'));
});

test('SLUICE_PRICES, SLUICE_TEAM_BUDGETS, SLUICE_BUDGET_THRESHOLDS: validated; cachedInput defaults to input', () => {
  const s = load({ SLUICE_PRICES: '{"eastus/chat":{"input":1,"output":2}}' }).telemetry;
  assert.deepEqual(s.priceOverrides['eastus/chat'], { input: 1, cachedInput: 1, output: 2 });
  assert.throws(() => load({ SLUICE_PRICES: '{"x":{"input":-1,"output":1}}' }), namesSetting('SLUICE_PRICES'));
  assert.throws(() => load({ SLUICE_TEAM_BUDGETS: '{' }), namesSetting('SLUICE_TEAM_BUDGETS'));
  assert.throws(() => load({ SLUICE_BUDGET_THRESHOLDS: '50,abc' }), namesSetting('SLUICE_BUDGET_THRESHOLDS'));
});

test('binding settings: defaults without the rest of the config, and nothing written to the environment', () => {
  const env: Record<string, string> = {};
  assert.deepEqual(bindingSettings(env), {
    jobsQueue: 'sluice-jobs',
    submitQueue: 'sluice-submit',
    batchQueue: 'sluice-batches',
    batchSweepSchedule: '*/5 * * * * *',
    rollupSchedule: '0 */1 * * * *',
    retentionSweepSchedule: '0 */5 * * * *',
    dispatchSchedule: '*/5 * * * * *',
    lanes: 1,
  });
  assert.deepEqual(env, {});
  assert.equal(bindingSettings({ SLUICE_BATCH_QUEUE: ' my-batches ' }).batchQueue, 'my-batches');
  assert.equal(laneCount({ SLUICE_QUEUE_LANES: '0' }), 0);
  assert.throws(() => bindingSettings({ SLUICE_SUBMIT_QUEUE: 'Bad_Name' }), namesSetting('SLUICE_SUBMIT_QUEUE'));
});

test('importing the function files leaves the app settings in the environment as they were', async () => {
  // Only app settings: a library may note its own version in the environment (applicationinsights does).
  const settings = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(SLUICE_|AzureWebJobs|FUNCTIONS_)/.test(k)));
  const before = settings();
  for (const fn of ['batchDriver', 'batchSweep', 'submissionQueue', 'rollup', 'worker', 'poisonJobs', 'retentionSweep']) {
    await import(`../../src/functions/${fn}.js`);
  }
  assert.deepEqual(settings(), before);
});
