import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { accessUrl, buildApi } from '../../src/api/index.js';
import { LocalKeys } from '../../src/cli/commands/keys.js';
import { endpointFromKey } from '../../src/client/index.js';
import { parsePsk2022, getAead2022Method } from '../../src/protocol/shadowsocks/methods2022.js';
import type { KeyRecord } from '../../src/store/index.js';
import { harness, tempDir, RecordingControl } from './helpers.js';
import { Walker, type Json } from './outline-spec.js';

const AES128 = '2022-blake3-aes-128-gcm';
const AES256 = '2022-blake3-aes-256-gcm';
const CHACHA = '2022-blake3-chacha20-poly1305';
const psk = (n: number, fill: number) => Buffer.alloc(n, fill).toString('base64');

function record(method: string, secret: string, port: number, name = ''): KeyRecord {
  return {
    id: '1',
    name,
    method,
    secret,
    port,
    dataLimitBytes: null,
    limitPeriod: 'rolling30d',
    expiresAt: null,
    enabled: true,
    accessToken: 'tok',
    createdAt: 0,
    lastSeenAt: null,
  };
}

test('2022 access URLs: SIP002 plain userinfo, percent-encoded, ":" of iPSK:uPSK encoded, no outline=1', () => {
  // SIP002's own example, as a single-user key.
  const sip002 = record(AES256, 'YctPZ6U7xPPcU+gp3u+0tx/tRizJN9K8y+uKlW2qjlI=', 8888);
  assert.equal(
    accessUrl(sip002, { hostnameForAccessKeys: '192.168.100.1' }, 'Example3'),
    'ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D@192.168.100.1:8888#Example3',
  );
  const multi = record(AES128, `${psk(16, 0)}:${psk(16, 0x10)}`, 443);
  const url = accessUrl(multi, { hostnameForAccessKeys: '2001:db8::1' }, 'alice');
  assert.equal(
    url,
    'ss://2022-blake3-aes-128-gcm:AAAAAAAAAAAAAAAAAAAAAA%3D%3D%3AEBAQEBAQEBAQEBAQEBAQEA%3D%3D@[2001:db8::1]:443#alice',
  );
  // Our client reads it back, identity PSK included.
  const ep = endpointFromKey(url, 'local');
  assert.equal(ep.method, AES128);
  assert.equal(ep.password, multi.secret);
  const parsed = parsePsk2022(getAead2022Method(AES128), ep.password);
  assert.equal(parsed.identityKeys.length, 1);
  // SIP004 keys keep Outline's form exactly.
  assert.equal(
    accessUrl(record('aes-256-gcm', 'pw', 4444), { hostnameForAccessKeys: 'example.org' }),
    `ss://${Buffer.from('aes-256-gcm:pw').toString('base64url')}@example.org:4444/?outline=1`,
  );
});

