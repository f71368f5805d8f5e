/**
 * The rollup timer on a fresh storage account (nothing written yet: no jobs, usage or rollup tables): it runs
 * without a warning, and its routine lines stay at debug, so `npm start` shows nothing while nothing happens.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvocationContext, type Timer } from '@azure/functions';
import { startAzurite, type RunningAzurite } from '../../local/azurite';
import { resetConfig } from '../../src/config';
import { resetServices } from '../../src/runtime/services';
import { rollup } from '../../src/functions/rollup';

const SETTINGS = {
  AzureWebJobsStorage: '',
  SLUICE_ENDPOINTS: JSON.stringify([{ region: 'swedencentral', endpoint: 'http://127.0.0.1:9', deployment: 'chat', model: 'gpt-4o-mini', tpm: 10_000 }]),
};
const previous: Record<string, string | undefined> = {};
let azurite: RunningAzurite;

before(async () => {
  azurite = await startAzurite({ inMemory: true });
  for (const [name, value] of Object.entries({ ...SETTINGS, AzureWebJobsStorage: azurite.connectionString })) {
    previous[name] = process.env[name];
    process.env[name] = value;
  }
  resetConfig();
  resetServices();
});

after(async () => {
  for (const [name, value] of Object.entries(previous)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  resetConfig();
  resetServices();
  await azurite?.stop();
});

const timer: Timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } };

test('a rollup over an empty, fresh storage logs no warning, and its routine lines are debug', async () => {
  const lines: { level: string; message: string }[] = [];
  const context = new InvocationContext({ functionName: 'rollup', logHandler: (level, ...args) => lines.push({ level, message: args.join(' ') }) });
  await rollup(timer, context); // creates its tables and closes the last hour's empty windows
  await rollup(timer, context); // nothing left to close
  const loud = lines.filter((l) => l.level !== 'debug' && l.level !== 'trace');
  assert.deepEqual(loud, [], 'nothing above debug');
  assert.ok(lines.some((l) => /^rollup: closed [1-9]\d* window/.test(l.message)), `the first run closed windows: ${JSON.stringify(lines.slice(-3))}`);
});
