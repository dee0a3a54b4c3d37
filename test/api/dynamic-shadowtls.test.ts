// Dynamic keys (GET /access/{token}, /access/{token}/sip008) of a managed server with a ShadowTLS
// v3 port, on a real SQLite store: the key's JSON has its shadowtlsAccessUrl; SIP008 lists the raw server first (its id unchanged), then the
// ShadowTLS port with plugin shadow-tls and the key's own password, which ladder client's parser
// reads back; Outline's JSON (no room for ShadowTLS) stays the raw server; a 2022 key's Outline
// JSON is Outline's error object for Outline's apps (they have no 2022 cipher) and the JSON for
// everyone else (ladder client, probe).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { buildApi, type ShadowTlsEndpoint } from '../../src/api/index.js';
import { parseDynamicKeyBody } from '../../src/client/dynamic-key.js';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { keyShadowTlsPassword } from '../../src/protocol/sip002/shadowtls.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { RecordingControl, tempDir } from './helpers.js';

type Json = Record<string, unknown>;
const STLS: ShadowTlsEndpoint = { port: 8443, sni: 'www.example.com', udp: true };

async function server(t: TestContext, stls: ShadowTlsEndpoint | undefined) {
  const store = await openStore(parseStoreLocation(undefined, tempDir(t)), {
    defaults: { hostname: 'example.org', port: 4444 },
  });
  await store.updateSettings({ apiPort: 8080 });
  const app = await buildApi({ store, control: new RecordingControl(), shadowTls: () => stls });
  await app.ready();
  t.after(async () => {
    await app.close();
    await store.close();
  });
  const prefix = `/${(await store.getSettings()).apiPrefix}`;
  return async (body: Json) => {
    const r = await app.inject({ method: 'POST', url: `${prefix}/access-keys`, payload: body });
    assert.equal(r.statusCode, 201, r.body);
    const made = JSON.parse(r.body) as Json;
    const path = new URL(String(made.dynamicAccessUrl).replace(/^ssconf:/, 'https:')).pathname;
    const get = async (suffix: string, ua?: string): Promise<string> => {
      const res = await app.inject({ url: `${path}${suffix}`, headers: ua ? { 'user-agent': ua } : {} });
      assert.equal(res.statusCode, 200, res.body);
      return res.body;
    };
    return { key: { method: String(made.method), secret: String(made.password) }, get, made };
  };
}

test('dynamic SIP008 carries the ShadowTLS port after the raw server; Outline JSON stays raw', async (t) => {
  const make = await server(t, STLS);
  const { key, get, made } = await make({ name: 'Alice' });
  // The API's key JSON: the key through the ShadowTLS port, with its own password.
  const viaStls = parseSsUrl(String(made.shadowtlsAccessUrl));
  assert.deepEqual([viaStls.host, viaStls.port, viaStls.plugin], ['example.org', 8443, 'shadow-tls']);
  assert.equal(viaStls.pluginOptions, `host=www.example.com;password=${keyShadowTlsPassword(key)};version=3`);
  const doc = JSON.parse(await get('/sip008')) as { servers: Json[] };
  assert.deepEqual(
    doc.servers.map((s) => [s.server_port, s.plugin ?? null]),
    [
      [4444, null],
      [8443, 'shadow-tls'],
    ],
  );
  const st = doc.servers[1]!;
  assert.equal(st.plugin_opts, `host=www.example.com;password=${keyShadowTlsPassword(key)};version=3`);
  assert.equal(st.password, key.secret);
  assert.notEqual(st.id, doc.servers[0]!.id);
  // What ladder client makes of it: two endpoints, the second through ShadowTLS with the key's password.
  const parsed = parseDynamicKeyBody(JSON.stringify(doc));
  assert.equal(parsed.kind, 'endpoints');
  const eps = (
    parsed as { endpoints: { port: number; shadowTls?: { port: number; sni: string; password: string } }[] }
  ).endpoints;
  assert.equal(eps[0]!.shadowTls, undefined);
  assert.deepEqual(
    eps[1]!.shadowTls && [eps[1]!.shadowTls.port, eps[1]!.shadowTls.sni, eps[1]!.shadowTls.password],
    [8443, 'www.example.com', keyShadowTlsPassword(key)],
  );
  // The same with ?format=sip008; Outline's JSON: the raw server, its own fields only.
  assert.deepEqual(JSON.parse(await get('?format=sip008')), doc);
  const outline = JSON.parse(await get('', 'Go-http-client/1.1')) as Json;
  assert.deepEqual(
    Object.keys(outline).sort(),
    ['method', 'password', 'prefix', 'server', 'server_port'].filter((k) => k in outline).sort(),
  );
  assert.equal(outline.server_port, 4444);
  assert.ok(!JSON.stringify(outline).includes('shadow'));
});

test('no ShadowTLS port: dynamic SIP008 as before (the raw server alone)', async (t) => {
  const { get, made } = await (await server(t, undefined))({ name: 'Bob' });
  assert.equal(made.shadowtlsAccessUrl, undefined);
  const doc = JSON.parse(await get('/sip008')) as { servers: Json[] };
  assert.deepEqual(
    doc.servers.map((s) => [s.server_port, s.plugin ?? null]),
    [[4444, null]],
  );
});

test('a 2022 key’s dynamic key: Outline’s apps get the error they show, others the JSON', async (t) => {
  const make = await server(t, undefined);
  const { key, get } = await make({ name: 'Carol', method: '2022-blake3-aes-128-gcm' });
  for (const ua of ['Go-http-client/1.1', 'Outline/1.15', 'SSconf']) {
    const r = JSON.parse(await get('', ua)) as { error?: { message: string; details?: string } };
    assert.equal(r.error?.message, 'Outline apps cannot use this key', ua);
    assert.match(r.error?.details ?? '', /Shadowsocks-2022/);
    assert.ok(!JSON.stringify(r).includes(key.secret), 'no secret in the refusal');
  }
  for (const ua of ['ladder', undefined]) {
    const r = JSON.parse(await get('', ua)) as Json;
    assert.deepEqual([r.method, r.password], [key.method, key.secret], String(ua));
  }
  // A SIP004 key is served to Outline's apps as before.
  const sip004 = await make({ name: 'Dan' });
  const r = JSON.parse(await sip004.get('', 'Go-http-client/1.1')) as Json;
  assert.equal(r.password, sip004.key.secret);
});
