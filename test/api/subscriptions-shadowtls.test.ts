// Subscriptions of a managed server with a ShadowTLS v3 port: each format that an app reading
// ShadowTLS takes gets an entry for it (mihomo's `plugin: shadow-tls` with plugin-opts host,
// password, version 3; sing-box's `shadowtls` outbound under the shadowsocks one's `detour`; the
// ss:// link and SIP008 with plugin=shadow-tls;host;password;version=3, which ladder client's
// parser reads), checked with the formats' own rules (sub-formats.ts); Outline's and Xray's
// formats, which have no ShadowTLS, keep the raw entry; and none of it without the port.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { ShadowTlsEndpoint } from '../../src/api/index.js';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { parseShadowTlsPluginOptions } from '../../src/protocol/sip002/shadowtls-opts.js';
import { keyShadowTlsPassword } from '../../src/protocol/sip002/shadowtls.js';
import { keySubscription } from './helpers.js';
import { checkClash, checkSingBox, checkSip008 } from './sub-formats.js';

type Json = Record<string, unknown>;
const STLS: ShadowTlsEndpoint = { port: 8443, sni: 'www.example.com', udp: true };

async function subscription(
  t: TestContext,
  stls: ShadowTlsEndpoint | undefined,
): Promise<(f: string) => Promise<string>> {
  return (await keySubscription(t, { shadowTls: () => stls })).get;
}

test('a key’s own ShadowTLS password: a known answer, and another key’s differs', () => {
  const key = { method: 'chacha20-ietf-poly1305', secret: 'correct horse battery staple' };
  // HMAC-SHA256('chacha20-ietf-poly1305:correct horse battery staple', 'ladder shadowtls password v1')[0..16)
  assert.equal(keyShadowTlsPassword(key), 'Zkrr1UbpnAsOH8ZMvk68RQ');
  assert.notEqual(keyShadowTlsPassword({ ...key, secret: 'another' }), keyShadowTlsPassword(key));
});

test('a ShadowTLS port: mihomo, sing-box, ss:// links and SIP008 name it with the key’s own password; Outline and Xray keep raw', async (t) => {
  const made = await keySubscription(t, { shadowTls: () => STLS });
  const get = made.get;
  const pw = keyShadowTlsPassword(made.key);
  const clash = checkClash(await get('clash'));
  const c = clash.find((p) => p.plugin === 'shadow-tls')!;
  assert.ok(c, 'a shadow-tls proxy');
  assert.deepEqual([c.server, c.port, c['client-fingerprint']], ['example.org', 8443, 'chrome']);
  assert.deepEqual(c['plugin-opts'], { host: 'www.example.com', password: pw, version: 3 });
  assert.deepEqual([c['udp-over-tcp'], c['udp-over-tcp-version']], [true, 2]);
  assert.ok(
    clash.some((p) => p.plugin === undefined && p.port === 4444),
    'the raw proxy stays',
  );

  const singDoc = JSON.parse(await get('sing-box')) as { outbounds: Json[] };
  const ss = checkSingBox(JSON.stringify(singDoc));
  const viaStls = ss.find((o) => o.detour !== undefined)!;
  const st = singDoc.outbounds.find((o) => o.tag === viaStls.detour)!;
  assert.deepEqual(
    [st.type, st.server, st.server_port, st.version, st.password],
    ['shadowtls', 'example.org', 8443, 3, pw],
  );
  assert.deepEqual(st.tls, {
    enabled: true,
    server_name: 'www.example.com',
    utls: { enabled: true, fingerprint: 'chrome' },
  });
  const selector = singDoc.outbounds.find((o) => o.type === 'selector')!;
  assert.ok((selector.outbounds as string[]).includes(String(viaStls.tag)));
  assert.ok(
    !(selector.outbounds as string[]).includes(String(st.tag)),
    'the selector lists the shadowsocks side',
  );

  const links = Buffer.from(await get('base64'), 'base64')
    .toString()
    .split('\n');
  const stlsLink = links.find((l) => l.includes('plugin=shadow-tls'))!;
  const key = parseSsUrl(stlsLink);
  assert.equal(key.port, 8443);
  assert.deepEqual(
    { sni: 'www.example.com', password: pw },
    (({ sni, password }) => ({ sni, password }))(parseShadowTlsPluginOptions(key.pluginOptions)),
  );

  const sip008 = checkSip008(await get('sip008'));
  assert.ok(sip008.servers.some((s) => s.plugin === 'shadow-tls' && s.server_port === 8443));

  const outline = JSON.parse(await get('outline-json')) as Json;
  assert.equal(outline.server_port, 4444, 'Outline (no ShadowTLS) gets the raw port');
  const xray = JSON.parse(await get('v2ray-json')) as Json[];
  assert.ok(!JSON.stringify(xray).includes('8443'), 'Xray (no ShadowTLS) lists no ShadowTLS entry');
});

test('no ShadowTLS port: no shadow-tls entry anywhere', async (t) => {
  const get = await subscription(t, undefined);
  for (const f of ['clash', 'sing-box', 'sip008']) assert.ok(!/shadow-?tls/i.test(await get(f)), f);
  assert.ok(
    !Buffer.from(await get('base64'), 'base64')
      .toString()
      .includes('shadow-tls'),
  );
});
