// The per-key Outline `prefix` setting (issue 13 item 3) through the API, a real SQLite store and
// the documents that carry it: dynamic keys (ssconf://), subscriptions (Outline JSON) and the
// static ss:// access URL. auto: fresh per fetch, none in the static URL; off: none anywhere;
// pinned: those bytes everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { harness, tempDir } from './helpers.js';

type Json = Record<string, unknown>;
const json = (body: string): Json => JSON.parse(body) as Json;
const hexOf = (s: string): string => Buffer.from(s, 'latin1').toString('hex');

test('prefix setting: create, change and refuse through the API; dynamic keys, subscriptions and ss:// honour it', async (t) => {
  const dir = tempDir(t);
  const h = await harness(dir);
  let closed = false;
  t.after(() => (closed ? undefined : h.close()));
  await h.store.updateSettings({ apiPort: 8443 });
  const dynamic = async (key: Json): Promise<Json> => {
    const token = /\/access\/([A-Za-z0-9_-]+)$/.exec(String(key.dynamicAccessUrl))![1]!;
    const res = await h.app.inject({ method: 'GET', url: `/access/${token}` });
    assert.equal(res.statusCode, 200);
    return json(res.body);
  };
  const outlineSub = async (key: Json): Promise<Json> => {
    const path = new URL(String(key.subscriptionUrl)).pathname;
    const res = await h.app.inject({ method: 'GET', url: `${path}/outline-json` });
    assert.equal(res.statusCode, 200, res.body);
    return json(res.body);
  };

  // auto (the default): a prefix on every fetch, different across fetches; the static URL has none.
  const auto = json((await h.call('POST', '/access-keys', {})).body);
  assert.equal(auto.prefix, 'auto');
  const draws = new Set<string>();
  for (let i = 0; i < 8; i++) draws.add(String((await dynamic(auto)).prefix));
  assert.ok(draws.size > 1, 'auto re-draws per fetch');
  assert.equal(parseSsUrl(String(auto.accessUrl)).prefix, undefined);

  // off: none anywhere.
  const off = json((await h.call('POST', '/access-keys', { prefix: 'off' })).body);
  assert.equal(off.prefix, 'off');
  assert.equal((await dynamic(off)).prefix, undefined);
  assert.equal((await outlineSub(off)).prefix, undefined);
  assert.equal(parseSsUrl(String(off.accessUrl)).prefix, undefined);

  // pinned (Outline's URL form in, hex stored and shown): the same bytes in every document.
  const pinned = json(
    (await h.call('PUT', '/access-keys/pin', { method: 'aes-256-gcm', prefix: '%16%03%01%00%C2%A8%01%01' }))
      .body,
  );
  assert.equal(pinned.prefix, '16030100a80101');
  for (let i = 0; i < 3; i++) assert.equal(hexOf(String((await dynamic(pinned)).prefix)), '16030100a80101');
  assert.equal(hexOf(String((await outlineSub(pinned)).prefix)), '16030100a80101');
  const url = parseSsUrl(String(pinned.accessUrl));
  assert.equal(Buffer.from(url.prefix!).toString('hex'), '16030100a80101');
  assert.match(String(pinned.accessUrl), /[?&]outline=1/);

  // Change it: PUT /access-keys/{id}/prefix (hex in), then back to off.
  assert.equal(
    (await h.call('PUT', `/access-keys/${String(auto.id)}/prefix`, { prefix: '504f535420' })).statusCode,
    204,
  );
  const now = json((await h.call('GET', `/access-keys/${String(auto.id)}`)).body);
  assert.equal(now.prefix, '504f535420');
  assert.equal(String((await dynamic(now)).prefix), 'POST ');
  assert.equal(Buffer.from(parseSsUrl(String(now.accessUrl)).prefix!).toString(), 'POST ');
  assert.equal(
    (await h.call('PUT', `/access-keys/${String(auto.id)}/prefix`, { prefix: 'off' })).statusCode,
    204,
  );
  assert.equal((await dynamic(auto)).prefix, undefined);

  // Bad values: one 400 in our error format naming the field; nothing changed or created.
  const before = (await h.store.listKeys()).length;
  const refused = async (path: string, body: Json, method: 'POST' | 'PUT' = 'POST', re?: RegExp) => {
    const res = await h.call(method, path, body);
    assert.equal(res.statusCode, 400, `${path} ${JSON.stringify(body)}: ${res.body}`);
    const e = json(res.body);
    assert.equal(e.field, 'prefix');
    assert.equal(e.code, 'InvalidArgumentError');
    if (re) assert.match(String(e.message), re);
  };
  await refused('/access-keys', { prefix: '' }, 'POST', /empty/);
  await refused('/access-keys', { prefix: '%ZZ' }, 'POST', /percent-encoding/);
  await refused('/access-keys', { prefix: '\u20ac' }, 'POST', /U\+00FF/);
  await refused('/access-keys', { prefix: 'ab'.repeat(33) }, 'POST', /33 bytes, longer than any salt/);
  await refused('/access-keys', { prefix: 'ab'.repeat(17) }, 'POST', /at most 16/);
  // Fits the salt but would leave fewer than 16 random bytes:
  await refused('/access-keys', { method: 'aes-192-gcm', prefix: 'GET /index' }, 'POST', /at most 8/);
  await refused('/access-keys', { method: 'aes-128-gcm', prefix: 'POST ' }, 'POST', /take no prefix/);
  await refused('/access-keys', { method: '2022-blake3-aes-256-gcm', prefix: 'POST ' }, 'POST', /no prefix/);
  await refused('/access-keys/bulk', { count: 2, prefix: '%' });
  await refused(`/access-keys/${String(off.id)}/prefix`, { prefix: '' }, 'PUT');
  assert.equal((await h.store.listKeys()).length, before);
  assert.equal(json((await h.call('GET', `/access-keys/${String(off.id)}`)).body).prefix, 'off');
  assert.equal((await h.call('PUT', '/access-keys/nope/prefix', { prefix: 'off' })).statusCode, 404);
  const wrongType = await h.call('PUT', `/access-keys/${String(off.id)}/prefix`, { prefix: 5 });
  assert.equal(wrongType.statusCode, 400);

  // aes-192-gcm takes up to 8 pinned bytes; 2022 keys show no prefix field.
  const k192 = json(
    (await h.call('POST', '/access-keys', { method: 'aes-192-gcm', prefix: 'GET /ind' })).body,
  );
  assert.equal(k192.prefix, '474554202f696e64');
  const k2022 = json(
    (await h.call('POST', '/access-keys', { method: '2022-blake3-aes-256-gcm', prefix: 'auto' })).body,
  );
  assert.equal(k2022.prefix, undefined);
  const bulk = json((await h.call('POST', '/access-keys/bulk', { count: 2, prefix: 'off' })).body);
  assert.deepEqual(
    (bulk.accessKeys as Json[]).map((k) => k.prefix),
    ['off', 'off'],
  );

  // Stored: a fresh store on the same SQLite file reads the settings back.
  await h.close();
  closed = true;
  const store = await openStore(parseStoreLocation(undefined, dir));
  try {
    assert.equal((await store.getKey('pin'))?.prefix, '16030100a80101');
    assert.equal((await store.getKey(String(off.id)))?.prefix, 'off');
    assert.equal((await store.getKey(String(auto.id)))?.prefix, 'off');
  } finally {
    await store.close();
  }
});
