/** The HTTP plumbing: what an error answer may show a caller, and how much of a body is read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InvocationContext } from '@azure/functions';
import { ConfigError, loadConfig } from '../../src/config';
import { errorResponse } from '../../src/runtime/http';

/** Short enough that the JSON parser quotes all of it in its message. */
const SECRET = 'sk-7f3a9c';

function recordingContext() {
  const lines: string[] = [];
  const log = (m: string) => void lines.push(m);
  return { lines, context: { error: log, warn: log, info: log, debug: log, trace: log, log } as unknown as InvocationContext };
}

test('a config error answers a generic 503 and logs the detail, never the setting value', () => {
  let err: unknown;
  try {
    loadConfig({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', SLUICE_ENDPOINTS: SECRET });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError && err.message.includes(SECRET), `precondition: the detail quotes the value (${String(err)})`);
  const { lines, context } = recordingContext();
  const res = errorResponse(err, context);
  assert.equal(res.status, 503);
  assert.equal(res.headers && (res.headers as Record<string, string>)['retry-after'], '60');
  const body = JSON.stringify(res.jsonBody);
  assert.ok(!body.includes(SECRET), body);
  assert.ok(!body.includes('SLUICE_ENDPOINTS'), body);
  assert.equal((res.jsonBody as { error: { code: string; param: unknown } }).error.code, 'service_misconfigured');
  assert.equal((res.jsonBody as { error: { param: unknown } }).error.param, null);
  assert.ok(lines.some((l) => l.includes('SLUICE_ENDPOINTS')), 'the log names the setting');
});
