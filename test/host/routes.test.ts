import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRoute, matchRoute, RouteTable } from '../../local/host/routes';

const match = (template: string, path: string) => matchRoute(compileRoute(template), path);

test('literal and parameter segments', () => {
  assert.deepEqual(match('api/v1/jobs/{id}', '/api/v1/jobs/abc'), { id: 'abc' });
  assert.deepEqual(match('api/v1/jobs/{id}', '/API/V1/Jobs/abc/'), { id: 'abc' }, 'literals are case-insensitive, trailing slash ignored');
  assert.equal(match('api/v1/jobs/{id}', '/api/v1/jobs'), undefined);
  assert.equal(match('api/v1/jobs/{id}', '/api/v1/jobs/a/b'), undefined);
  assert.deepEqual(match('api/v1/jobs', '/api/v1/jobs'), {});
});

test('parameters are percent-decoded', () => {
  assert.deepEqual(match('api/items/{name}', '/api/items/a%20b'), { name: 'a b' });
  assert.equal(match('api/items/{name}', '/api/items/%E0%A4%A'), undefined);
});

test('constraints', () => {
  assert.deepEqual(match('api/n/{id:int}', '/api/n/42'), { id: '42' });
  assert.equal(match('api/n/{id:int}', '/api/n/4x'), undefined);
  assert.equal(match('api/n/{id:int}', '/api/n/99999999999'), undefined, 'int is 32-bit');
  assert.deepEqual(match('api/g/{id:guid}', '/api/g/3f2504e0-4f89-11d3-9a0c-0305e82c3301'), { id: '3f2504e0-4f89-11d3-9a0c-0305e82c3301' });
  assert.equal(match('api/g/{id:guid}', '/api/g/not-a-guid'), undefined);
  assert.deepEqual(match('api/a/{x:alpha:length(2,3)}', '/api/a/abc'), { x: 'abc' });
  assert.equal(match('api/a/{x:alpha:length(2,3)}', '/api/a/abcd'), undefined);
  assert.deepEqual(match('api/r/{x:regex(^v[0-9]+$)}', '/api/r/v12'), { x: 'v12' });
  assert.equal(match('api/r/{x:range(1,5)}', '/api/r/6'), undefined);
  assert.deepEqual(match('api/b/{flag:bool}', '/api/b/TRUE'), { flag: 'TRUE' });
  assert.throws(() => compileRoute('api/{x:nope}'), /not supported/);
});

test('optional, default and catch-all parameters', () => {
  assert.deepEqual(match('api/list/{page?}', '/api/list'), {});
  assert.deepEqual(match('api/list/{page?}', '/api/list/3'), { page: '3' });
  assert.deepEqual(match('api/list/{page:int?}', '/api/list/3'), { page: '3' });
  assert.equal(match('api/list/{page:int?}', '/api/list/x'), undefined);
  assert.deepEqual(match('api/list/{page=1}', '/api/list'), { page: '1' });
  assert.deepEqual(match('api/files/{*rest}', '/api/files/a/b%2Fc/d'), { rest: 'a/b/c/d' });
  assert.deepEqual(match('api/files/{*rest}', '/api/files'), {});
  assert.throws(() => compileRoute('api/{*rest}/x'), /catch-all/);
});

test('mixed segments', () => {
  assert.deepEqual(match('api/files/{name}.{ext}', '/api/files/report.final.pdf'), { name: 'report', ext: 'final.pdf' });
  assert.equal(match('api/files/{name}.{ext}', '/api/files/report'), undefined);
});

test('RouteTable: prefix, precedence, 405 vs 404', () => {
  const table = new RouteTable<string>('api');
  table.add('v1/jobs/{id}', ['GET'], 'getJob');
  table.add('v1/jobs/{*rest}', undefined, 'catchAll');
  table.add('v1/jobs/health', ['get'], 'literal');
  table.add('v1/jobs', ['POST'], 'submit');

  assert.deepEqual(table.match('GET', '/api/v1/jobs/health'), { kind: 'matched', value: 'literal', params: {} });
  assert.deepEqual(table.match('GET', '/api/v1/jobs/7'), { kind: 'matched', value: 'getJob', params: { id: '7' } });
  assert.deepEqual(table.match('DELETE', '/api/v1/jobs/7'), { kind: 'matched', value: 'catchAll', params: { rest: '7' } });
  assert.deepEqual(table.match('GET', '/api/v1/jobs'), { kind: 'matched', value: 'catchAll', params: {} });
  assert.deepEqual(table.match('post', '/api/v1/jobs'), { kind: 'matched', value: 'submit', params: {} });
  assert.deepEqual(table.match('GET', '/v1/jobs/7'), { kind: 'notFound' });

  const strict = new RouteTable<string>('');
  strict.add('/things/{id}', ['GET', 'PUT'], 'thing');
  assert.deepEqual(strict.match('DELETE', '/things/1'), { kind: 'methodNotAllowed', allowed: ['GET', 'PUT'] });
  assert.deepEqual(strict.match('GET', '/nothing'), { kind: 'notFound' });
});
