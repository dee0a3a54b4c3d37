// Subscriptions (/sub/{token}): each format checked against its consumers' rules (sub-formats.ts),
// the User-Agent/Accept matrix, the headers apps read, refused keys in each format's own way, and
// the HTML page's escaping. Traffic through real clients: subscriptions-traffic.test.ts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { buildApi, type WebEndpoint } from '../../src/api/index.js';
import { negotiate } from '../../src/api/subscriptions/negotiate.js';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { parseV2rayPluginOptions } from '../../src/protocol/sip002/plugin-opts.js';
import { openStore, parseStoreLocation, type KyselyStore } from '../../src/store/index.js';
import { parseClientConfig } from '../../src/config/client.js';
import { RecordingControl, tempDir } from './helpers.js';
import { checkClash, checkSingBox, checkSip008, parseOutline } from './sub-formats.js';

type Json = Record<string, unknown>;

const WEB: WebEndpoint = { host: 'cdn.example.net', port: 443, path: '/S3cret', tls: true, udp: true };

async function setup(
  t: TestContext,
  web: WebEndpoint | null = WEB,
): Promise<{ app: FastifyInstance; store: KyselyStore; add: (body?: Json) => Promise<Json> }> {
  const store = await openStore(parseStoreLocation(undefined, tempDir(t)), {
    defaults: { hostname: 'example.org', port: 4444 },
  });
  await store.updateSettings({ apiPort: 8443 });
  const app = await buildApi({ store, control: new RecordingControl(), webEndpoint: () => web ?? undefined });
  await app.ready();
  t.after(async () => {
    await app.close();
    await store.close();
  });
  const prefix = `/${(await store.getSettings()).apiPrefix}`;
  const add = async (body: Json = {}): Promise<Json> => {
    const r = await app.inject({ method: 'POST', url: `${prefix}/access-keys`, payload: body });
    assert.equal(r.statusCode, 201, r.body);
    return JSON.parse(r.body) as Json;
  };
  return { app, store, add };
}

const pathOf = (key: Json): string => new URL(String(key.subscriptionUrl)).pathname;

test('the API gives each key a subscription URL on the dynamic-key base, with the same token', async (t) => {
  const { app, store, add } = await setup(t);
  const key = await add({ name: 'Sub' });
  assert.match(String(key.subscriptionUrl), /^https:\/\/example\.org:8443\/sub\/[A-Za-z0-9_-]{22}$/);
  assert.equal(
    String(key.subscriptionUrl).split('/sub/')[1],
    String(key.dynamicAccessUrl).split('/access/')[1],
    'one token for the dynamic key and the subscription',
  );
  const prefix = `/${(await store.getSettings()).apiPrefix}`;
  await app.inject({
    method: 'PUT',
    url: `${prefix}/server/dynamic-key-base-url`,
    payload: { url: 'https://keys.example.net/l' },
  });
  const again = JSON.parse(
    (await app.inject({ url: `${prefix}/access-keys/${String(key.id)}` })).body,
  ) as Json;
  assert.match(String(again.subscriptionUrl), /^https:\/\/keys\.example\.net\/l\/sub\/[A-Za-z0-9_-]{22}$/);
  const openapi = (await app.inject({ url: `${prefix}/openapi.json` })).body;
  assert.ok(openapi.includes('"subscriptionUrl"'), 'the OpenAPI document describes subscriptionUrl');
});

