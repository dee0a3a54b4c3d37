import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { ManualClock } from '../../src/shared/clock.js';
import { accessConfigLine, startApi } from '../../src/api/index.js';
import { openStore, parseStoreLocation, HOUR_MS } from '../../src/store/index.js';
import { checkPassword } from '../../src/api/context.js';
import { harness, tempDir, RecordingControl } from './helpers.js';
import { waitFor } from '../helpers/wait.js';
import { fetFeatures } from '../../src/protocol/shadowsocks/shaping-features.js';

type Json = Record<string, unknown>;
const json = (body: string): Json => JSON.parse(body) as Json;

/** Wait (bounded: 5 s) for a timer-driven evaluation to land. */
const until = (cond: () => boolean): Promise<boolean> => waitFor(cond, { timeoutMs: 5000, intervalMs: 20 });

test('Outline Manager flow: version gate, POST without body, rename as a form, limits, usage, delete', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  // The Manager reads GET /server and gates data limits on semver >= 1.4.0.
  const server = json((await h.call('GET', '/server')).body);
  const [maj, min] = String(server.version).split('.').map(Number) as [number, number];
  assert.ok(maj > 1 || (maj === 1 && min >= 4), 'version enables Manager data-limit features');
  assert.equal(typeof server.createdTimestampMs, 'number');
  // addAccessKey(): POST with no body at all.
  const created = await h.app.inject({ method: 'POST', url: `${h.prefix}/access-keys` });
  assert.equal(created.statusCode, 201);
  const key = json(created.body);
  // renameAccessKey(): PUT with an application/x-www-form-urlencoded body.
  const renamed = await h.app.inject({
    method: 'PUT',
    url: `${h.prefix}/access-keys/${String(key.id)}/name`,
    payload: 'name=Alice+%26+Bob',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(renamed.statusCode, 204);
  assert.equal(json((await h.call('GET', `/access-keys/${String(key.id)}`)).body).name, 'Alice & Bob');
  // setAccessKeyDataLimit / setDefaultDataLimit: JSON bodies.
  assert.equal(
    (await h.call('PUT', `/access-keys/${String(key.id)}/data-limit`, { limit: { bytes: 1e9 } })).statusCode,
    204,
  );
  assert.equal(
    (await h.call('PUT', '/server/access-key-data-limit', { limit: { bytes: 5e9 } })).statusCode,
    204,
  );
  // getDataUsage(): keys are the ids of GET /access-keys.
  h.store.addBytes(String(key.id), 10, 20);
  const usage = json((await h.call('GET', '/metrics/transfer')).body).bytesTransferredByUserId as Record<
    string,
    number
  >;
  assert.deepEqual(usage, { [String(key.id)]: 30 });
  // An empty JSON body counts as no body (curl -X POST -H 'content-type: application/json').
  assert.equal((await h.call('POST', '/access-keys', '')).statusCode, 201);
  assert.equal((await h.call('DELETE', `/access-keys/${String(key.id)}`)).statusCode, 204);
});

test('limit below usage, expiry and disable take the key out of ServerControl.setKeys at once', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12, 0));
  const h = await harness(tempDir(t), { clock });
  t.after(() => h.close());
  const a = json((await h.call('POST', '/access-keys', { name: 'a' })).body);
  const b = json((await h.call('POST', '/access-keys', { name: 'b' })).body);
  const c = json((await h.call('POST', '/access-keys', { name: 'c' })).body);
  assert.deepEqual(h.control.ids(), ['0', '1', '2']);
  assert.equal(h.control.keys.find((k) => k.id === '0')?.secret, a.password);

  h.store.addBytes('0', 4000, 4000);
  assert.equal(
    (await h.call('PUT', '/access-keys/0/data-limit', { limit: { bytes: 5000 } })).statusCode,
    204,
  );
  assert.deepEqual(h.control.ids(), ['1', '2'], 'over-limit key removed');
  assert.ok(h.control.closed.includes('0'));
  const k0 = json((await h.call('GET', '/access-keys/0')).body);
  assert.equal(k0.state, 'over_limit');
  assert.deepEqual(k0.dataUsed, { bytes: 8000 });

  const exp = new Date(clock.now() + 60_000).toISOString();
  assert.equal(
    (await h.call('PUT', `/access-keys/${String(b.id)}/expiry`, { expiresAt: exp })).statusCode,
    204,
  );
  assert.equal(json((await h.call('GET', '/access-keys/1')).body).expiresAt, exp);
  assert.deepEqual(h.control.ids(), ['1', '2']);
  clock.advance(61_000); // fires the enforcement timer (500 ms interval in the harness)
  await until(() => h.control.ids().length === 1);
  assert.deepEqual(h.control.ids(), ['2'], 'expired key removed by the periodic loop');

  assert.equal(
    (await h.call('PUT', `/access-keys/${String(c.id)}/enabled`, { enabled: false })).statusCode,
    204,
  );
  assert.deepEqual(h.control.ids(), []);
  assert.equal((await h.call('PUT', '/access-keys/2/enabled', { enabled: true })).statusCode, 204);
  assert.equal((await h.call('DELETE', '/access-keys/1/expiry')).statusCode, 204);
  assert.deepEqual(h.control.ids(), ['1', '2']);
  const bad = await h.call('PUT', '/access-keys/1/expiry', { expiresAt: 'tomorrow' });
  assert.equal(bad.statusCode, 400);
  assert.equal(json(bad.body).field, 'expiresAt');
  assert.equal((await h.call('PUT', '/access-keys/9/enabled', { enabled: true })).statusCode, 404);

  // Recurring quota: a daily limit resets at 00:00 UTC.
  assert.equal(
    (await h.call('PUT', '/access-keys/0/data-limit', { limit: { bytes: 5000 }, period: 'daily' }))
      .statusCode,
    204,
  );
  const u0 = json((await h.call('GET', '/access-keys/0/usage')).body);
  assert.equal(u0.state, 'over_limit');
  assert.equal(u0.dataLimitPeriod, 'daily');
  assert.equal(u0.nextResetTimestampMs, Date.UTC(2026, 10, 23));
  clock.advance(13 * HOUR_MS);
  await until(() => h.control.ids().length === 3);
  assert.deepEqual(h.control.ids(), ['0', '1', '2'], 'daily quota reset');
  const u1 = json((await h.call('GET', '/access-keys/0/usage')).body);
  assert.deepEqual(u1.dataUsed, { bytes: 0 });
  assert.deepEqual((u1.trailing30Days as Json).bytes, 8000);
});