test('API: 2022 keys created, listed, fetched, renamed, deleted; multi-user by default with one identity PSK per method; spec-conformant', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const w = new Walker(h);
  const body = async (p: Promise<{ body: string }>) => JSON.parse((await p).body) as Json;

  const a = await body(w.op('POST', '/access-keys', 201, { body: { method: AES128, name: 'a' } }));
  const b = await body(w.op('POST', '/access-keys', 201, { body: { method: AES128, name: 'b' } }));
  const c = await body(w.op('POST', '/access-keys', 201, { body: { method: AES256 } }));
  for (const k of [a, b]) {
    assert.equal(k.method, AES128);
    assert.equal(k.multiUser, true);
    const parts = String(k.password).split(':');
    assert.equal(parts.length, 2, 'password is iPSK:uPSK');
    for (const p of parts) assert.equal(Buffer.from(p, 'base64').length, 16);
    assert.match(String(k.accessUrl), /^ss:\/\/2022-blake3-aes-128-gcm:[A-Za-z0-9%]+@example\.org:4444$/);
    assert.equal(endpointFromKey(String(k.accessUrl), 'local').password, k.password);
  }
  const ipsk = (k: Json) => String(k.password).split(':')[0];
  assert.equal(ipsk(a), ipsk(b), 'one identity PSK for every key of a method');
  assert.notEqual(String(a.password).split(':')[1], String(b.password).split(':')[1], 'own user PSKs');
  assert.equal(Buffer.from(ipsk(c)!, 'base64').length, 32);
  assert.equal(ipsk(c), await h.store.identityKey(AES256, () => 'unused'), 'stored in the settings');

  // Single-user: asked for, and always for chacha20 (no identity headers).
  const single = await body(
    w.op('POST', '/access-keys', 201, { body: { method: AES256, multiUser: false } }),
  );
  assert.equal(single.multiUser, false);
  assert.equal(Buffer.from(String(single.password), 'base64').length, 32);
  const ch = await body(w.op('POST', '/access-keys', 201, { body: { method: CHACHA } }));
  assert.equal(ch.multiUser, false);
  assert.ok(!String(ch.password).includes(':'));

  // A caller's PSK: a bare uPSK joins the server's group; a whole iPSK:uPSK is kept as given.
  const mine = psk(16, 7);
  const given = await body(
    w.op('PUT', '/access-keys/{id}', 201, {
      path: '/access-keys/mine',
      body: { method: AES128, password: mine },
    }),
  );
  assert.equal(given.password, `${ipsk(a)}:${mine}`);
  const whole = `${psk(16, 1)}:${psk(16, 2)}`;
  const kept = await body(w.op('POST', '/access-keys', 201, { body: { method: AES128, password: whole } }));
  assert.equal(kept.password, whole);

  // Bad requests: 400 naming the field, never echoing the secret.
  for (const [req, field] of [
    [{ method: AES256, password: 'not-a-psk' }, 'password'],
    [{ method: AES256, password: psk(16, 3) }, 'password'],
    [{ method: AES256, multiUser: false, password: whole }, 'password'],
    [{ method: CHACHA, multiUser: true }, 'multiUser'],
    [{ method: 'aes-256-gcm', multiUser: true }, 'multiUser'],
    [{ method: '2022-blake3-chacha8-poly1305' }, 'method'],
  ] as const) {
    const r = await h.call('POST', '/access-keys', req);
    assert.equal(r.statusCode, 400, JSON.stringify(req));
    const e = JSON.parse(r.body) as Json;
    assert.equal(e.field, field);
    if ('password' in req) assert.ok(!r.body.includes(req.password), 'secret not echoed');
  }

  // The data plane gets exactly the client's password (iPSK:uPSK), so one identity group per method.
  const runtime = new Map(h.control.keys.map((k) => [k.id, k]));
  assert.equal(runtime.get(String(a.id))?.secret, a.password);
  assert.equal(runtime.get(String(single.id))?.secret, single.password);

  // List, get, rename, delete through the spec's operations.
  const list = await body(w.op('GET', '/access-keys', 200));
  assert.equal((list.accessKeys as Json[]).filter((k) => String(k.method).startsWith('2022-')).length, 7);
  assert.deepEqual(await body(w.op('GET', '/access-keys/{id}', 200, { path: `/access-keys/${a.id}` })), a);
  await w.op('PUT', '/access-keys/{id}/name', 204, {
    path: `/access-keys/${a.id}/name`,
    body: { name: 'renamed' },
  });
  assert.equal((await body(h.call('GET', `/access-keys/${a.id}`))).name, 'renamed');
  await w.op('DELETE', '/access-keys/{id}', 204, { path: `/access-keys/${a.id}` });
  await w.op('GET', '/access-keys/{id}', 404, { path: `/access-keys/${a.id}` });
  assert.ok(!h.control.ids().includes(String(a.id)));
  assert.ok(h.control.ids().includes(String(b.id)));

  // Dynamic keys (Outline JSON and SIP008) carry method and the whole password.
  const token = (await h.store.getKey(String(b.id)))!.accessToken;
  const dyn = JSON.parse((await h.app.inject({ url: `/access/${token}` })).body) as Json;
  assert.deepEqual(dyn, { server: 'example.org', server_port: 4444, method: AES128, password: b.password });
  const sip008 = JSON.parse((await h.app.inject({ url: `/access/${token}/sip008` })).body) as {
    servers: Json[];
  };
  assert.equal(sip008.servers[0]?.method, AES128);
  assert.equal(sip008.servers[0]?.password, b.password);

  // Bulk creation (Ladder extension) makes members of the same group.
  const bulk = await body(h.call('POST', '/access-keys/bulk', { count: 3, method: AES128 }));
  for (const k of bulk.accessKeys as Json[]) assert.equal(ipsk(k), ipsk(b));
});

test('the identity PSK survives a restart; `ladder keys add --method 2022-…` on the store makes group members too', async (t) => {
  const dir = tempDir(t);
  const h = await harness(dir);
  const first = JSON.parse((await h.call('POST', '/access-keys', { method: AES256 })).body) as Json;
  await h.close();
  const local = await LocalKeys.open(dir, undefined);
  try {
    const [k] = await local.add({ method: AES256, name: 'cli' });
    assert.equal(k!.method, AES256);
    assert.equal(k!.multiUser, true);
    assert.equal(String(k!.password).split(':')[0], String(first.password).split(':')[0]);
    assert.match(k!.accessUrl, /^ss:\/\/2022-blake3-aes-256-gcm:/);
    const [s] = await local.add({ method: 'aes-128-gcm' });
    assert.equal(s!.multiUser, undefined, 'SIP004 keys have no multiUser field');
  } finally {
    await local.close();
  }
});

test('GET /server: version is ours (after the Outline level), metricsEnabled follows the Prometheus endpoint, openapi is linked', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const server = JSON.parse((await h.call('GET', '/server')).body) as Json;
  assert.equal(server.version, `1.12.0+ladder.${pkg.version}`);
  assert.equal(server.metricsEnabled, false, 'nothing served, nothing chosen');
  assert.equal(server.openapi, `${h.prefix}/openapi.json`);
  const doc = await h.app.inject({ url: String(server.openapi) });
  assert.equal(doc.statusCode, 200);
  assert.equal((JSON.parse(doc.body) as { openapi: string }).openapi, '3.0.3');

  let served = true;
  const app = await buildApi({
    store: h.store,
    control: new RecordingControl(),
    metricsServed: () => served,
  });
  t.after(() => app.close());
  const get = async (path: string) =>
    JSON.parse((await app.inject({ url: `${h.prefix}${path}` })).body) as Json;
  assert.equal((await get('/server')).metricsEnabled, true);
  assert.equal((await get('/metrics/enabled')).metricsEnabled, true);
  served = false;
  assert.equal((await get('/server')).metricsEnabled, false);
});
