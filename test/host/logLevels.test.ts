// Log levels as host.json `logging.logLevel` sets them, with the local console's defaults and the command-line
// overrides (no servers).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseHostArgs } from '../../local/host/cli';
import { parseHostJson } from '../../local/host/hostJson';
import {
  filteredLog,
  logLevelRulesFromSettings,
  mergeLogLevelRules,
  minimumLevel,
  parseLogLevel,
  type LogLevel,
  type LogLevelRules,
} from '../../local/host/logging';
import { logLevelFromArgs } from '../../local/start';

const USER = 'Function.worker.User';
const INVOCATIONS = 'Function.worker';
const QUEUE = 'Host.Triggers.Queue';

function shown(rules: LogLevelRules, category: string, level: LogLevel, override?: LogLevel): boolean {
  const lines: string[] = [];
  filteredLog((line) => lines.push(line), rules, override)(category, level, 'x');
  return lines.length === 1;
}

test("without rules, function logs show from Information and the host's own lines from Warning", () => {
  assert.equal(minimumLevel(USER, {}), 'Information');
  assert.equal(minimumLevel(INVOCATIONS, {}), 'Warning');
  assert.equal(minimumLevel(QUEUE, {}), 'Warning');
  assert.ok(shown({}, USER, 'Information'));
  assert.ok(!shown({}, USER, 'Debug'), 'debug detail is hidden');
  assert.ok(!shown({}, INVOCATIONS, 'Information'), 'Executing/Executed lines are hidden');
  assert.ok(shown({}, INVOCATIONS, 'Error'), 'a failed invocation shows');
  assert.ok(shown({}, QUEUE, 'Warning'));
});

test('default sets function logs; the host keeps its lines below Warning off unless a rule names them', () => {
  assert.equal(minimumLevel(USER, { default: 'Warning' }), 'Warning');
  assert.equal(minimumLevel(USER, { default: 'Debug' }), 'Debug');
  assert.equal(minimumLevel(INVOCATIONS, { default: 'Debug' }), 'Warning');
  assert.equal(minimumLevel(INVOCATIONS, { default: 'Error' }), 'Error', 'a stricter default applies to the host too');
  assert.equal(minimumLevel(INVOCATIONS, { default: 'Warning', Function: 'Information' }), 'Information');
  assert.equal(minimumLevel(QUEUE, { Host: 'Debug' }), 'Debug');
});

test('the longest matching category wins, compared case-insensitively as in .NET', () => {
  const rules: LogLevelRules = { default: 'Warning', Function: 'Information', 'function.worker.user': 'Debug', 'Function.rollup': 'Error' };
  assert.equal(minimumLevel(USER, rules), 'Debug');
  assert.equal(minimumLevel(INVOCATIONS, rules), 'Information');
  assert.equal(minimumLevel('Function.rollup.User', rules), 'Error');
  assert.equal(minimumLevel('Function.getJob.User', rules), 'Information');
  assert.equal(minimumLevel('Other.Category', rules), 'Warning', 'other categories follow default');
  assert.ok(!shown({ 'Function.rollup': 'None' }, 'Function.rollup.User', 'Critical'), 'None turns a category off');
});

test('--verbose and --log-level apply to every category over the rules', () => {
  const rules: LogLevelRules = { default: 'Error', Function: 'None' };
  assert.ok(shown(rules, INVOCATIONS, 'Trace', 'Trace'));
  assert.ok(shown(rules, USER, 'Debug', 'Debug'));
  assert.ok(!shown(rules, USER, 'Trace', 'Debug'));
  assert.ok(shown({}, INVOCATIONS, 'Information', 'Information'), '--log-level Information shows the host lines too');
});

test('levels are parsed case-insensitively and invalid ones are named', () => {
  assert.equal(parseLogLevel('debug', 'x'), 'Debug');
  assert.equal(parseLogLevel(' WARNING ', 'x'), 'Warning');
  assert.throws(() => parseLogLevel('loud', '--log-level'), /--log-level: expected one of Trace, Debug/);
  assert.deepEqual(parseHostJson({ logging: { logLevel: { default: 'warning', 'Function.worker': 'Trace' } } }).logLevels, {
    default: 'Warning',
    'Function.worker': 'Trace',
  });
  assert.deepEqual(parseHostJson({}).logLevels, {});
  assert.throws(() => parseHostJson({ logging: { logLevel: { Function: 'Verbose' } } }), /host\.json logging\.logLevel\.Function/);
  assert.throws(() => parseHostJson({ logging: { logLevel: 'Debug' } }), /host\.json logging\.logLevel: expected an object/);
});

test('AzureFunctionsJobHost__logging__logLevel__ settings win over host.json', () => {
  const env = { AzureFunctionsJobHost__logging__logLevel__Function: 'Debug', azurefunctionsjobhost__logging__loglevel__default: 'Error', OTHER: 'x' };
  const fromSettings = logLevelRulesFromSettings(env);
  assert.deepEqual(fromSettings, { Function: 'Debug', default: 'Error' });
  const rules = mergeLogLevelRules({ function: 'Warning', Host: 'Information' }, fromSettings);
  assert.equal(minimumLevel(USER, rules), 'Debug');
  assert.equal(minimumLevel(QUEUE, rules), 'Information');
  assert.throws(() => logLevelRulesFromSettings({ AzureFunctionsJobHost__logging__logLevel__Host: 'chatty' }), /AzureFunctionsJobHost__logging__logLevel__Host/);
});

test('command lines: npm start and the host process take --verbose and --log-level', () => {
  assert.equal(logLevelFromArgs([]), undefined);
  assert.equal(logLevelFromArgs(['--verbose']), 'Trace');
  assert.equal(logLevelFromArgs(['--log-level', 'debug']), 'Debug');
  assert.equal(logLevelFromArgs(['--log-level=error']), 'Error');
  assert.throws(() => logLevelFromArgs(['--log-level']), /--log-level/);
  assert.throws(() => logLevelFromArgs(['--quiet']), /unknown argument --quiet/);
  assert.equal(parseHostArgs(['--verbose'], {}).logLevel, 'Trace');
  assert.equal(parseHostArgs(['--log-level', 'Warning'], {}).logLevel, 'Warning');
  assert.equal(parseHostArgs([], {}).logLevel, undefined);
  assert.throws(() => parseHostArgs(['--log-level', 'loud'], {}), /--log-level/);
});