test('bulk creation is one transaction and validates its fields', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const res = await h.call('POST', '/access-keys/bulk', {
    count: 50,
    name: 'Team',
    limit: { bytes: 1e9 },
    dataLimitPeriod: 'monthly',
  });
  assert.equal(res.statusCode, 201);
  const keys = json(res.body).accessKeys as Json[];
  assert.equal(keys.length, 50);
  assert.equal(keys[49]!.name, 'Team 50');
  assert.equal(keys[0]!.dataLimitPeriod, 'monthly');
  assert.equal(new Set(keys.map((k) => k.password)).size, 50);
  const bad = await h.call('POST', '/access-keys/bulk', { count: 5000 });
  assert.equal(bad.statusCode, 400);
  assert.equal(json(bad.body).field, 'count');
  assert.equal(await h.store.countKeys(), 50);
});

test('dynamic keys: Outline JSON, SIP008, and Outline error objects when the key cannot be used', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  await h.store.updateSettings({ apiPort: 8443 });
  const key = json((await h.call('POST', '/access-keys', { name: 'Dyn' })).body);
  const dyn = String(key.dynamicAccessUrl);
  const m = /^ssconf:\/\/example\.org:8443\/access\/([A-Za-z0-9_-]{22})$/.exec(dyn);
  assert.ok(m, dyn);
  const path = `/access/${m[1]!}`;
  const get = (url: string) => h.app.inject({ method: 'GET', url });

  let res = await get(path);
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
  // Outline's legacy parser rejects unknown fields: exactly these five (LegacyShadowsocksConfig).
  const { prefix, ...rest } = json(res.body);
  assert.deepEqual(rest, {
    server: 'example.org',
    server_port: 4444,
    method: 'chacha20-ietf-poly1305',
    password: key.password,
  });
  // The prefix (key-prefix.ts): one character per byte, 3..16 of them, C6-exempt, re-drawn on each fetch.
  assert.equal(typeof prefix, 'string');
  const bytes = Buffer.from(String(prefix), 'latin1');
  assert.ok([...String(prefix)].every((c) => c.charCodeAt(0) <= 0xff));
  assert.ok(bytes.length >= 3 && bytes.length <= 16, String(bytes.length));
  const f = fetFeatures(Buffer.concat([bytes, Buffer.alloc(100, 0x80)]));
  assert.ok(f.ex2 || f.ex5, bytes.toString('hex'));
  const again = new Set<string>();
  for (let i = 0; i < 5; i++) again.add(String(json((await get(path)).body).prefix));
  assert.ok(again.size >= 4, 'a fresh prefix on each fetch');

  res = await get(`${path}/sip008`);
  const sip = json(res.body) as { version: number; servers: Json[] };
  assert.equal(sip.version, 1);
  assert.equal(sip.servers.length, 1);
  assert.match(
    String(sip.servers[0]!.id),
    /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/,
  );
  assert.equal(sip.servers[0]!.remarks, 'Dyn');
  assert.equal(sip.servers[0]!.server_port, 4444);
  assert.equal((json((await get(`${path}?format=sip008`)).body) as { version: number }).version, 1);

  // Moving the server = one setting; the same ssconf:// URL now points at the new host.
  await h.call('PUT', '/server/hostname-for-access-keys', { hostname: 'new.example.net' });
  assert.equal(json((await get(path)).body).server, 'new.example.net');

  h.store.addBytes(String(key.id), 0, 3000);
  await h.call('PUT', `/access-keys/${String(key.id)}/data-limit`, { limit: { bytes: 2000 } });
  res = await get(path);
  assert.equal(res.statusCode, 200);
  const err = json(res.body).error as Json;
  assert.equal(err.message, 'Quota exceeded');
  assert.match(String(err.details), /^Used .* out of /);
  const sipOver = json((await get(`${path}/sip008`)).body);
  assert.deepEqual(sipOver.servers, []);
  assert.equal(sipOver.bytes_used, 3000);
  assert.equal(sipOver.bytes_remaining, 0);

  await h.call('DELETE', `/access-keys/${String(key.id)}/data-limit`);
  await h.call('PUT', `/access-keys/${String(key.id)}/expiry`, { expiresAt: 1000, allowPastExpiry: true });
  assert.equal((json((await get(path)).body).error as Json).message, 'Access key expired');
  await h.call('DELETE', `/access-keys/${String(key.id)}/expiry`);
  await h.call('PUT', `/access-keys/${String(key.id)}/enabled`, { enabled: false });
  assert.equal((json((await get(path)).body).error as Json).message, 'Access key disabled');

  // Dynamic keys can point at a proxy with a real certificate.
  assert.equal(
    (await h.call('PUT', '/server/dynamic-key-base-url', { url: 'https://keys.example.net/ladder/' }))
      .statusCode,
    204,
  );
  assert.equal(
    json((await h.call('GET', '/server')).body).dynamicKeyBaseUrl,
    'https://keys.example.net/ladder',
  );
  assert.match(
    String(json((await h.call('GET', `/access-keys/${String(key.id)}`)).body).dynamicAccessUrl),
    /^ssconf:\/\/keys\.example\.net\/ladder\/access\/[A-Za-z0-9_-]{22}$/,
  );
  const badUrl = await h.call('PUT', '/server/dynamic-key-base-url', { url: 'http://plain.example' });
  assert.equal(badUrl.statusCode, 400);
  assert.equal(json(badUrl.body).field, 'url');
  assert.equal((await h.call('PUT', '/server/dynamic-key-base-url', { url: null })).statusCode, 204);
  assert.equal(json((await h.call('GET', '/server')).body).dynamicKeyBaseUrl, undefined);

  await h.call('DELETE', `/access-keys/${String(key.id)}`);
  res = await get(path);
  assert.equal(res.statusCode, 404);
  assert.deepEqual(json(res.body), json((await get('/access/unknown')).body));
});

