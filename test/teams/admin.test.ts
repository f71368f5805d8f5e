// Unit tests of the admin operations on keys, with an in-memory team repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConflictError, createKey, revokeKey } from '../../src/core/teams/admin';
import { mintKey, newTeam, parseKey } from '../../src/core/teams/model';
import { MemoryTeams } from './memoryTeams';

function setup() {
  const repo = new MemoryTeams();
  repo.teams.set('search', newTeam({ id: 'search' }, 0, 0));
  const existing = mintKey('search', { role: 'admin', now: 0 }).record;
  repo.keys.set(existing.id, existing);
  return { repo, existing };
}

test('minting inserts and never replaces: a taken key id is retried with a fresh one', async () => {
  const { repo, existing } = setup();
  repo.collideNext = 2;
  const minted = await createKey(repo, 'search', { name: 'ci' }, 1_000);
  assert.deepEqual(repo.keyWrites.map((w) => w.op), ['create', 'create', 'create'], 'inserts only, one fresh id per attempt');
  assert.equal(new Set(repo.keyWrites.map((w) => w.id)).size, 3);
  assert.equal(parseKey(minted.key)!.id, minted.record.id);
  assert.deepEqual(repo.keys.get(minted.record.id), minted.record);
  assert.deepEqual(repo.keys.get(existing.id), existing, 'the other key is untouched');
});

test('minting answers 409 when no free key id is found, and writes nothing', async () => {
  const { repo, existing } = setup();
  repo.collideNext = 100;
  await assert.rejects(createKey(repo, 'search', {}, 1_000), (err: unknown) => err instanceof ConflictError && err.status === 409 && err.code === 'key_id_conflict');
  assert.ok(repo.keyWrites.every((w) => w.op === 'create'));
  assert.deepEqual([...repo.keys.values()], [existing]);
});

test('revoking replaces the key it names (an update of an existing key)', async () => {
  const { repo, existing } = setup();
  const revoked = await revokeKey(repo, 'search', existing.id, 5);
  assert.equal(revoked.revokedAt, 5);
  assert.deepEqual(repo.keyWrites, [{ op: 'put', id: existing.id }]);
});
