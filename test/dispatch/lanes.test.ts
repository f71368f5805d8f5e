import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modelLanes } from '../../src/core/teams/lanes';

test('models take lanes in name order, wrapping around; an unknown model goes to lane 0', () => {
  const models = ['gpt-4o', 'o3-mini', 'gpt-4o-mini', 'gpt-4o' /* a second region of the same model */];
  const enough = modelLanes(models, 4);
  assert.deepEqual(['gpt-4o', 'gpt-4o-mini', 'o3-mini'].map(enough), [0, 1, 2]);
  const two = modelLanes(models, 2);
  assert.deepEqual(['gpt-4o', 'gpt-4o-mini', 'o3-mini'].map(two), [0, 1, 0]);
  assert.equal(enough('not-configured'), 0);
  assert.equal(modelLanes(models, 0)('o3-mini'), 0, 'no lanes (one FIFO queue): everything in lane 0');
});
