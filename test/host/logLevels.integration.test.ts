// The local host's console levels end to end: the fixture functions' HTTP triggers, no storage needed.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { startFunctionsHost, type FunctionsHostOptions, type RunningFunctionsHost } from '../../local/host';

const FIXTURES = join(__dirname, 'fixtures', 'functions.js');
const SETTING = 'AzureFunctionsJobHost__logging__logLevel__Function.fixtureGetItem.User';

let host: RunningFunctionsHost | undefined;
afterEach(async () => {
  await host?.close();
  host = undefined;
  delete process.env[SETTING];
});

/** Starts a host on the two HTTP fixtures, calls them (one succeeds, one throws) and returns every line logged. */
async function linesFor(options: FunctionsHostOptions = {}, hostJson?: object): Promise<string[]> {
  const rootDir = mkdtempSync(join(tmpdir(), 'sluice-loglevels-'));
  if (hostJson) writeFileSync(join(rootDir, 'host.json'), JSON.stringify(hostJson));
  const lines: string[] = [];
  host = await startFunctionsHost({ rootDir, port: 0, functionFiles: [FIXTURES], only: ['fixtureGetItem', 'fixtureBoom'], log: (l) => lines.push(l), ...options });
  assert.equal((await fetch(`${host.url}/api/items/42`)).status, 200);
  assert.equal((await fetch(`${host.url}/api/boom`)).status, 500);
  await host.close();
  return lines;
}

const has = (lines: string[], pattern: RegExp) => lines.some((l) => pattern.test(l));
const EXECUTING = /Executing 'Functions\.fixtureGetItem'/;
const SUCCEEDED = /Executed 'Functions\.fixtureGetItem' \(Succeeded, Id=[0-9a-f-]{36}, Duration=\d+ms\)/;
const FAILED = /Executed 'Functions\.fixtureBoom' \(Failed, Id=[0-9a-f-]{36}/;
const INFO = /^\[[^\]]+\] fixtureGetItem INFO: item 42$/;
const DEBUG = /fixtureGetItem DEBUG: item 42 detail$/;

test("by default: the banner, function logs from Information and failures; no per-invocation lines", async () => {
  const lines = await linesFor();
  assert.ok(has(lines, /^Functions \(local host, routePrefix "api"\)/), 'the banner');
  assert.ok(has(lines, INFO), 'the function info line');
  assert.ok(has(lines, FAILED), 'the failed invocation, with its error');
  assert.ok(!has(lines, EXECUTING) && !has(lines, SUCCEEDED), 'no Executing/Executed lines for a run that succeeded');
  assert.ok(!has(lines, DEBUG), 'no debug detail');
});

test('host.json logging.logLevel turns the host lines and debug detail on', async () => {
  const lines = await linesFor({}, { logging: { logLevel: { Function: 'Information', 'Function.fixtureGetItem.User': 'Debug' } } });
  assert.ok(has(lines, EXECUTING) && has(lines, SUCCEEDED));
  assert.ok(has(lines, DEBUG));
});

test('host.json can quieten function logs, and a setting overrides host.json', async () => {
  const quiet = await linesFor({}, { logging: { logLevel: { default: 'Warning' } } });
  assert.ok(!has(quiet, INFO));
  assert.ok(has(quiet, FAILED), 'errors still show');
  process.env[SETTING] = 'Debug';
  const overridden = await linesFor({}, { logging: { logLevel: { default: 'Warning' } } });
  assert.ok(has(overridden, INFO) && has(overridden, DEBUG));
});

test('logLevel (what --verbose sets) shows everything whatever host.json says', async () => {
  const lines = await linesFor({ logLevel: 'Trace' }, { logging: { logLevel: { default: 'None' } } });
  for (const pattern of [EXECUTING, SUCCEEDED, FAILED, INFO, DEBUG]) assert.ok(has(lines, pattern), String(pattern));
});
