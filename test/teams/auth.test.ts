// Unit tests of who-is-calling with an in-memory team repository and a fake clock.
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Authenticator, presentedKey } from '../../src/core/teams/auth';
import { leastUsedLane, mintKey, newTeam } from '../../src/core/teams/model';
import { MemoryTeams } from './memoryTeams';

function setup() {
  const repo = new MemoryTeams();
  repo.teams.set('search', newTeam({ id: 'search' }, 0, 0));
  repo.teams.set('platform', newTeam({ id: 'platform' }, 1, 0));
  const { key, record } = mintKey('search', { role: 'member', now: 0, expiresAt: 100_000 });
  repo.keys.set(record.id, record);
  return { repo, key, record };
}

const headers = (h: Record<string, string>) => (name: string) => h[name.toLowerCase()];

test('a key is accepted as api-key or Bearer, looked up once per cache interval, and refused after it expires', async () => {
  const { repo, key } = setup();
  const auth = new Authenticator({ repo, cacheMs: 30_000 });
  const a = await auth.authenticate(headers({ 'api-key': key }), 1_000);
  assert.ok(a.ok && a.principal.team.id === 'search' && a.principal.role === 'member');
  const b = await auth.authenticate(headers({ authorization: `Bearer ${key}` }), 2_000);
  assert.ok(b.ok);
  assert.equal(repo.keyReads, 1, 'the second request is served from the cache');
  const expired = await auth.authenticate(headers({ 'api-key': key }), 100_000);
  assert.equal(expired.ok, false, 'a cached grant ends when the key expires');
});

test('revocation: the revoking instance forgets at once; others within the cache interval', async () => {
  const { repo, key, record } = setup();
  const here = new Authenticator({ repo, cacheMs: 30_000 });
  const elsewhere = new Authenticator({ repo, cacheMs: 30_000 });
  assert.ok((await here.authenticate(headers({ 'api-key': key }), 0)).ok);
  assert.ok((await elsewhere.authenticate(headers({ 'api-key': key }), 0)).ok);
  repo.keys.set(record.id, { ...record, revokedAt: 10 });
  here.forget(record.id);
  assert.equal((await here.authenticate(headers({ 'api-key': key }), 20)).ok, false);
  assert.equal((await elsewhere.authenticate(headers({ 'api-key': key }), 30_001)).ok, false);
});

test('a flood of junk and made-up keys keeps the cache bounded and a valid key cached', async () => {
  const { repo, key } = setup();
  const auth = new Authenticator({ repo, cacheMs: 30_000, negativeCacheMs: 5_000, cachedKeys: 100, cachedMisses: 50 });
  assert.ok((await auth.authenticate(headers({ 'api-key': key }), 0)).ok);
  const readsAfterValid = repo.keyReads;

  // Text not shaped like a key: refused without a lookup, and nothing cached.
  for (let i = 0; i < 20_000; i++) {
    const r = await auth.authenticate(headers({ 'api-key': `junk-${i}-${'x'.repeat(i % 50)}` }), 1);
    assert.ok(!r.ok && r.code === 'invalid_api_key');
  }
  assert.equal(repo.keyReads, readsAfterValid, 'junk costs no table read');
  assert.deepEqual(auth.cacheSize, { keys: 1, misses: 0 });

  // Well-formed keys with made-up ids: one read each, remembered in the small miss cache only.
  const madeUp = Array.from({ length: 500 }, () => `slk_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`);
  for (const k of madeUp) assert.equal((await auth.authenticate(headers({ 'api-key': k }), 2)).ok, false);
  assert.equal(repo.keyReads, readsAfterValid + madeUp.length);
  assert.deepEqual(auth.cacheSize, { keys: 1, misses: 50 }, 'both caches stay within their bounds');
  const last = madeUp.at(-1)!;
  assert.equal((await auth.authenticate(headers({ 'api-key': last }), 3)).ok, false);
  assert.equal(repo.keyReads, readsAfterValid + madeUp.length, 'a repeated unknown id is answered from the miss cache');

  // Wrong secrets for the valid key id are refused from the cached record.
  const wrong = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
  for (let i = 0; i < 100; i++) assert.equal((await auth.authenticate(headers({ 'api-key': wrong }), 4)).ok, false);

  const before = repo.keyReads;
  const r = await auth.authenticate(headers({ 'api-key': key }), 5);
  assert.ok(r.ok, 'the valid key still works');
  assert.equal(repo.keyReads, before, 'and is still served from the cache');
});