test('200 parallel API creations and deletions leave a consistent store', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const created = await Promise.all(
    Array.from({ length: 200 }, (_, i) => h.call('POST', '/access-keys', { name: `k${i}` })),
  );
  assert.ok(created.every((r) => r.statusCode === 201));
  const ids = created.map((r) => String(json(r.body).id));
  assert.equal(new Set(ids).size, 200);
  const del = ids.slice(0, 100);
  const mixed = await Promise.all([
    ...del.map((id) => h.call('DELETE', `/access-keys/${id}`)),
    ...Array.from({ length: 100 }, (_, i) => h.call('PUT', `/access-keys/custom-${i}`, { name: `c${i}` })),
    ...Array.from({ length: 50 }, () => h.call('PUT', '/access-keys/contested', {})),
  ]);
  assert.ok(mixed.slice(0, 200).every((r) => r.statusCode === 204 || r.statusCode === 201));
  const contested = mixed.slice(200).map((r) => r.statusCode);
  assert.equal(contested.filter((s) => s === 201).length, 1, 'one PUT wins a contested id');
  assert.equal(contested.filter((s) => s === 409).length, 49);
  const list = json((await h.call('GET', '/access-keys')).body).accessKeys as Json[];
  assert.equal(list.length, 201);
  assert.equal(new Set(list.map((k) => k.id)).size, 201);
  assert.equal(await h.store.countKeys(), 201);
  await h.app.ready();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(h.control.keys.length, 201, 'data plane has exactly the stored keys');
});