test('every format parses by its consumers rules; WebSocket first, raw Shadowsocks next', async (t) => {
  const { app, add } = await setup(t);
  const key = await add({ name: 'Alice' });
  const base = pathOf(key);
  const get = async (f: string) => {
    const r = await app.inject({ url: `${base}/${f}` });
    assert.equal(r.statusCode, 200, `${f}: ${r.body}`);
    return r;
  };

  // Outline YAML: first-supported(WebSocket, raw) for TCP and UDP; a client without WebSocket gets raw.
  const o = await get('outline');
  assert.match(String(o.headers['content-type']), /^text\/yaml/);
  const withWs = parseOutline(o.body, true);
  assert.ok('tunnel' in withWs);
  assert.deepEqual(withWs.tunnel.tcp, { websocket: 'wss://cdn.example.net/S3cret/tcp' });
  assert.deepEqual(withWs.tunnel.udp, { websocket: 'wss://cdn.example.net/S3cret/udp' });
  assert.equal(withWs.tunnel.secret, key.password);
  const noWs = parseOutline(o.body, false);
  assert.ok('tunnel' in noWs);
  assert.deepEqual(noWs.tunnel.tcp, { direct: 'example.org:4444' });

  // The Outline rules used here do reject what Outline rejects (negative controls).
  assert.throws(
    () => parseOutline(o.body.replace('cipher:', 'name: x\n    cipher:')),
    /unknown field "name"/,
  );
  assert.throws(() => parseOutline(`${o.body}error:\n  message: x\n`), /mutually exclusive/);
  assert.throws(
    () => parseOutline('{"server":"h","server_port":1,"method":"aes-128-gcm","password":"p","tag":"x"}'),
    /unknown field "tag"/,
  );

  const legacy = parseOutline((await get('outline-json')).body);
  assert.ok('tunnel' in legacy);
  assert.deepEqual(legacy.tunnel.tcp, { direct: 'example.org:4444' });

  // Clash/mihomo: the web entry with v2ray-plugin, its HTTPUpgrade twin (mihomo's
  // v2ray-http-upgrade at /SECRET/up), then the raw one; a select group over all.
  const proxies = checkClash((await get('clash')).body);
  assert.deepEqual(
    proxies.map((p) => [p.name, p.server, p.port, p.plugin ?? null]),
    [
      ['Alice (web)', 'cdn.example.net', 443, 'v2ray-plugin'],
      ['Alice (HTTPUpgrade)', 'cdn.example.net', 443, 'v2ray-plugin'],
      ['Alice', 'example.org', 4444, null],
    ],
  );
  assert.deepEqual(proxies[0]!['plugin-opts'], {
    mode: 'websocket',
    host: 'cdn.example.net',
    path: '/S3cret',
    tls: true,
  });
  assert.deepEqual(proxies[1]!['plugin-opts'], {
    mode: 'websocket',
    host: 'cdn.example.net',
    path: '/S3cret/up',
    tls: true,
    'v2ray-http-upgrade': true,
  });
  // UDP: the web entries' inside their stream (UoT v2, which a CDN carries), the raw entry's raw.
  assert.deepEqual(
    proxies.map((p) => [p.udp, p['udp-over-tcp'] ?? null, p['udp-over-tcp-version'] ?? null]),
    [
      [true, true, 2],
      [true, true, 2],
      [true, null, null],
    ],
  );
  assert.throws(
    () =>
      checkClash('proxies: []\nproxy-groups: [{name: g, type: select, proxies: [nope]}]\nrules: [MATCH,g]'),
    /exists/,
  );

  // sing-box: shadowsocks outbounds with its built-in v2ray-plugin for the web front.
  const outs = checkSingBox((await get('sing-box')).body);
  assert.deepEqual(
    outs.map((x) => [x.tag, x.plugin ?? null, x.plugin_opts ?? null]),
    [
      ['Alice (web)', 'v2ray-plugin', 'mode=websocket;host=cdn.example.net;path=/S3cret;tls'],
      ['Alice', null, null],
    ],
  );
  assert.deepEqual(
    outs.map((x) => x.udp_over_tcp ?? null),
    [true, null],
  );

  // base64 list of SIP002 links, each parsed by the SIP002 parser.
  const b = await get('base64');
  const links = Buffer.from(b.body, 'base64').toString('utf8').split('\n');
  const parsed = links.map((l) => parseSsUrl(l));
  assert.equal(parsed.length, 2);
  assert.equal(parsed[0]!.plugin, 'v2ray-plugin');
  assert.deepEqual(parseV2rayPluginOptions(parsed[0]!.pluginOptions), {
    tls: true,
    host: 'cdn.example.net',
    path: '/S3cret',
    mux: true,
  });
  assert.deepEqual(
    [parsed[1]!.host, parsed[1]!.port, parsed[1]!.password],
    ['example.org', 4444, key.password],
  );

  // SIP008: both servers; the raw one keeps the id /access/{token}/sip008 gives it.
  const sip = checkSip008((await get('sip008')).body);
  assert.equal(sip.servers.length, 2);
  assert.equal(sip.servers[0]!.plugin, 'v2ray-plugin');
  const token = base.split('/').pop()!;
  const access = JSON.parse((await app.inject({ url: `/access/${token}/sip008` })).body) as {
    servers: Json[];
  };
  assert.equal(sip.servers[1]!.id, access.servers[0]!.id);

  // Unknown format and unknown token: the same 404 as any unknown path.
  const nf = JSON.parse((await app.inject({ url: '/nope' })).body) as Json;
  for (const url of [`${base}/xml`, '/sub/unknown-token', '/sub/unknown-token/clash']) {
    const r = await app.inject({ url });
    assert.equal(r.statusCode, 404, url);
    assert.deepEqual(JSON.parse(r.body), nf);
  }
});

