/**
 * The retentionSweep timer in the local host: on its schedule it deletes an expired file, logs that run at info and
 * routine runs at debug.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStack, type RunningStack } from '../../local/stack';
import { storageClients } from '../../src/azure/storage';
import { FileStore } from '../../src/azure/fileStore';
import { eventually } from '../support/api';
import { DAYS, uploadFile } from './support';

let stack: RunningStack;

before(async () => {
  stack = await startStack({ env: { SLUICE_RETENTION_SWEEP_SCHEDULE: '*/1 * * * * *' } });
});

after(async () => {
  await stack?.stop();
});

test('the timer deletes an expired file and says so at info; runs with nothing to delete log at debug', { timeout: 120_000 }, async () => {
  const storage = storageClients({ connectionString: stack.connectionString });
  const files = new FileStore(storage.container('sluice-files'), storage.table('sluicebatches'));
  const old = await uploadFile(files, Date.now() - DAYS(31));
  const live = await uploadFile(files, Date.now() - DAYS(1));
  await eventually('the expired file to be deleted', async () => (await files.get(old.id)) === undefined, 60_000);
  assert.ok(await files.get(live.id), 'the live file stays');
  const sweepLines = () => stack.logs().filter((l) => l.includes('retention sweep:'));
  const info = await eventually('the info line', async () => sweepLines().find((l) => /INFO: retention sweep: deleted .*1 file\(s\)/.test(l)), 10_000);
  assert.match(info, /looked at \d+/);
  await eventually('a routine run at debug', async () => sweepLines().some((l) => /DEBUG: retention sweep: deleted 0 job\(s\), 0 batch\(es\) with 0 line row\(s\), 0 file\(s\), 0 usage row\(s\)/.test(l)), 30_000);
});
