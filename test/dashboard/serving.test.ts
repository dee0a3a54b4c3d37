/**
 * How the API serves the dashboard (no browser needed): the app and its hashed assets only under
 * the secret prefix, with their content types, cache headers, precompressed bodies and the CSP;
 * a wrong prefix gets exactly what any unknown path gets.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/index.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { RecordingControl, tempDir } from '../api/helpers.js';
import { buildDashboard } from './browser.js';

async function app(
  t: TestContext,
  dashboardDir: string | null,
): Promise<{ app: FastifyInstance; prefix: string }> {
  const store = await openStore(parseStoreLocation(undefined, tempDir(t)), {
    defaults: { hostname: 'example.org', port: 4444 },
  });
  const a = await buildApi({ store, control: new RecordingControl(), dashboardDir });
  await a.ready();
  t.after(async () => {
    await a.close();
    await store.close();
  });
  return { app: a, prefix: (await store.getSettings()).apiPrefix };
}

const withoutDate = (h: Record<string, unknown>): Record<string, unknown> => {
  const { date: _date, ...rest } = h;
  return rest;
};

test('dashboard under the prefix: index, hashed assets, encodings, cache headers, CSP', async (t) => {
  const dir = buildDashboard();
  const { app: a, prefix } = await app(t, dir);
  const get = (url: string, encoding?: string) =>
    a.inject({ method: 'GET', url, headers: encoding === undefined ? {} : { 'accept-encoding': encoding } });

  const bare = await get(`/${prefix}`);
  assert.equal(bare.statusCode, 308);
  assert.equal(bare.headers.location, `/${prefix}/`);

  const index = await get(`/${prefix}/`);
  assert.equal(index.statusCode, 200);
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(index.headers['cache-control'], 'no-cache');
  assert.match(
    String(index.headers['content-security-policy']),
    /default-src 'none'; script-src 'self'; style-src 'self'/,
  );
  assert.equal(index.headers['x-frame-options'], 'DENY');
  const script = /src="assets\/(main-[A-Z0-9]{8}\.js)"/.exec(index.body)?.[1];
  const style = /href="assets\/(main-[A-Z0-9]{8}\.css)"/.exec(index.body)?.[1];
  assert.ok(script && style, 'index.html names the hashed script and style');
  assert.doesNotMatch(index.body, /https?:\/\//, 'no asset from elsewhere (no CDN)');

  const raw = readFileSync(join(dir, 'assets', script));
  const br = await get(`/${prefix}/assets/${script}`, 'gzip, deflate, br');
  assert.equal(br.statusCode, 200);
  assert.equal(br.headers['content-encoding'], 'br');
  assert.equal(br.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(br.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.equal(br.headers.vary, 'accept-encoding');
  assert.deepEqual(brotliDecompressSync(br.rawPayload), raw);
  const gz = await get(`/${prefix}/assets/${script}`, 'gzip');
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.deepEqual(gunzipSync(gz.rawPayload), raw);
  const refusesBr = await get(`/${prefix}/assets/${script}`, 'br;q=0, gzip');
  assert.equal(refusesBr.headers['content-encoding'], 'gzip', 'br;q=0 is a refusal');
  const plain = await get(`/${prefix}/assets/${script}`);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.deepEqual(plain.rawPayload, raw);
  const css = await get(`/${prefix}/assets/${style}`, 'br');
  assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');

  // Only built asset names: no other file of the folder, no path tricks.
  for (const name of ['index.html', `${script}.br`, '..%2F..%2Fpackage.json', 'main-ZZZZZZZZ.js'])
    assert.equal((await get(`/${prefix}/assets/${name}`)).statusCode, 404, name);
  assert.ok(
    readdirSync(join(dir, 'assets')).some((f) => f.endsWith('.gz')),
    'gzip siblings are built',
  );
});

test('a wrong secret prefix gets exactly the response of any unknown path', async (t) => {
  const dir = buildDashboard();
  const { app: a, prefix } = await app(t, dir);
  const index = await a.inject({ method: 'GET', url: `/${prefix}/` });
  const script = /src="assets\/([^"]+)"/.exec(index.body)![1]!;
  const unknown = await a.inject({
    method: 'GET',
    url: '/no-such-path',
    headers: { 'accept-encoding': 'br' },
  });
  assert.equal(unknown.statusCode, 404);
  const wrong = prefix.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
  for (const url of [
    `/${wrong}`,
    `/${wrong}/`,
    `/${wrong}/assets/${script}`,
    `/${prefix}x/`,
    '/',
    '/assets/' + script,
  ]) {
    const r = await a.inject({ method: 'GET', url, headers: { 'accept-encoding': 'br' } });
    assert.equal(r.statusCode, unknown.statusCode, url);
    assert.deepEqual(withoutDate(r.headers), withoutDate(unknown.headers), url);
    assert.equal(r.body, unknown.body, url);
  }
  assert.equal(index.statusCode, 200, 'control: the right prefix serves the app');
});

test('no dashboard built: the prefix says so (503), outside it nothing changes; disabled: 404', async (t) => {
  const missing = await app(t, join(tempDir(t), 'nothing-here'));
  const r = await missing.app.inject({ method: 'GET', url: `/${missing.prefix}/` });
  assert.equal(r.statusCode, 503);
  assert.match(r.body, /npm run build/);
  const off = await app(t, null);
  assert.equal((await off.app.inject({ method: 'GET', url: `/${off.prefix}/` })).statusCode, 404);
});
