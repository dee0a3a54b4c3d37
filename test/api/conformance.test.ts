import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import { harness, tempDir } from './helpers.js';
import { ALL_OPS, Walker, type Json } from './outline-spec.js';

/**
 * Walks every operation of the Outline Server Management API spec, checks each response's status
 * is one the spec documents and its body validates against the spec's schema, then checks the
 * error cases. Fails if any operation of the spec was not exercised.
 */

function errorOf(res: LightMyRequestResponse): { code: string; message: string; field?: string } {
  const body = JSON.parse(res.body) as { code: string; message: string; field?: string };
  assert.equal(typeof body.code, 'string');
  assert.equal(typeof body.message, 'string');
  return body;
}

function decodeAccessUrl(url: string): { method: string; password: string; host: string; port: number } {
  const m = /^ss:\/\/([A-Za-z0-9_-]+)@([^:]+):(\d+)\/\?outline=1$/.exec(url);
  assert.ok(m, `access URL has Outline's form ss://BASE64URL@host:port/?outline=1: ${url}`);
  const [method, ...rest] = Buffer.from(m[1]!, 'base64url').toString('utf8').split(':');
  return { method: method!, password: rest.join(':'), host: m[2]!, port: Number(m[3]) };
}

test('every path of the Outline spec answers as documented', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const w = new Walker(h);

  // --- server ---
  const server = JSON.parse((await w.op('GET', '/server', 200)).body) as Json;
  // The Outline level Outline Manager compares, then Ladder's own version as semver build metadata.
  assert.match(String(server.version), /^1\.12\.0\+ladder\.\d+\.\d+\.\d+/);
  assert.equal(server.hostnameForAccessKeys, 'example.org');
  assert.equal(server.portForNewAccessKeys, 4444);
  assert.equal(server.accessKeyDataLimit, undefined);

  await w.op('PUT', '/server/hostname-for-access-keys', 204, { body: { hostname: 'www.example.org' } });
  await w.op('PUT', '/server/hostname-for-access-keys', 204, { body: { hostname: '127.0.0.1' } });
  let e = errorOf(
    await w.op('PUT', '/server/hostname-for-access-keys', 400, { body: { hostname: 'bad host!' } }),
  );
  assert.equal(e.field, 'hostname');
  assert.match(e.message, /hostname/);

  await w.op('PUT', '/server/port-for-new-access-keys', 204, { body: { port: 12345 } });
  e = errorOf(await w.op('PUT', '/server/port-for-new-access-keys', 400, { body: { port: 70000 } }));
  assert.equal(e.field, 'port');
  e = errorOf(await w.op('PUT', '/server/port-for-new-access-keys', 400, { body: {} }));
  assert.equal(e.code, 'MissingParameterError');
  assert.match(e.message, /"port"/);
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '0.0.0.0', resolve));
  t.after(() => busy.close());
  const busyPort = (busy.address() as { port: number }).port;
  e = errorOf(await w.op('PUT', '/server/port-for-new-access-keys', 409, { body: { port: busyPort } }));
  assert.equal(e.code, 'ConflictError');
  // A key on that port could never work either: refused the same way, nothing created.
  const keysBefore = (await h.call('GET', '/access-keys')).body;
  // (Not in Outline's spec, which documents only 201: the same ConflictError body as above.)
  for (const [m, path] of [
    ['POST', '/access-keys'],
    ['PUT', '/access-keys/on-busy-port'],
  ] as const) {
    const res = await h.call(m, path, { port: busyPort });
    assert.equal(res.statusCode, 409, res.body);
    e = errorOf(res);
    assert.deepEqual([e.code, e.field], ['ConflictError', 'port']);
  }
  assert.equal((await h.call('GET', '/access-keys')).body, keysBefore, 'no key was created');

  await w.op('PUT', '/server/access-key-data-limit', 204, { body: { limit: { bytes: 10000 } } });
  assert.deepEqual((JSON.parse((await w.op('GET', '/server', 200)).body) as Json).accessKeyDataLimit, {
    bytes: 10000,
  });
  e = errorOf(await w.op('PUT', '/server/access-key-data-limit', 400, { body: { limit: { bytes: -1 } } }));
  assert.equal(e.field, 'limit.bytes');
  await w.op('DELETE', '/server/access-key-data-limit', 204);
  assert.equal((JSON.parse((await w.op('GET', '/server', 200)).body) as Json).accessKeyDataLimit, undefined);

  await w.op('PUT', '/name', 204, { body: { name: 'My Server' } });
  assert.equal((JSON.parse((await w.op('GET', '/server', 200)).body) as Json).name, 'My Server');
  e = errorOf(await w.op('PUT', '/name', 400, { body: { name: 42 } }));
  assert.equal(e.field, 'name');

  // --- access keys ---
  const first = JSON.parse((await w.op('POST', '/access-keys', 201)).body) as Json;
  assert.equal(first.id, '0');
  assert.equal(first.method, 'chacha20-ietf-poly1305');
  assert.equal(first.port, 12345, 'new keys use portForNewAccessKeys');
  const u = decodeAccessUrl(first.accessUrl as string);
  assert.deepEqual(u, {
    method: 'chacha20-ietf-poly1305',
    password: first.password,
    host: '127.0.0.1',
    port: 12345,
  });

  const params = {
    method: 'aes-256-gcm',
    name: 'First',
    password: '8iu8V8EeoFVpwQvQeS9wiD',
    port: 23456,
    limit: { bytes: 10000 },
  };
  const second = JSON.parse((await w.op('POST', '/access-keys', 201, { body: params })).body) as Json;
  assert.equal(second.id, '1');
  assert.equal(second.name, 'First');
  assert.equal(second.password, '8iu8V8EeoFVpwQvQeS9wiD');
  assert.equal(second.port, 23456);
  assert.deepEqual(second.dataLimit, { bytes: 10000 });
  assert.deepEqual(decodeAccessUrl(second.accessUrl as string).method, 'aes-256-gcm');
  // 400 on POST /access-keys is what Outline's code does though the spec does not list it.
  let bad = await h.call('POST', '/access-keys', { method: 'rc4-md5' });
  assert.equal(bad.statusCode, 400);
  assert.equal(errorOf(bad).field, 'method');
  bad = await h.call('POST', '/access-keys', { port: 'x' });
  assert.equal(bad.statusCode, 400);
  assert.equal(errorOf(bad).field, 'port');
  bad = await h.call('POST', '/access-keys', '{"name": ');
  assert.equal(bad.statusCode, 400);
  assert.equal(errorOf(bad).field, 'body');

  const list = JSON.parse((await w.op('GET', '/access-keys', 200)).body) as { accessKeys: Json[] };
  assert.deepEqual(
    list.accessKeys.map((k) => k.id),
    ['0', '1'],
  );

  const custom = JSON.parse(
    (await w.op('PUT', '/access-keys/{id}', 201, { path: '/access-keys/my-identifier', body: params })).body,
  ) as Json;
  assert.equal(custom.id, 'my-identifier');
  const dup = await h.call('PUT', '/access-keys/my-identifier', params);
  assert.equal(dup.statusCode, 409);
  assert.equal(errorOf(dup).code, 'ConflictError');
  await w.op('PUT', '/access-keys/{id}', 201, { path: '/access-keys/no-body' });
  // Every method Outline's API accepts, aes-192-gcm included (the spec's own example uses it).
  const aes192 = JSON.parse(
    (
      await w.op('PUT', '/access-keys/{id}', 201, {
        path: '/access-keys/aes192',
        body: { method: 'aes-192-gcm', password: 'aes192-password' },
      })
    ).body,
  ) as Json;
  assert.equal(aes192.method, 'aes-192-gcm');
  assert.deepEqual(decodeAccessUrl(aes192.accessUrl as string), {
    method: 'aes-192-gcm',
    password: 'aes192-password',
    host: '127.0.0.1',
    port: 12345,
  });
  const viaPost = JSON.parse(
    (await w.op('POST', '/access-keys', 201, { body: { method: 'aes-192-gcm' } })).body,
  ) as Json;
  assert.equal(viaPost.method, 'aes-192-gcm');

  const got = JSON.parse(
    (await w.op('GET', '/access-keys/{id}', 200, { path: '/access-keys/1' })).body,
  ) as Json;
  assert.equal(got.name, 'First');
  e = errorOf(await w.op('GET', '/access-keys/{id}', 404, { path: '/access-keys/9' }));
  assert.equal(e.code, 'NotFoundError');

  await w.op('PUT', '/access-keys/{id}/name', 204, {
    path: '/access-keys/1/name',
    body: { name: 'New Key Name' },
  });
  assert.equal((JSON.parse((await h.call('GET', '/access-keys/1')).body) as Json).name, 'New Key Name');
  await w.op('PUT', '/access-keys/{id}/name', 404, { path: '/access-keys/9/name', body: { name: 'x' } });

  await w.op('PUT', '/access-keys/{id}/data-limit', 204, {
    path: '/access-keys/0/data-limit',
    body: { limit: { bytes: 5000 } },
  });
  assert.deepEqual((JSON.parse((await h.call('GET', '/access-keys/0')).body) as Json).dataLimit, {
    bytes: 5000,
  });
  e = errorOf(
    await w.op('PUT', '/access-keys/{id}/data-limit', 400, {
      path: '/access-keys/0/data-limit',
      body: { limit: { bytes: 1.5 } },
    }),
  );
  assert.equal(e.field, 'limit.bytes');
  e = errorOf(
    await w.op('PUT', '/access-keys/{id}/data-limit', 400, { path: '/access-keys/0/data-limit', body: {} }),
  );
  assert.equal(e.field, 'limit');
  await w.op('PUT', '/access-keys/{id}/data-limit', 404, {
    path: '/access-keys/9/data-limit',
    body: { limit: { bytes: 1 } },
  });
  await w.op('DELETE', '/access-keys/{id}/data-limit', 204, { path: '/access-keys/0/data-limit' });
  assert.equal((JSON.parse((await h.call('GET', '/access-keys/0')).body) as Json).dataLimit, undefined);
  await w.op('DELETE', '/access-keys/{id}/data-limit', 404, { path: '/access-keys/9/data-limit' });

  // --- metrics ---
  h.store.addBytes('0', 1000, 8000);
  h.store.addBytes('1', 5, 5);
  const transfer = JSON.parse((await w.op('GET', '/metrics/transfer', 200)).body) as {
    bytesTransferredByUserId: Record<string, number>;
  };
  assert.equal(transfer.bytesTransferredByUserId['0'], 9000);
  assert.equal(transfer.bytesTransferredByUserId['1'], 10);
  const sm = JSON.parse(
    (await w.op('GET', '/experimental/server/metrics', 200, { query: '?since=30d' })).body,
  ) as {
    server: { dataTransferred: { bytes: number } };
    accessKeys: { accessKeyId: number; dataTransferred: { bytes: number } }[];
  };
  assert.equal(sm.server.dataTransferred.bytes, 9010);
  assert.equal(sm.accessKeys.find((k) => k.accessKeyId === 0)?.dataTransferred.bytes, 9000);
  const badSince = await h.call('GET', '/experimental/server/metrics?since=forever');
  assert.equal(badSince.statusCode, 400);
  assert.equal(errorOf(badSince).field, 'since');

  assert.equal((JSON.parse((await w.op('GET', '/metrics/enabled', 200)).body) as Json).metricsEnabled, false);
  await w.op('PUT', '/metrics/enabled', 204, { body: { metricsEnabled: true } });
  assert.equal((JSON.parse((await w.op('GET', '/metrics/enabled', 200)).body) as Json).metricsEnabled, true);
  await w.op('PUT', '/metrics/enabled', 400, { body: { metricsEnabled: 'yes' } });

  // --- deprecated aliases ---
  await w.op('PUT', '/experimental/access-key-data-limit', 204, { body: { limit: { bytes: 777 } } });
  assert.deepEqual((JSON.parse((await h.call('GET', '/server')).body) as Json).accessKeyDataLimit, {
    bytes: 777,
  });
  await w.op('PUT', '/experimental/access-key-data-limit', 400, { body: { limit: {} } });
  await w.op('DELETE', '/experimental/access-key-data-limit', 204);

  // --- delete ---
  await w.op('DELETE', '/access-keys/{id}', 204, { path: '/access-keys/1' });
  e = errorOf(await w.op('DELETE', '/access-keys/{id}', 404, { path: '/access-keys/1' }));
  assert.equal(e.code, 'NotFoundError');
  assert.ok(h.control.closed.includes('1'), 'deleting a key closes its connections');
  assert.ok(!h.control.ids().includes('1'));

  const missing = ALL_OPS.filter((op) => !w.seen.has(op));
  assert.deepEqual(missing, [], 'every operation of the spec was exercised');
  t.diagnostic(
    `conformance: ${w.seen.size}/${ALL_OPS.length} operations, ${w.checked} JSON bodies validated against the spec`,
  );
});