test('without a web front: raw Shadowsocks only; keys on another port than the front are raw only', async (t) => {
  const { app, add } = await setup(t, null);
  const key = await add();
  const r = parseOutline((await app.inject({ url: `${pathOf(key)}/outline` })).body);
  assert.ok('tunnel' in r);
  assert.deepEqual(r.tunnel.tcp, { direct: 'example.org:4444' });
  assert.equal(checkClash((await app.inject({ url: `${pathOf(key)}/clash` })).body).length, 1);

  const other = await setup(t, { ...WEB, keyPort: 9999 });
  const k2 = await other.add();
  assert.equal(checkSingBox((await other.app.inject({ url: `${pathOf(k2)}/sing-box` })).body).length, 1);
});

test('a web front without UDP (--no-udp): web entries claim no UDP and no UDP-over-TCP', async (t) => {
  const { app, add } = await setup(t, { ...WEB, udp: false });
  const key = await add();
  const proxies = checkClash((await app.inject({ url: `${pathOf(key)}/clash` })).body);
  assert.deepEqual(
    proxies.map((p) => [p.plugin ?? null, p.udp, p['udp-over-tcp'] ?? null]),
    [
      ['v2ray-plugin', false, null],
      ['v2ray-plugin', false, null],
      [null, true, null],
    ],
  );
  const outs = checkSingBox((await app.inject({ url: `${pathOf(key)}/sing-box` })).body);
  assert.deepEqual(
    outs.map((o) => [o.plugin ?? null, o.udp_over_tcp ?? null]),
    [
      ['v2ray-plugin', null],
      [null, null],
    ],
  );
});

