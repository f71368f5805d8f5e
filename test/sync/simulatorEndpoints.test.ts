/**
 * The local stack's deployment list: the simulator's embeddings deployments are served as the logical model of their
 * name in both regions, with the model version Azure would list, and the app's own config accepts the list.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config';
import { endpointsFromSimulator } from '../../local/stack';
import { modelVersionOf } from '../../src/core/endpoints';
import { DEFAULT_SIMULATOR_CONFIG, startSimulator, type RunningSimulator } from '../../local/simulator/index';

const STORAGE = { AzureWebJobsStorage: 'UseDevelopmentStorage=true' };
let sim: RunningSimulator;
before(async () => {
  sim = await startSimulator(structuredClone(DEFAULT_SIMULATOR_CONFIG));
});
after(() => sim.close());

test('npm start serves text-embedding-3-small in both regions with its model version', () => {
  const config = loadConfig({ ...STORAGE, SLUICE_ENDPOINTS: JSON.stringify(endpointsFromSimulator(sim, DEFAULT_SIMULATOR_CONFIG)) });
  const embeddings = config.endpoints.filter((e) => e.model === 'text-embedding-3-small');
  assert.deepEqual(embeddings.map((e) => [e.region, e.deployment, e.modelVersion]), [
    ['sim-eastus', 'text-embedding-3-small', '1'],
    ['sim-westus', 'text-embedding-3-small', '1'],
  ]);
  assert.deepEqual(config.endpoints.filter((e) => e.model === 'gpt-4o-mini').map((e) => e.modelVersion), ['2024-07-18', '2024-07-18']);
  assert.ok(config.models['text-embedding-3-small'], 'the embeddings model has built-in limits');
});

test('modelVersion is optional and must be a non-empty string', () => {
  const entry = { region: 'r', endpoint: 'https://x.openai.azure.com', deployment: 'd', model: 'gpt-4o-mini', tpm: 1000 };
  assert.equal(loadConfig({ ...STORAGE, SLUICE_ENDPOINTS: JSON.stringify([entry]) }).endpoints[0]!.modelVersion, undefined);
  assert.throws(() => loadConfig({ ...STORAGE, SLUICE_ENDPOINTS: JSON.stringify([{ ...entry, modelVersion: '' }]) }), /SLUICE_ENDPOINTS/);
});

test('modelVersionOf: one version, the sorted distinct versions during a rollout, or none', () => {
  const e = (model: string, modelVersion?: string) => ({ model, ...(modelVersion ? { modelVersion } : {}) });
  assert.equal(modelVersionOf([e('emb', '1'), e('emb', '1'), e('chat', '2024-07-18')], 'emb'), '1');
  assert.equal(modelVersionOf([e('emb', '2'), e('emb', '1'), e('emb')], 'emb'), '1,2');
  assert.equal(modelVersionOf([e('emb'), e('chat', '1')], 'emb'), '');
  assert.equal(modelVersionOf([], 'emb'), '');
});
