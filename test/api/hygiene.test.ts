// API errors always in our format ({code, message[, field]}) with the documented status codes,
// for the bodies and paths a careless or hostile caller sends (issue 14, item 6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { buildDynamicApp } from '../../src/api/app.js';
import { KeyEnforcer, openStore, parseStoreLocation } from '../../src/store/index.js';
import { harness, RecordingControl, tempDir } from './helpers.js';

function body(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

test('text/plain and other media types get 415 in our format; JSON and forms are read', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const before = await h.store.countKeys();
  for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/xml']) {
    const r = await h.app.inject({
      method: 'POST',
      url: `${h.prefix}/access-keys`,
      payload: '{"name":"x"}',
      headers: { 'content-type': type },
    });
    assert.equal(r.statusCode, 415, `${type}: ${r.body}`);
    assert.deepEqual(body(r.body), {
      code: 'UnsupportedMediaTypeError',
      message: 'Send the body as application/json',
    });
  }
  assert.equal(await h.store.countKeys(), before, 'no key was created');
  // Control: the same body as JSON creates a named key.
  const ok = await h.app.inject({
    method: 'POST',
    url: `${h.prefix}/access-keys`,
    payload: '{"name":"x"}',
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(ok.statusCode, 201, ok.body);
  assert.equal(body(ok.body).name, 'x');
});

test('a JSON body sent as a form is refused (415), not read as one nameless field', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const before = await h.store.countKeys();
  for (const payload of ['{"name":"Alice"}', '  [1,2]']) {
    const r = await h.app.inject({
      method: 'POST',
      url: `${h.prefix}/access-keys`,
      payload,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(r.statusCode, 415, r.body);
    assert.equal(body(r.body).code, 'UnsupportedMediaTypeError');
  }
  assert.equal(await h.store.countKeys(), before, 'no nameless key was created');
  // Control: a real form still works (Outline Manager renames keys with one).
  const created = body((await h.call('POST', '/access-keys', { name: 'a' })).body);
  const renamed = await h.app.inject({
    method: 'PUT',
    url: `${h.prefix}/access-keys/${String(created.id)}/name`,
    payload: 'name=Bob',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(renamed.statusCode, 204, renamed.body);
  assert.equal((await h.store.getKey(String(created.id)))?.name, 'Bob');
});

test('an over-long id gets our 400/404, never the router 414 that echoes the path', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const long = 'a'.repeat(300);
  for (const [method, path] of [
    ['GET', `/access-keys/${long}`],
    ['PUT', `/access-keys/${long}`],
    ['DELETE', `/access-keys/${long}`],
  ] as const) {
    const r = await h.app.inject({ method, url: `${h.prefix}${path}` });
    assert.equal(r.statusCode, 400, `${method} ${r.body}`);
    assert.deepEqual(body(r.body), {
      code: 'InvalidArgumentError',
      message: 'Invalid "id": longer than 128 characters',
      field: 'id',
    });
    assert.ok(!r.body.includes(h.prefix) && !r.body.includes(long), 'the path is not echoed');
  }
  // Ids of 101..128 characters (above the router's default limit) are ids like any other.
  const mid = 'b'.repeat(120);
  assert.equal(
    (await h.app.inject({ method: 'GET', url: `${h.prefix}/access-keys/${mid}` })).statusCode,
    404,
  );
  assert.equal((await h.call('PUT', `/access-keys/${mid}`, {})).statusCode, 201);
  // Without the prefix (or on a dynamic-key path) the same request is the one 404 for everything.
  for (const url of [`/wrong/access-keys/${long}`, `/access/${long}`]) {
    const r = await h.app.inject({ method: 'GET', url });
    assert.equal(r.statusCode, 404, r.body);
    assert.deepEqual(body(r.body), { code: 'ResourceNotFound', message: 'Not found' });
  }
  // A bad %-escape in a parameter: our format too.
  const bad = await h.app.inject({ method: 'GET', url: `${h.prefix}/access-keys/%E0%A4%A` });
  assert.equal(bad.statusCode, 400, bad.body);
  assert.equal(body(bad.body).code, 'InvalidArgumentError');
});

test('the dynamic-key listener: an over-long token or a bad %-escape is the one 404, never the router 414/400 that echoes the path', async (t) => {
  const store = await openStore(parseStoreLocation(undefined, tempDir(t)));
  const control = new RecordingControl();
  const dyn = await buildDynamicApp({ store, control, enforcer: new KeyEnforcer({ store, control }) });
  t.after(async () => {
    await dyn.close();
    await store.close();
  });
  await dyn.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(dyn.server.address() as AddressInfo).port}`;
  const long = 'a'.repeat(300);
  for (const path of [
    `/access/${long}`,
    `/access/${long}/sip008`,
    `/sub/${long}`,
    '/access/%E0%A4%A',
    '/sub/x/%zz',
    '/access/unknown',
  ]) {
    const r = await fetch(base + path);
    const text = await r.text();
    assert.equal(r.status, 404, `${path}: ${text}`);
    assert.deepEqual(body(text), { code: 'ResourceNotFound', message: 'Not found' }, path);
  }
});
