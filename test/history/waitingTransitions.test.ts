/** Which job writes count a job into or out of the waiting count (pure logic; the store test covers Azurite). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWaiting, WaitingTransitions } from '../../src/azure/waitingJobs';
import type { JobRecord } from '../../src/core/jobs';

const base = { id: 'job_1', team: 't', createdAt: 5 } as JobRecord;

function tracker() {
  const changes: number[] = [];
  return { changes, t: new WaitingTransitions((job, delta) => changes.push(delta)) };
}

test('parked and held jobs wait; queued, calling and finished ones do not', () => {
  assert.equal(isWaiting({ status: 'waiting', notBefore: 1 }), true);
  assert.equal(isWaiting({ status: 'running', notBefore: 1 }), true);
  assert.equal(isWaiting({ status: 'running' }), false);
  assert.equal(isWaiting({ status: 'queued' }), false);
  assert.equal(isWaiting({ status: 'succeeded', notBefore: 1 }), false);
});

test('a change is counted once, against the state seen at the replaced ETag', () => {
  const { changes, t } = tracker();
  t.saw('job_1', 'e1', false);
  t.replaced({ ...base, status: 'waiting', notBefore: 9 }, 'e1', 'e2');
  t.replaced({ ...base, status: 'waiting', notBefore: 19 }, 'e2', 'e3'); // still waiting: no change
  t.replaced({ ...base, status: 'running' }, 'e3', 'e4');
  assert.deepEqual(changes, [1, -1]);
});

test('a replace at an ETag this process never saw is not counted; a direct stop of a waiting job counts it out', () => {
  const { changes, t } = tracker();
  t.replaced({ ...base, status: 'waiting', notBefore: 9 }, 'unknown', 'e2');
  assert.deepEqual(changes, []);
  t.ended('job_1', base, true);
  t.ended('job_2', base, false);
  assert.deepEqual(changes, [-1]);
});
