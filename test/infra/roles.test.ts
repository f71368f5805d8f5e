/**
 * Drift test 3: the app identity holds each data role the code needs, on the right resource, and nothing broader; the
 * deploying user holds none unless asked. Role definition ids are Azure built-in roles, checked against Microsoft's
 * built-in roles reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allBicep, appSources, blockAfter, read, resourceBlocks, resourceTypes, topLevelEntries } from './infraSource';

/** Roles broader than any principal here needs: data owners manage ACLs; Owner/Contributor manage the resources. */
const TOO_BROAD = [
  { role: 'Storage Blob Data Owner', id: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' },
  { role: 'Owner', id: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635' },
  { role: 'Contributor', id: 'b24988ac-6180-47dd-a4fe-0ef9bca1ed03' },
  { role: 'Storage Account Contributor', id: '17d1049b-9a84-46fb-8f53-869881c3d3ab' },
];

const REQUIRED = [
  { role: 'Storage Blob Data Contributor', id: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe', scope: 'Microsoft.Storage/storageAccounts' },
  { role: 'Storage Queue Data Contributor', id: '974c5e8b-45b9-4653-ba55-5f855dd0fb88', scope: 'Microsoft.Storage/storageAccounts' },
  { role: 'Storage Table Data Contributor', id: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3', scope: 'Microsoft.Storage/storageAccounts' },
  { role: 'Cognitive Services OpenAI User', id: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd', scope: 'Microsoft.CognitiveServices/accounts' },
  { role: 'Monitoring Metrics Publisher', id: '3913510d-42f4-4e42-8a64-420c390055eb', scope: 'Microsoft.Insights/components' },
];

interface Assignment {
  path: string;
  roleIds: string[];
  principal: string;
  scopeType: string | undefined;
  /** The `if (…)` of a conditional assignment, '' when unconditional. */
  condition: string;
}

/** Every role assignment in infra/, with role ids resolved through `roles.x` and `for role in <array var>`. */
function assignments(): Assignment[] {
  const out: Assignment[] = [];
  for (const { path, text } of allBicep()) {
    const blocks = resourceBlocks(text, 'Microsoft.Authorization/roleAssignments');
    if (!blocks.length) continue;
    const roles = /^var roles\s*=/m.test(text) ? topLevelEntries(blockAfter(text, /^var roles\s*=\s*/m)) : new Map<string, string>();
    const roleId = (expr: string): string | undefined => {
      const literal = /'([0-9a-f-]{36})'/.exec(expr)?.[1];
      const named = /roles\.(\w+)/.exec(expr)?.[1];
      return literal ?? (named ? roles.get(named)?.replace(/'/g, '') : undefined);
    };
    const types = resourceTypes(text);
    for (const b of blocks) {
      const props = topLevelEntries(blockAfter(b.body, /\bproperties:\s*/));
      const def = props.get('roleDefinitionId') ?? '';
      let ids = [roleId(def)].filter((x): x is string => !!x);
      const loop = /\[for (\w+) in (\w+):/.exec(b.header);
      if (!ids.length && loop && def.includes(loop[1]!)) {
        const arr = new RegExp(`^var ${loop[2]}\\s*=\\s*\\[([^\\]]*)\\]`, 'm').exec(text)?.[1] ?? '';
        ids = arr.split(',').map((e) => roleId(e)).filter((x): x is string => !!x);
      }
      const scope = topLevelEntries(b.body).get('scope')?.replace(/\[.*\]$/, '');
      const condition = /\bif \(([^)]*)\)/.exec(b.header)?.[1] ?? '';
      out.push({ path, roleIds: ids, principal: props.get('principalId') ?? '', scopeType: scope ? types.get(scope) : undefined, condition });
    }
  }
  return out;
}

test('the app identity holds every role the code needs, scoped to the resource that needs it', () => {
  const all = assignments().filter((a) => a.principal === 'appPrincipalId');
  for (const r of REQUIRED) {
    const hit = all.find((a) => a.roleIds.includes(r.id));
    assert.ok(hit, `${r.role} (${r.id}) is assigned to the app identity`);
    assert.equal(hit.scopeType, r.scope, `${r.role} is scoped to a ${r.scope}`);
  }
  const extra = all.flatMap((a) => a.roleIds).filter((id) => !REQUIRED.some((r) => r.id === id));
  assert.deepEqual(extra, [], 'least privilege: no other roles for the app');
});

test('role definition ids are the built-in ones (a typo grants nothing)', () => {
  const ids = new Set(REQUIRED.map((r) => r.id));
  const found = new Set<string>();
  for (const { path, text } of allBicep()) {
    for (const m of text.matchAll(/'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'/g)) {
      assert.ok(ids.has(m[1]!), `${path}: unknown role definition id ${m[1]}`);
      found.add(m[1]!);
    }
  }
  // Without this the loop above passes on infra that spells no role id at all.
  assert.deepEqual([...found].sort(), [...ids].sort(), 'every required role id is spelled out in infra/');
});

test('the identity that holds the roles is the one the app runs as, and covers every OpenAI account', () => {
  const main = read('infra/main.bicep');
  const rbac = topLevelEntries(blockAfter(blockAfter(main, /^module rbac 'app\/rbac\.bicep'\s*=\s*/m), /\bparams:\s*/));
  const api = topLevelEntries(blockAfter(blockAfter(main, /^module api 'app\/api\.bicep'\s*=\s*/m), /\bparams:\s*/));
  assert.equal(rbac.get('appPrincipalId'), 'identity.outputs.principalId');
  assert.equal(api.get('identityId'), 'identity.outputs.id');
  assert.equal(api.get('identityClientId'), 'identity.outputs.clientId');
  assert.equal(rbac.get('openAiAccountNames'), 'openAiAccountNames', 'roles on the same accounts main.bicep creates');
  assert.match(main, /name: openAiAccountNames\[i\]/);
  assert.match(read('infra/app/rbac.bicep'), /appOpenAiUser '[^']+' = \[for \(n, i\) in openAiAccountNames:/);
});

test('no principal gets a role broader than the code needs (no data owner, no resource management)', () => {
  for (const a of assignments()) {
    for (const r of TOO_BROAD) assert.ok(!a.roleIds.includes(r.id), `${a.path}: ${a.principal} gets ${r.role}`);
  }
  for (const { path, text } of allBicep()) {
    for (const r of TOO_BROAD) assert.ok(!text.includes(r.id), `${path} names ${r.role}`);
  }
});

test('storage roles are account-wide only because the code creates containers, queues and tables at runtime', () => {
  // If the app stops creating storage resources on first use, narrower scopes become possible: this test then fails
  // and says so.
  const creates = appSources().filter((f) => /\.(createIfNotExists|createTable)\(/.test(read(f)));
  assert.ok(creates.length > 0, 'the app creates containers, queues or tables on first use');
  // Posting to a producer-named reply_to queue needs send rights on queues infra does not know.
  assert.ok(appSources().some((f) => /storage\.queue\(job\.replyTo\)/.test(read(f))), 'the app posts to reply_to queues');
  const rbac = read('infra/app/rbac.bicep');
  assert.ok(/azure-webjobs-hosts/.test(rbac), 'rbac.bicep says why the scope is the account');
  assert.ok(/reply_to/.test(rbac), 'rbac.bicep says why the queue scope is the account');
});

test('the deploying user gets data roles only when grantDeployerDataAccess is on (default off)', () => {
  const main = read('infra/main.bicep');
  assert.ok(/^param grantDeployerDataAccess bool = false$/m.test(main), 'main.bicep: grantDeployerDataAccess defaults to false');
  const rbacParams = topLevelEntries(blockAfter(blockAfter(main, /^module rbac 'app\/rbac\.bicep'\s*=\s*/m), /\bparams:\s*/));
  assert.equal(rbacParams.get('userPrincipalId'), "grantDeployerDataAccess ? principalId : ''", 'rbac gets the user only when granted');

  const rbac = read('infra/app/rbac.bicep');
  assert.ok(/^var withUser = !empty\(userPrincipalId\)$/m.test(rbac), 'rbac.bicep: withUser is "a user was passed"');
  const user = assignments().filter((a) => a.principal === 'userPrincipalId');
  assert.ok(user.length > 0, 'there are (conditional) user assignments');
  for (const a of user) assert.equal(a.condition, 'withUser', `${a.roleIds.join(',')}: a user assignment is made only if (withUser)`);
  // Nobody but the app identity and the (opt-in) user is named as a principal.
  for (const a of assignments()) assert.ok(['appPrincipalId', 'userPrincipalId'].includes(a.principal), `${a.path}: principal ${a.principal}`);

  const params = (JSON.parse(read('infra/main.parameters.json')) as { parameters: Record<string, { value: unknown }> }).parameters;
  assert.equal(params['grantDeployerDataAccess']?.value, '${SLUICE_GRANT_DEPLOYER_DATA_ACCESS=false}', 'the azd env turns it on, default off');
  assert.ok(/azd env set SLUICE_GRANT_DEPLOYER_DATA_ACCESS true/.test(read('docs/deploy.md')), 'docs/deploy.md says how to turn it on');
});