test('wrong secrets, unknown ids, garbage and missing credentials are refused with distinct codes', async () => {
  const { repo, key } = setup();
  const auth = new Authenticator({ repo });
  const wrong = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
  const r1 = await auth.authenticate(headers({ 'api-key': wrong }), 0);
  assert.ok(!r1.ok && r1.code === 'invalid_api_key');
  const r2 = await auth.authenticate(headers({ 'api-key': 'slk_0000000000000000_' + 'a'.repeat(43) }), 0);
  assert.ok(!r2.ok && r2.code === 'invalid_api_key');
  const r3 = await auth.authenticate(headers({}), 0);
  assert.ok(!r3.ok && r3.code === 'missing_credentials');
  repo.teams.set('search', { ...repo.teams.get('search')!, disabled: true });
  const r4 = await new Authenticator({ repo }).authenticate(headers({ 'api-key': key }), 0);
  assert.ok(!r4.ok && r4.code === 'team_disabled');
});

const principal = (claims: Array<[string, string]>) => Buffer.from(JSON.stringify({ auth_typ: 'aad', claims: claims.map(([typ, val]) => ({ typ, val })) })).toString('base64');
/** Headers as App Service Authentication hands them on: the principal and the identity provider that validated it. */
const fromPlatform = (encoded: string) => headers({ 'x-ms-client-principal': encoded, 'x-ms-client-principal-idp': 'aad' });

test('Entra ID: with App Service Authentication on, app, group and role selectors map to teams', async () => {
  const { repo } = setup();
  const app = principal([['appid', '11111111-aaaa'], ['oid', 'o1']]);
  const noMapping = new Authenticator({ repo });
  const r0 = await noMapping.authenticate(fromPlatform(app), 0);
  assert.ok(!r0.ok && r0.code === 'missing_credentials', 'without a mapping the header is ignored');

  const auth = new Authenticator({ repo, entra: { teams: { 'app:11111111-aaaa': 'search', 'group:g-1': 'search' }, admins: ['role:Sluice.Admin'], adminTeam: 'platform', appServiceAuth: true } });
  const r1 = await auth.authenticate(fromPlatform(app), 0);
  assert.ok(r1.ok && r1.principal.team.id === 'search' && r1.principal.role === 'member' && r1.principal.via === 'entra:o1');
  const r2 = await auth.authenticate(fromPlatform(principal([['groups', 'g-1']])), 0);
  assert.ok(r2.ok && r2.principal.team.id === 'search');
  const r3 = await auth.authenticate(fromPlatform(principal([['roles', 'Sluice.Admin']])), 0);
  assert.ok(r3.ok && r3.principal.role === 'admin' && r3.principal.team.id === 'platform');
  const r4 = await auth.authenticate(fromPlatform(principal([['appid', 'someone-else']])), 0);
  assert.ok(!r4.ok && r4.code === 'unmapped_principal');
  const r5 = await auth.authenticate(fromPlatform('not base64 json'), 0);
  assert.ok(!r5.ok);
});

test('a forged principal header is ignored unless the platform authenticated it: 401 as with no credentials', async () => {
  const { repo } = setup();
  const forged = principal([['roles', 'Sluice.Admin']]);
  const mapping = { teams: {}, admins: ['role:Sluice.Admin'], adminTeam: 'platform' };
  const withoutPlatform = new Authenticator({ repo, entra: { ...mapping, appServiceAuth: false } });
  for (const h of [headers({ 'x-ms-client-principal': forged }), fromPlatform(forged)]) {
    const r = await withoutPlatform.authenticate(h, 0);
    assert.ok(!r.ok && r.code === 'missing_credentials', 'App Service Authentication off: the header is anyone\'s to write');
  }
  const withPlatform = new Authenticator({ repo, entra: { ...mapping, appServiceAuth: true } });
  for (const idp of [undefined, 'github', 'aad-forged']) {
    const r = await withPlatform.authenticate(headers({ 'x-ms-client-principal': forged, ...(idp ? { 'x-ms-client-principal-idp': idp } : {}) }), 0);
    assert.ok(!r.ok && r.code === 'missing_credentials', `identity provider ${idp ?? 'absent'}: not an Entra ID principal`);
  }
  const r = await withPlatform.authenticate(fromPlatform(forged), 0);
  assert.ok(r.ok && r.principal.role === 'admin', 'the same claims, validated by the platform, are trusted');
});

