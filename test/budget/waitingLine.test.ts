// The line of waiting jobs at one instance (waitingLine.ts): who waits behind whom.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lineHead, noteRefused, waitingTokens, type WaitingJobs } from '../../src/core/budget/waitingLine';

const HOLD_MS = 30_000;

test('a job waits behind the oldest job of its own team and priority that is held here and due back', () => {
  const w: WaitingJobs = new Map();
  noteRefused(w, { jobId: 'a-old', team: 'A' }, 2_500, 'batch', 2_000, 0, HOLD_MS);
  noteRefused(w, { jobId: 'a-int', team: 'A' }, 500, 'interactive', 1_000, 100, HOLD_MS);
  noteRefused(w, { jobId: 'b-old', team: 'B' }, 2_500, 'batch', 2_000, 200, HOLD_MS);
  noteRefused(w, { jobId: 'a-young', team: 'A' }, 300, 'batch', 1_500, 300, HOLD_MS);
  assert.equal(lineHead(w, { jobId: 'a-young', team: 'A' }, 'batch', 400)?.tokens, 2_500);
  assert.equal(lineHead(w, { jobId: 'a-new', team: 'A' }, 'batch', 400), w.get('a-old'), 'a job not seen yet stands last');
  // The oldest stands behind nobody; other teams and priorities have lines of their own.
  assert.equal(lineHead(w, { jobId: 'a-old', team: 'A' }, 'batch', 400), undefined);
  assert.equal(lineHead(w, { jobId: 'b-new', team: 'B' }, 'batch', 400), w.get('b-old'));
  assert.equal(lineHead(w, { jobId: 'c-new', team: 'C' }, 'batch', 400), undefined);
  assert.equal(lineHead(w, { jobId: 'a-int-2', team: 'A' }, 'interactive', 400), w.get('a-int'));
  // Asked again, a job keeps its place.
  noteRefused(w, { jobId: 'a-old', team: 'A' }, 2_500, 'batch', 3_000, 2_000, HOLD_MS);
  assert.equal(lineHead(w, { jobId: 'a-young', team: 'A' }, 'batch', 2_100), w.get('a-old'));
  assert.equal(w.get('a-old')!.since, 0);
});

test('a job that was parked on the queue, or did not come back when due, keeps no place in line', () => {
  const w: WaitingJobs = new Map();
  noteRefused(w, { jobId: 'parked', team: 'A' }, 2_500, 'batch', 45_000, 0, HOLD_MS); // longer than the hold
  noteRefused(w, { jobId: 'gone', team: 'A' }, 2_500, 'batch', 1_000, 0, HOLD_MS); // due at 1 s
  assert.equal(lineHead(w, { jobId: 'young', team: 'A' }, 'batch', 900), w.get('gone'));
  assert.equal(lineHead(w, { jobId: 'young', team: 'A' }, 'batch', 2_500), undefined, 'overdue by more than a second');
  // Both still count as waiting work until their grace runs out, then they are dropped.
  assert.equal(waitingTokens(w, 2_500), 5_000);
  assert.equal(waitingTokens(w, 7_000), 2_500);
  assert.equal(w.size, 1);
});