test('restart keeps keys, settings and usage', async (t) => {
  const dir = tempDir(t);
  let h = await harness(dir);
  const k = json((await h.call('POST', '/access-keys', { name: 'keep', limit: { bytes: 123456 } })).body);
  await h.call('PUT', '/name', { name: 'Persisted' });
  h.store.addBytes(String(k.id), 111, 222);
  const prefix = h.prefix;
  await h.close(); // flushes buffered usage
  h = await harness(dir);
  t.after(() => h.close());
  assert.equal(h.prefix, prefix, 'secret prefix is persisted');
  const again = json((await h.call('GET', `/access-keys/${String(k.id)}`)).body);
  assert.equal(again.name, 'keep');
  assert.equal(again.password, k.password);
  assert.deepEqual(again.dataLimit, { bytes: 123456 });
  assert.equal(json((await h.call('GET', '/server')).body).name, 'Persisted');
  assert.deepEqual(json((await h.call('GET', '/metrics/transfer')).body).bytesTransferredByUserId, {
    [String(k.id)]: 333,
  });
});

function httpsGet(url: string, pin: string): Promise<{ status: number; headers: Json; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { rejectUnauthorized: false, agent: false }, (res) => {
      const fp = (res.socket as TLSSocket).getPeerCertificate().fingerprint256.replace(/:/g, '');
      if (fp !== pin) return reject(new Error('certificate does not match certSha256'));
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers as Json, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('real HTTPS: self-signed certificate pinned by certSha256, access config line, persisted cert', async (t) => {
  const dir = tempDir(t);
  const open = () =>
    openStore(parseStoreLocation(undefined, dir), { defaults: { hostname: '127.0.0.1', port: 4444 } });
  let store = await open();
  let api = await startApi({
    store,
    control: new RecordingControl(),
    dataDir: dir,
    host: '127.0.0.1',
    port: 0,
  });
  const line = JSON.parse(accessConfigLine(api)) as { apiUrl: string; certSha256: string };
  assert.match(line.apiUrl, /^https:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{22}$/);
  assert.match(line.certSha256, /^[0-9A-F]{64}$/);
  const res = await httpsGet(`${line.apiUrl}/server`, line.certSha256);
  assert.equal(res.status, 200);
  assert.equal((JSON.parse(res.body) as Json).hostnameForAccessKeys, '127.0.0.1');
  const origin = new URL(line.apiUrl).origin;
  const strip = (r: { status: number; headers: Json; body: string }) => {
    const { date: _d, ...headers } = r.headers;
    return { status: r.status, headers, body: r.body };
  };
  const unknown = strip(await httpsGet(`${line.apiUrl}/nope`, line.certSha256));
  for (const p of [
    '/',
    '/server',
    '/AAAAAAAAAAAAAAAAAAAAAA/server',
    `/${line.apiUrl.split('/').pop()!.slice(1)}/server`,
  ]) {
    assert.deepEqual(strip(await httpsGet(origin + p, line.certSha256)), unknown, `GET ${p}`);
  }
  assert.equal((await store.getSettings()).apiPort, api.port);
  await api.close();
  await store.close();

  store = await open();
  api = await startApi({ store, control: new RecordingControl(), dataDir: dir, host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await api.close();
    await store.close();
  });
  assert.equal(api.certSha256, line.certSha256, 'certificate persisted in the data dir');
  assert.equal(api.apiUrl.split('/').pop(), line.apiUrl.split('/').pop(), 'prefix persisted');
});

test('an expiry beyond what a date can hold is refused (it used to break GET /access-keys for every key)', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  json((await h.call('POST', '/access-keys', { name: 'a' })).body);
  const r = await h.call('PUT', '/access-keys/0/expiry', { expiresAt: 9_000_000_000_000_000 });
  assert.equal(r.statusCode, 400);
  assert.match(r.body, /expiresAt/);
  assert.equal((await h.call('GET', '/access-keys')).statusCode, 200);
  const bulk = await h.call('POST', '/access-keys', { name: 'b', expiresAt: 9_000_000_000_000_000 });
  assert.equal(bulk.statusCode, 400);
});

test('key passwords are checked against their method: a 2022 key with a bad PSK is refused on "password", and checkPassword refuses a bad PSK without echoing it', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const r = await h.call('POST', '/access-keys', {
    method: '2022-blake3-aes-256-gcm',
    password: 'not-a-psk',
  });
  assert.equal(r.statusCode, 400);
  assert.match(r.body, /password/);
  assert.ok(!r.body.includes('not-a-psk'));
  assert.throws(
    () => checkPassword('2022-blake3-aes-256-gcm', 'not-a-psk'),
    (e: unknown) => e instanceof Error && /password/.test(e.message) && !e.message.includes('not-a-psk'),
  );
  assert.doesNotThrow(() => checkPassword('2022-blake3-aes-256-gcm', Buffer.alloc(32, 1).toString('base64')));
  assert.doesNotThrow(() => checkPassword('aes-256-gcm', 'any text'));
});