test('wrong secret prefix is indistinguishable from an unknown path', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const norm = (r: LightMyRequestResponse) => {
    const headers = { ...r.headers };
    delete headers.date;
    return { status: r.statusCode, headers, body: r.body };
  };
  const unknownUnderPrefix = norm(await h.app.inject({ method: 'GET', url: `${h.prefix}/no-such-path` }));
  const wrongPrefix = [
    await h.app.inject({ method: 'GET', url: '/server' }),
    await h.app.inject({ method: 'GET', url: '/wrongprefix/server' }),
    await h.app.inject({ method: 'GET', url: `${h.prefix.slice(0, -1)}/server` }), // one character short
    await h.app.inject({ method: 'GET', url: `${h.prefix}x/server` }),
    await h.app.inject({ method: 'GET', url: '/' }),
    await h.app.inject({ method: 'GET', url: '/openapi.json' }),
    await h.app.inject({ method: 'DELETE', url: '/access-keys/0' }),
    await h.app.inject({
      method: 'POST',
      url: '/x/access-keys',
      payload: '{not json',
      headers: { 'content-type': 'application/json' },
    }),
    await h.app.inject({
      method: 'PUT',
      url: '/x/name',
      payload: 'x',
      headers: { 'content-type': 'text/weird' },
    }),
    await h.app.inject({ method: 'GET', url: '/access/not-a-token' }),
  ];
  for (const r of wrongPrefix) assert.deepEqual(norm(r), unknownUnderPrefix);
  assert.equal(unknownUnderPrefix.status, 404);
  // And nothing was created by the unauthenticated POST.
  assert.equal(await h.store.countKeys(), 0);
});

test('OpenAPI document is served under the prefix and covers every Outline path and the extensions', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const res = await h.call('GET', '/openapi.json');
  assert.equal(res.statusCode, 200);
  const doc = JSON.parse(res.body) as { openapi: string; paths: Record<string, Record<string, unknown>> };
  assert.match(doc.openapi, /^3\./);
  for (const op of ALL_OPS) {
    const [method, path] = op.split(' ') as [string, string];
    assert.ok(doc.paths[path]?.[method.toLowerCase()], `OpenAPI document has ${op}`);
  }
  for (const p of [
    '/access-keys/{id}/expiry',
    '/access-keys/{id}/enabled',
    '/access-keys/bulk',
    '/access-keys/{id}/usage',
  ]) {
    assert.ok(doc.paths[p], `OpenAPI document has extension ${p}`);
  }
});