test('app: selectors match app-only tokens only, never a user signed in through that app', async () => {
  const { repo } = setup();
  const auth = new Authenticator({ repo, entra: { teams: { 'app:client-1': 'search' }, admins: ['app:admin-app'], adminTeam: 'platform', appServiceAuth: true } });
  const appOnly = [
    principal([['appid', 'client-1'], ['oid', 'sp-1'], ['idtyp', 'app']]),
    principal([['azp', 'client-1'], ['oid', 'sp-1'], ['roles', 'Jobs.Submit']]), // no idtyp: no scope, no user
  ];
  for (const p of appOnly) {
    const r = await auth.authenticate(fromPlatform(p), 0);
    assert.ok(r.ok && r.principal.team.id === 'search', 'an app-only token maps by its application id');
  }
  const userTokens = [
    principal([['appid', 'client-1'], ['oid', 'u-1'], ['scp', 'user_impersonation']]),
    principal([['appid', 'client-1'], ['oid', 'u-1'], ['http://schemas.microsoft.com/identity/claims/scope', 'user_impersonation']]),
    principal([['azp', 'client-1'], ['oid', 'u-1'], ['idtyp', 'user']]),
    principal([['appid', 'client-1'], ['oid', 'u-1'], ['preferred_username', 'someone@example.com']]),
    principal([['appid', 'admin-app'], ['oid', 'u-1'], ['name', 'Someone']]),
  ];
  for (const p of userTokens) {
    const r = await auth.authenticate(fromPlatform(p), 0);
    assert.ok(!r.ok && r.code === 'unmapped_principal', 'a user token carries the client app id, which says nothing about the user');
  }
});

test('several matching selectors: the most specific kind wins (oid, app, role, group), then the first listed', async () => {
  const { repo } = setup();
  for (const id of ['t-oid', 't-role', 't-g1', 't-g2']) repo.teams.set(id, newTeam({ id }, 0, 0));
  const teams = { 'group:g-2': 't-g2', 'group:g-1': 't-g1', 'role:Writer': 't-role', 'oid:o-1': 't-oid' };
  const auth = new Authenticator({ repo, entra: { teams, admins: [], adminTeam: 'platform', appServiceAuth: true } });
  const teamOf = async (claims: Array<[string, string]>) => {
    const r = await auth.authenticate(fromPlatform(principal(claims)), 0);
    return r.ok ? r.principal.team.id : r.code;
  };
  assert.equal(await teamOf([['groups', 'g-1'], ['roles', 'Writer'], ['oid', 'o-1']]), 't-oid');
  assert.equal(await teamOf([['groups', 'g-1'], ['roles', 'Writer'], ['oid', 'o-9']]), 't-role');
  assert.equal(await teamOf([['groups', 'g-1'], ['groups', 'g-2']]), 't-g2', 'the selector listed first in the mapping');
  assert.equal(await teamOf([['groups', 'g-2'], ['groups', 'g-1']]), 't-g2', 'whatever the order of claims in the token');
});

test('a Bearer JWT is left to App Service Authentication, not taken for a Sluice key', () => {
  assert.equal(presentedKey(headers({ authorization: 'Bearer aaa.bbb.ccc' })), undefined);
  assert.equal(presentedKey(headers({ authorization: 'Bearer slk_x' })), 'slk_x');
  assert.equal(presentedKey(headers({ 'api-key': ' k ' })), 'k');
});

test('new teams take the least-used lane', () => {
  assert.equal(leastUsedLane([], 4), 0);
  assert.equal(leastUsedLane([{ lane: 0 }, { lane: 1 }, { lane: 0 }], 3), 2);
  assert.equal(leastUsedLane([{ lane: 0 }, { lane: 1 }, { lane: 2 }], 3), 0);
});