test('expiresAt takes the forms `ladder keys expire` takes and prints: a date (midnight UTC), minutes without seconds, no zone (UTC); an impossible date says why; a past one only with allowPastExpiry', async (t) => {
  // Before every date below, whenever the test runs.
  const h = await harness(tempDir(t), { clock: new ManualClock(Date.UTC(2026, 10, 22, 12, 0)) });
  t.after(() => h.close());
  json((await h.call('POST', '/access-keys', { name: 'a' })).body);
  const expiry = async (v: unknown): Promise<unknown> => {
    const r = await h.call('PUT', '/access-keys/0/expiry', { expiresAt: v });
    assert.equal(r.statusCode, 204, r.body);
    return json((await h.call('GET', '/access-keys/0')).body).expiresAt;
  };
  assert.equal(await expiry('2027-03-01'), '2027-03-01T00:00:00.000Z');
  assert.equal(await expiry('2027-03-01T18:30Z'), '2027-03-01T18:30:00.000Z', 'as keys list prints it');
  assert.equal(await expiry('2027-03-01T18:30'), '2027-03-01T18:30:00.000Z');
  assert.equal(await expiry('2027-03-01T18:30:00+02:00'), '2027-03-01T16:30:00.000Z');
  assert.equal(await expiry(1_800_000_000_000), '2027-01-15T08:00:00.000Z');
  const bad = await h.call('PUT', '/access-keys/0/expiry', { expiresAt: '2027-02-30' });
  assert.equal(bad.statusCode, 400);
  assert.deepEqual(json(bad.body), {
    code: 'InvalidArgumentError',
    message: 'Invalid "expiresAt": "2027-02-30": February 2027 has 28 days',
    field: 'expiresAt',
  });
  const created = await h.call('POST', '/access-keys', { name: 'b', expiresAt: '2027-04-01' });
  assert.equal(json(created.body).expiresAt, '2027-04-01T00:00:00.000Z');

  // A time already past: the key would stop at once (most often a mistake, such as seconds given
  // for ms). Refused on each route that takes one, nothing changed, unless allowPastExpiry.
  const past =
    'Invalid "expiresAt": 2026-11-01T00:00Z is in the past, so the key would stop working at once; disable it for that (PUT /access-keys/{id}/enabled), or send "allowPastExpiry": true';
  const refusals: [string, string, Record<string, unknown>][] = [
    ['PUT', '/access-keys/0/expiry', {}],
    ['POST', '/access-keys', { name: 'c' }],
    ['PUT', '/access-keys/new-id', { name: 'c' }],
    ['POST', '/access-keys/bulk', { count: 2 }],
  ];
  for (const [method, path, body] of refusals) {
    const r = await h.call(method, path, { ...body, expiresAt: '2026-11-01' });
    assert.equal(r.statusCode, 400, `${method} ${path}: ${r.body}`);
    assert.deepEqual(json(r.body), { code: 'InvalidArgumentError', message: past, field: 'expiresAt' });
  }
  const seconds = await h.call('PUT', '/access-keys/0/expiry', { expiresAt: 1_800_000_000 });
  assert.match(
    json(seconds.body).message as string,
    /^Invalid "expiresAt": 1970-01-21T20:00Z is in the past \(it counts ms since the epoch: was it given in seconds\?\)/,
  );
  assert.equal(
    json((await h.call('GET', '/access-keys/0')).body).expiresAt,
    '2027-01-15T08:00:00.000Z',
    'unchanged',
  );
  const listed = json((await h.call('GET', '/access-keys')).body).accessKeys as unknown[];
  assert.equal(listed.length, 2, 'no key made');
  const now = (v: unknown) => h.call('PUT', '/access-keys/0/expiry', { expiresAt: v });
  assert.equal((await now(Date.UTC(2026, 10, 22, 12, 0))).statusCode, 400, 'now is not the future');
  assert.equal(
    (await h.call('PUT', '/access-keys/0/expiry', { expiresAt: '2026-11-01', allowPastExpiry: true }))
      .statusCode,
    204,
  );
  assert.equal(json((await h.call('GET', '/access-keys/0')).body).state, 'expired');
  const made = await h.call('POST', '/access-keys', {
    name: 'd',
    expiresAt: '2026-11-01',
    allowPastExpiry: true,
  });
  assert.equal(made.statusCode, 201, made.body);
  assert.equal(json(made.body).state, 'expired');
});