test('format negotiation: the User-Agent matrix of panels, Accept text/html for browsers', async (t) => {
  const matrix: [string, string | undefined, string][] = [
    ['clash-verge/v2.0.0', undefined, 'clash'],
    ['Clash.Meta/1.18', undefined, 'clash'],
    ['ClashX/1.95', undefined, 'clash'],
    ['FlClash/0.8', undefined, 'clash'],
    ['mihomo/1.19', undefined, 'clash'],
    ['Stash/2.4 Clash/1.0', undefined, 'clash'],
    ['SFA/1.11.0 (Android)', undefined, 'sing-box'],
    ['SFI/1.11.0', undefined, 'sing-box'],
    ['sing-box 1.11', undefined, 'sing-box'],
    ['HiddifyNext/2.5', undefined, 'sing-box'],
    ['Outline (android; arm64; go1.23)', undefined, 'outline'],
    ['Go-http-client/2.0', undefined, 'outline'],
    ['shadowsocks-rust/1.21', undefined, 'sip008'],
    ['v2rayNG/1.9.1', undefined, 'base64'],
    ['v2rayN/7.0', undefined, 'base64'],
    ['Shadowrocket/2070 CFNetwork', undefined, 'base64'],
    ['Streisand/1.6', undefined, 'base64'],
    ['curl/8.5.0', undefined, 'base64'],
    [undefined as unknown as string, undefined, 'base64'],
    [
      'Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0',
      'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8',
      'html',
    ],
    ['clash-verge/v2.0.0', 'text/html', 'html'],
  ];
  for (const [ua, accept, want] of matrix) assert.equal(negotiate(ua, accept), want, `${ua} / ${accept}`);

  // The same decision end to end, by what each body is.
  const { app, add } = await setup(t);
  const base = pathOf(await add({ name: 'Neg' }));
  const body = async (ua: string, accept?: string) =>
    (await app.inject({ url: base, headers: { 'user-agent': ua, ...(accept ? { accept } : {}) } })).body;
  assert.equal(checkClash(await body('mihomo/1.19')).length, 3); // WebSocket, HTTPUpgrade, raw
  assert.equal(checkSingBox(await body('SFI/1.11')).length, 2);
  assert.ok('tunnel' in parseOutline(await body('Go-http-client/1.1')));
  assert.equal(checkSip008(await body('shadowsocks-rust/1.21')).servers.length, 2);
  assert.match(Buffer.from(await body('v2rayNG/1.9'), 'base64').toString(), /^ss:\/\//);
  assert.match(await body('Mozilla/5.0', 'text/html'), /^<!doctype html>/);
  assert.equal((await app.inject({ url: base })).headers.vary, 'User-Agent, Accept, Accept-Language');
});

test('headers: subscription-userinfo, profile-update-interval, profile-title, content-disposition', async (t) => {
  const { app, store, add } = await setup(t);
  const key = await add({ name: 'Ünï, "q"', limit: { bytes: 5_000_000 }, expiresAt: '2030-01-02T03:04:05Z' });
  store.addBytes(String(key.id), 1000, 3000);
  const r = await app.inject({ url: `${pathOf(key)}/clash` });
  const info = String(r.headers['subscription-userinfo']);
  assert.equal(info, 'upload=1000; download=3000; total=5000000; expire=1893553445');
  assert.equal(r.headers['profile-update-interval'], '6');
  assert.equal(r.headers['profile-title'], `base64:${Buffer.from('Ünï, "q"').toString('base64')}`);
  assert.equal(
    r.headers['content-disposition'],
    `attachment; filename="n q.yaml"; filename*=UTF-8''%C3%9Cn%C3%AF%2C%20%22q%22.yaml`,
    'an ASCII name without quotes, and the whole name in RFC 6266 filename*',
  );
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.match(String(r.headers['profile-web-page-url']), /^https:\/\/example\.org:8443\/sub\/.+\/html$/);
});

/** 3000 bytes used and a 2000-byte limit: the key is over it. Returns the admin prefix. */
test('a SIP008 subscription saved to a file is a client config file, also for a key with a limit (bytes_used, bytes_remaining)', async (t) => {
  // docs/client-config.md: `curl …/sub/TOKEN/sip008 > s.json` then `ladder client --config s.json`.
  const { app, store, add } = await setup(t);
  const key = await add({ name: 'Limited', limit: { bytes: 10_000_000 } });
  const body = (await app.inject({ url: `${pathOf(key)}/sip008` })).body;
  assert.equal(checkSip008(body).bytes_remaining, 10_000_000);
  const c = parseClientConfig(body, 's.json');
  assert.deepEqual(
    c.servers?.map((s) => [s.host, s.port, s.password]),
    [
      ['cdn.example.net', 443, key.password],
      ['example.org', 4444, key.password],
    ],
  );
  assert.ok(
    !('bytes_used' in c) && !('bytes_remaining' in c),
    'nothing of the document leaks into the options',
  );

  // Over its limit the list is empty: the client says why, not that no key was given.
  await overLimit(app, store, key);
  const refused = (await app.inject({ url: `${pathOf(key)}/sip008` })).body;
  assert.deepEqual(checkSip008(refused).servers, []);
  assert.throws(
    () => parseClientConfig(refused, 's.json'),
    /^ClientConfigError: s\.json: this SIP008 subscription lists no servers \(bytes_remaining: 0\): the server refuses its key for now \(over its data limit, expired or disabled\)/,
  );
});

async function overLimit(app: FastifyInstance, store: KyselyStore, key: Json): Promise<string> {
  const prefix = `/${(await store.getSettings()).apiPrefix}`;
  store.addBytes(String(key.id), 0, 3000);
  // Setting the limit re-evaluates the keys at once (as the enforcer's next tick would).
  await app.inject({
    method: 'PUT',
    url: `${prefix}/access-keys/${String(key.id)}/data-limit`,
    payload: { limit: { bytes: 2000 } },
  });
  return prefix;
}

test('refused keys: Outline error object, empty SIP008, explanatory entries elsewhere that carry nothing', async (t) => {
  const { app, store, add } = await setup(t);
  const key = await add({ name: 'Over' });
  const prefix = await overLimit(app, store, key);
  const base = pathOf(key);
  const get = async (f: string) => (await app.inject({ url: `${base}/${f}` })).body;

  for (const f of ['outline', 'outline-json']) {
    const r = parseOutline(await get(f));
    assert.ok('error' in r, f);
    assert.equal(r.error.message, 'Quota exceeded');
    assert.match(String(r.error.details), /^Used .* out of /);
  }
  const sip = checkSip008(await get('sip008'));
  assert.deepEqual(sip.servers, []);
  assert.equal(sip.bytes_used, 3000);
  assert.equal(sip.bytes_remaining, 0);
  const links = Buffer.from(await get('base64'), 'base64')
    .toString()
    .split('\n')
    .map((l) => parseSsUrl(l));
  assert.equal(links.length, 1);
  assert.match(links[0]!.tag!, /Quota exceeded/);
  assert.deepEqual([links[0]!.host, links[0]!.port], ['127.0.0.1', 1]);
  assert.notEqual(links[0]!.password, key.password);
  const clash = await get('clash');
  assert.deepEqual(checkClash(clash), []);
  assert.match(clash, /proxies:\s*\n\s*- REJECT/);
  const sb = checkSingBox(await get('sing-box'));
  assert.deepEqual([sb.length, sb[0]!.server, sb[0]!.server_port], [1, '127.0.0.1', 1]);
  assert.match(await get('html'), /Quota exceeded: Used/);

  await app.inject({ method: 'DELETE', url: `${prefix}/access-keys/${String(key.id)}/data-limit` });
  await app.inject({
    method: 'PUT',
    url: `${prefix}/access-keys/${String(key.id)}/enabled`,
    payload: { enabled: false },
  });
  const off = parseOutline(await get('outline'));
  assert.ok('error' in off && off.error.message === 'Access key disabled');
  assert.match(Buffer.from(await get('base64'), 'base64').toString(), /Access%20key%20disabled/);

  // A 2022 key: Outline apps have no 2022 ciphers, so the Outline formats say so.
  const k22 = await add({ method: '2022-blake3-aes-128-gcm' });
  const e22 = parseOutline((await app.inject({ url: `${pathOf(k22)}/outline` })).body);
  assert.ok('error' in e22 && /cannot use this key/.test(e22.error.message));
  const l22 = parseSsUrl(
    Buffer.from((await app.inject({ url: `${pathOf(k22)}/base64` })).body, 'base64')
      .toString()
      .split('\n')[1]!,
  );
  assert.equal(l22.password, k22.password);
});

test('HTML page: escaped names (a key named <script> is inert), inline SVG QR codes, no script or external asset', async (t) => {
  const { app, add } = await setup(t);
  const evil = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'&';
  const key = await add({ name: evil });
  const r = await app.inject({ url: pathOf(key), headers: { accept: 'text/html' } });
  assert.equal(r.statusCode, 200);
  assert.match(String(r.headers['content-type']), /^text\/html; charset=utf-8/);
  assert.match(String(r.headers['content-security-policy']), /default-src 'none'/);
  assert.doesNotMatch(String(r.headers['content-security-policy']), /script-src/);
  assert.equal(r.headers['referrer-policy'], 'no-referrer');
  assert.ok(!/<script/i.test(r.body), 'no <script> element at all');
  assert.ok(!/<img/i.test(r.body), 'no injected element');
  assert.ok(r.body.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'the name is shown, escaped');
  assert.ok(!/(src|href)=["']?(https?:)?\/\//i.test(r.body), 'no external asset');
  const svgs = r.body.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
  assert.equal(svgs.length, 4, 'QR codes: subscription, Outline, web entry, raw entry');
  assert.ok(r.body.includes(`ssconf://example.org:8443/sub/${pathOf(key).split('/').pop()!}/outline#`));
  // Negative control: the check above does see an unescaped name.
  assert.ok(/<script/i.test(`<p>${evil}</p>`));
});

test("HTML page in the browser's language (Accept-Language): ru, zh, fa right to left, English otherwise; the quota message too", async (t) => {
  const { app, store, add } = await setup(t);
  const key = await add({ name: 'Lang' });
  const page = async (acceptLanguage?: string, k = key) =>
    (
      await app.inject({
        url: pathOf(k),
        headers: { accept: 'text/html', ...(acceptLanguage ? { 'accept-language': acceptLanguage } : {}) },
      })
    ).body;
  const cases: [string | undefined, string, string, RegExp][] = [
    ['ru-RU,ru;q=0.9,en;q=0.8', 'ru', 'ltr', /Не показывайте эту страницу другим/],
    ['zh-CN,zh;q=0.9', 'zh-CN', 'ltr', /请勿公开此页面/],
    ['fa-IR,fa;q=0.9', 'fa', 'rtl', /این صفحه را خصوصی نگه دارید/],
    ['de-DE,de;q=0.9', 'en', 'ltr', /Keep this page private/],
    ['de, ru;q=0.5, zh;q=0.7', 'zh-CN', 'ltr', /请勿公开此页面/],
    ['ru;q=0, en', 'en', 'ltr', /Keep this page private/],
    [undefined, 'en', 'ltr', /Keep this page private/],
    // Names every object has are not languages (they answered 500 once).
    ['constructor', 'en', 'ltr', /Keep this page private/],
    ['__proto__, toString;q=0.9', 'en', 'ltr', /Keep this page private/],
  ];
  for (const [al, lang, dir, text] of cases) {
    const body = await page(al);
    assert.match(body, new RegExp(`<html lang="${lang}" dir="${dir}">`), String(al));
    assert.match(body, text, String(al));
    if (lang !== 'en')
      assert.doesNotMatch(body, /Keep this page private|Apps that take|Scan or paste/, String(al));
  }
  // The /html format follows the header the same way.
  const html = await app.inject({ url: `${pathOf(key)}/html`, headers: { 'accept-language': 'fa' } });
  assert.match(html.body, /<html lang="fa" dir="rtl">/);
  assert.equal(html.headers.vary, 'Accept-Language');

  // A key over its limit: the reason in the page's language.
  await overLimit(app, store, key);
  assert.match(await page('ru'), /Лимит трафика исчерпан: Использовано 2\.93 KiB из 1\.95 KiB\. Обратитесь/);
  assert.match(await page('zh-CN'), /流量已用完/);
  assert.match(await page('en'), /Quota exceeded: Used 2\.93 KiB out of 1\.95 KiB\. Ask whoever/);
});
