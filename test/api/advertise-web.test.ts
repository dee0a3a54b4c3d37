// `--advertise web` (WebEndpoint.only): behind a CDN, no advertised form of a key names the origin's
// raw host:port. Every subscription format, the page, the dynamic key and the management APIs'
// accessUrl are searched for the origin's name and data port; the control (the same front without
// `only`) must still name them, so the search can fail.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { buildApi, type WebEndpoint } from '../../src/api/index.js';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { RecordingControl, tempDir } from './helpers.js';
import { checkClash, checkSingBox, checkSip008, parseOutline } from './sub-formats.js';

type Json = Record<string, unknown>;

const ORIGIN = 'origin-7.example.org';
const PORT = 47_913;
const FRONT: WebEndpoint = {
  host: 'cdn.example.net',
  port: 443,
  path: '/S3cretPathForCdn',
  tls: true,
  udp: true,
};

/** Every advertised text of one key, by where it came from. */
async function advertised(t: TestContext, web: WebEndpoint): Promise<Map<string, string>> {
  const store = await openStore(parseStoreLocation(undefined, tempDir(t)), {
    defaults: { hostname: ORIGIN, port: PORT },
  });
  // The subscription and dynamic-key URLs go through the CDN too (docs/web-front.md).
  await store.updateSettings({ apiPort: 8443, dynamicKeyBaseUrl: 'https://cdn.example.net/k' });
  const app: FastifyInstance = await buildApi({
    store,
    control: new RecordingControl(),
    webEndpoint: () => web,
    // A ShadowTLS port too: its key URL names the origin host, so web-only leaves it out.
    shadowTls: () => ({ port: 8444, sni: 'www.example.com', udp: true }),
  });
  await app.ready();
  t.after(async () => {
    await app.close();
    await store.close();
  });
  const api = `/${(await store.getSettings()).apiPrefix}`;
  const get = async (url: string): Promise<string> => {
    const r = await app.inject({ method: 'GET', url });
    assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
    return r.body;
  };
  const out = new Map<string, string>();
  // The management API (the operator's, not the key holder's) keeps the key's record field `port`.
  const record = (body: string): string => body.replaceAll(`"port":${PORT}`, '"port":"(record)"');
  const made = await app.inject({ method: 'POST', url: `${api}/access-keys`, payload: { name: 'K' } });
  assert.equal(made.statusCode, 201, made.body);
  out.set('POST /access-keys', record(made.body));
  const key = JSON.parse(made.body) as Json;
  out.set('GET /access-keys', record(await get(`${api}/access-keys`)));
  out.set('GET /access-keys/:id', record(await get(`${api}/access-keys/${String(key.id)}`)));
  const token = String(key.subscriptionUrl).split('/sub/')[1]!;
  for (const f of ['outline', 'outline-json', 'clash', 'sing-box', 'sip008', 'html'])
    out.set(f, await get(`/sub/${token}/${f}`));
  out.set('base64', Buffer.from(await get(`/sub/${token}/base64`), 'base64').toString('utf8'));
  out.set('/access (dynamic key)', await get(`/access/${token}`));
  out.set('/access sip008', await get(`/access/${token}/sip008`));
  const rotated = await app.inject({ method: 'POST', url: `${api}/access-keys/${String(key.id)}/rotate` });
  assert.equal(rotated.statusCode, 200, rotated.body);
  out.set('POST /access-keys/:id/rotate', record(rotated.body));
  // The page's QR codes are SVG paths full of numbers; the links are in its text.
  out.set('html', out.get('html')!.replace(/<svg[\s\S]*?<\/svg>/g, ''));
  return out;
}

const names = (text: string): boolean => text.includes(ORIGIN) || text.includes(String(PORT));

test('advertise web: no format names the origin host or data port; the web front is in each', async (t) => {
  const out = await advertised(t, { ...FRONT, only: true });
  for (const [where, text] of out) {
    assert.ok(!names(text), `${where} names the origin: ${text.slice(0, 400)}`);
    if (where !== 'outline-json') assert.ok(text.includes('cdn.example.net'), `${where} names the web front`);
  }
  // The formats stay valid for their apps, with the web entry only.
  checkClash(out.get('clash')!);
  checkSingBox(out.get('sing-box')!);
  const sip = checkSip008(out.get('sip008')!);
  assert.equal(sip.servers.length, 1);
  for (const where of ['outline', '/access (dynamic key)']) {
    const outline = parseOutline(out.get(where)!);
    assert.ok('tunnel' in outline, where);
    assert.ok('websocket' in outline.tunnel.tcp, `${where}: TCP over the web front`);
    assert.ok('websocket' in outline.tunnel.udp, `${where}: UDP over the web front`);
  }
  assert.match(out.get('outline-json')!, /WebSocket only/);
  const key = JSON.parse(out.get('GET /access-keys/:id')!) as Json;
  const url = parseSsUrl(String(key.accessUrl));
  assert.equal(url.host, 'cdn.example.net');
  assert.equal(url.plugin, 'v2ray-plugin');
});

test('control: without `only` every form still names the origin (the search above can fail)', async (t) => {
  const out = await advertised(t, FRONT);
  for (const [where, text] of out) assert.ok(names(text), `${where} names the origin`);
});

test('advertise web without UDP over the front: the Outline config names no /udp endpoint', async (t) => {
  const out = await advertised(t, { ...FRONT, udp: false, only: true });
  for (const where of ['outline', '/access (dynamic key)']) {
    const text = out.get(where)!;
    assert.ok(!text.includes('/udp'), `${where} names a /udp endpoint the front does not serve: ${text}`);
    assert.ok(!names(text), `${where} names the origin`);
    const outline = parseOutline(text);
    assert.ok('tunnel' in outline, where);
    assert.ok('websocket' in outline.tunnel.tcp, `${where}: TCP over the web front`);
    // Nowhere (nothing listens on port 1): the app finds UDP unavailable; an absent `udp` would be
    // direct UDP outside the tunnel for Outline.
    assert.deepEqual(outline.tunnel.udp, { direct: '127.0.0.1:1' }, where);
  }
});
