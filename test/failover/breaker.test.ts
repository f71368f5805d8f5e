/** The pure breaker state machine, on a fake clock. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  allows,
  changed,
  claimProbe,
  closedState,
  cooldownMs,
  DEFAULT_BREAKER_POLICY as P,
  recordFailure,
  recordSuccess,
  type BreakerState,
} from '../../src/core/breaker';
import { mayLeaveGroup } from '../../src/core/breaker/spillover';
import { outcomeOf } from '../../src/core/breaker/outcome';
import { EndpointConfigError, FinalModelError, RateLimitedError, UpstreamUnavailableError } from '../../src/core/errors';

const T0 = 1_700_000_000_000;

test('a connection error opens the breaker for the cool-down', () => {
  const s = recordFailure(closedState(), { kind: 'connection', message: 'ECONNREFUSED' }, T0);
  assert.equal(s.state, 'open');
  assert.equal(s.openedAt, T0);
  assert.equal(s.until, T0 + P.cooldownMs);
  assert.equal(s.lastError, 'connection: ECONNREFUSED');
  assert.equal(allows(s, T0), 'open');
  assert.equal(allows(s, T0 + P.cooldownMs - 1), 'open');
  assert.equal(allows(s, T0 + P.cooldownMs), 'probe');
});

test('a timeout and an auth failure open the breaker', () => {
  assert.equal(recordFailure(closedState(), { kind: 'timeout' }, T0).state, 'open');
  assert.equal(recordFailure(closedState(), { kind: 'auth' }, T0).state, 'open');
});

test('a single 5xx is remembered but does not open; the third within the window does', () => {
  const one = recordFailure(closedState(), { kind: '5xx', message: '503' }, T0);
  assert.equal(one.state, 'closed');
  assert.deepEqual(one.recent5xx, [T0]);
  assert.equal(allows(one, T0), 'closed');
  const two = recordFailure(one, { kind: '5xx' }, T0 + 1_000);
  assert.equal(two.state, 'closed');
  const three = recordFailure(two, { kind: '5xx' }, T0 + 2_000);
  assert.equal(three.state, 'open');
  assert.deepEqual(three.recent5xx, []);
});

test('5xx answers older than the window do not count toward opening', () => {
  let s = recordFailure(closedState(), { kind: '5xx' }, T0);
  s = recordFailure(s, { kind: '5xx' }, T0 + 1_000);
  s = recordFailure(s, { kind: '5xx' }, T0 + P.windowMs + 500); // the first has aged out
  assert.equal(s.state, 'closed');
  assert.deepEqual(s.recent5xx, [T0 + 1_000, T0 + P.windowMs + 500]);
});

test('a 429 with a short Retry-After changes nothing; one over the cap opens for the normal cool-down', () => {
  const start = closedState();
  const short = recordFailure(start, { kind: '429', retryAfterMs: 5_000 }, T0);
  assert.equal(short, start, 'no change means no write');
  assert.equal(changed(start, short), false);
  assert.equal(recordFailure(start, { kind: '429' }, T0), start);
  assert.equal(recordFailure(start, { kind: '429', retryAfterMs: P.retryAfterCapMs }, T0), start);
  const daily = recordFailure(start, { kind: '429', retryAfterMs: 86_400_000, message: 'retry after 86400 seconds' }, T0);
  assert.equal(daily.state, 'open');
  assert.equal(daily.until, T0 + P.cooldownMs, 'a day is never waited out');
});

test('cool-down honours a Retry-After shorter than the cap, with a floor', () => {
  assert.equal(cooldownMs({ kind: '5xx', retryAfterMs: 4_000 }), 4_000);
  assert.equal(cooldownMs({ kind: '5xx', retryAfterMs: 0 }), 1_000);
  assert.equal(cooldownMs({ kind: 'connection' }), P.cooldownMs);
  assert.equal(cooldownMs({ kind: '429', retryAfterMs: 86_400_000 }), P.cooldownMs);
  assert.equal(cooldownMs({ kind: '5xx', retryAfterMs: 50_000 }), 50_000);
  const s = recordFailure(closedState(), { kind: 'connection', retryAfterMs: 3_000 }, T0);
  assert.equal(s.until, T0 + 3_000);
});

test('after the cool-down one probe is claimed; its success closes the breaker', () => {
  const opened = recordFailure(closedState(), { kind: 'connection' }, T0);
  assert.equal(claimProbe(opened, 'a', T0 + 1), opened, 'no probe during the cool-down');
  const at = T0 + P.cooldownMs;
  const probing = claimProbe(opened, 'a', at);
  assert.equal(probing.state, 'half-open');
  assert.equal(probing.probeOwner, 'a');
  assert.equal(allows(probing, at + 1), 'open', 'others are kept out while the probe runs');
  assert.equal(claimProbe(probing, 'b', at + 1), probing, 'a second claim loses');
  const closed = recordSuccess(probing, at + 100, 'a');
  assert.equal(closed.state, 'closed');
  assert.equal(allows(closed, at + 100), 'closed');
});

test('probe failure re-opens for another cool-down', () => {
  const opened = recordFailure(closedState(), { kind: 'connection' }, T0);
  const at = T0 + P.cooldownMs;
  const probing = claimProbe(opened, 'a', at);
  const reopened = recordFailure(probing, { kind: 'connection', message: 'still down' }, at + 50, P, 'a');
  assert.equal(reopened.state, 'open');
  assert.equal(reopened.openedAt, at + 50);
  assert.equal(reopened.until, at + 50 + P.cooldownMs);
  assert.equal(reopened.lastError, 'connection: still down');
});

test('outcomes of calls that are not the probe do not move an open or half-open breaker', () => {
  const opened = recordFailure(closedState(), { kind: 'connection' }, T0);
  assert.equal(recordSuccess(opened, T0 + 10, 'late-caller'), opened);
  assert.equal(recordFailure(opened, { kind: '5xx' }, T0 + 10), opened);
  const probing = claimProbe(opened, 'a', T0 + P.cooldownMs);
  assert.equal(recordSuccess(probing, T0 + P.cooldownMs + 5, 'b'), probing);
  assert.equal(recordFailure(probing, { kind: 'connection' }, T0 + P.cooldownMs + 5, P, 'b'), probing);
});

test('a successful call while closed changes nothing (steady traffic never writes)', () => {
  const s: BreakerState = recordFailure(closedState(), { kind: '5xx' }, T0);
  assert.equal(recordSuccess(s, T0 + 1, 'a'), s);
  const closed = closedState();
  assert.equal(recordSuccess(closed, T0), closed);
});

test('a probe holder that vanishes loses the probe when its lease runs out', () => {
  const opened = recordFailure(closedState(), { kind: 'timeout' }, T0);
  const at = T0 + P.cooldownMs;
  const probing = claimProbe(opened, 'a', at);
  assert.equal(allows(probing, at + P.probeLeaseMs - 1), 'open');
  assert.equal(allows(probing, at + P.probeLeaseMs), 'probe');
  const taken = claimProbe(probing, 'b', at + P.probeLeaseMs);
  assert.equal(taken.probeOwner, 'b');
  assert.equal(recordSuccess(taken, at + P.probeLeaseMs + 1, 'a').state, 'half-open', "the old holder's late answer is ignored");
});

test('long error texts are truncated for storage', () => {
  const s = recordFailure(closedState(), { kind: 'connection', message: 'x'.repeat(5_000) }, T0);
  assert.ok(s.lastError!.length <= 500);
});

test('spill-over: health always fails over; budget only when the model allows it', () => {
  assert.equal(mayLeaveGroup(['open', 'failed'], false), true);
  assert.equal(mayLeaveGroup(['budget'], false), false);
  assert.equal(mayLeaveGroup(['open', 'budget'], false), false);
  assert.equal(mayLeaveGroup(['budget'], true), true);
  assert.equal(mayLeaveGroup(['budget']), true, 'default keeps today\'s behaviour');
});

test('outcomeOf maps typed errors to breaker failures; request errors are not the endpoint\'s', () => {
  assert.deepEqual(outcomeOf(new UpstreamUnavailableError('connection_failed', 'ECONNREFUSED')), { ok: false, kind: 'connection', message: 'ECONNREFUSED' });
  assert.equal((outcomeOf(new UpstreamUnavailableError('timeout', 'slow', 504)) as { kind: string }).kind, 'timeout');
  assert.deepEqual(outcomeOf(new RateLimitedError('quota gone', 86_400_000)), { ok: false, kind: '429', retryAfterMs: 86_400_000, message: 'quota gone' });
  assert.equal((outcomeOf(new UpstreamUnavailableError('upstream_503', 'busy', 503)) as { kind: string }).kind, '5xx');
  assert.equal((outcomeOf(new EndpointConfigError('endpoint_auth_failed', 'no', 401)) as { kind: string }).kind, 'auth');
  assert.equal(outcomeOf(new FinalModelError('context_length_exceeded', 'too long')), undefined);
});
