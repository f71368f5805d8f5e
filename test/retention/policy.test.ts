/** The retention rules as pure functions: when jobs and files expire, expires_after on upload, ids that carry time. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValidationError } from '../../src/core/errors';
import { newBatchId, newFileId } from '../../src/core/batch/model';
import {
  batchCreatedAtOfId, batchIdBoundary, DAY_MS, expiresAtOfUpload, fileCertainlyExpired, fileCreatedAtOfId, fileExpired, fileExpiresAt, jobExpired,
} from '../../src/core/retention/policy';

const policy = { jobsDays: 30, usageDays: 400, filesDays: 30 };
const now = 1_800_000_000_000;

test('a job expires its retention period after it finished; unfinished jobs never do', () => {
  assert.equal(jobExpired({ status: 'succeeded', createdAt: 0, completedAt: now - 30 * DAY_MS }, policy, now), true);
  assert.equal(jobExpired({ status: 'failed', createdAt: 0, completedAt: now - 30 * DAY_MS + 1 }, policy, now), false);
  assert.equal(jobExpired({ status: 'waiting', createdAt: now - 300 * DAY_MS }, policy, now), false);
  assert.equal(jobExpired({ status: 'failed', createdAt: now - 31 * DAY_MS }, policy, now), true, 'no completedAt: from creation');
});

test('a file expires at its own expires_after, else the default period; a missing one is expired past the longest', () => {
  assert.equal(fileExpiresAt({ createdAt: now }, policy), now + 30 * DAY_MS);
  assert.equal(fileExpiresAt({ createdAt: now, expiresAt: now + 3_600_000 }, { ...policy, filesDays: 90 }), now + 3_600_000);
  assert.equal(fileExpired({ createdAt: now - 2 * 3_600_000, expiresAt: now - 1 }, policy, now), true);
  // With a 7-day default, a file may still hold a 30-day expires_after: only past 30 days is a missing file expired.
  const short = { ...policy, filesDays: 7 };
  assert.equal(fileCertainlyExpired(now - 8 * DAY_MS, short, now), false);
  assert.equal(fileCertainlyExpired(now - 30 * DAY_MS, short, now), true);
  assert.equal(fileCertainlyExpired(now - 60 * DAY_MS, { ...policy, filesDays: 90 }, now), false);
});

test('expires_after: anchor created_at and 3600 to 2592000 seconds, as OpenAI; anything else is a 400', () => {
  assert.equal(expiresAtOfUpload(undefined, undefined, now), undefined);
  assert.equal(expiresAtOfUpload('created_at', '3600', now), now + 3_600_000);
  assert.equal(expiresAtOfUpload('created_at', '2592000', now), now + 30 * DAY_MS);
  for (const [anchor, seconds, param] of [
    ['created_at', '3599', 'expires_after.seconds'], ['created_at', '2592001', 'expires_after.seconds'], ['created_at', '1e4', 'expires_after.seconds'],
    ['created_at', undefined, 'expires_after.seconds'], [undefined, '3600', 'expires_after.anchor'], ['last_active_at', '3600', 'expires_after.anchor'],
  ] as const) {
    assert.throws(() => expiresAtOfUpload(anchor, seconds, now), (err: unknown) => err instanceof ValidationError && err.status === 400 && err.param === param, `${anchor} ${seconds}`);
  }
});

test('file and batch ids carry their creation time; the boundary id sorts below every older batch', () => {
  assert.equal(fileCreatedAtOfId(newFileId(now)), now);
  assert.equal(batchCreatedAtOfId(newBatchId(now)), now);
  assert.equal(fileCreatedAtOfId('file-abc'), undefined);
  const boundary = batchIdBoundary(now);
  assert.ok(newBatchId(now - 1) > boundary && newBatchId(now) > boundary, 'created at or before: above the boundary');
  assert.ok(newBatchId(now + 1) < boundary, 'created after: below it');
});
