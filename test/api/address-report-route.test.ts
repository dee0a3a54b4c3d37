/**
 * POST /access/{token}/report (blocked-address reports, issue 16) through the API on a real SQLite
 * store with a fleet view: unknown token 404, bad address 400, a disabled key 403, a key that
 * reports too often 429 (and its repeats count once: negative control, the address stays in the
 * keys), a second key marks the address and the dynamic key leaves it out, the node's other
 * address stays; without a fleet the route does not exist.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildApi } from '../../src/api/index.js';
import { REPORTS_PER_KEY } from '../../src/api/address-reports.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { RecordingControl, tempDir } from './helpers.js';

test('blocked-address report route', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(parseStoreLocation(undefined, dir), {
    defaults: { hostname: 'example.org', port: 4444 },
  });
  t.after(() => store.close());
  await store
    .nodes()
    .register(
      { name: 'n1', addresses: ['198.51.100.1', '198.51.100.2'], port: 4444, transports: [], version: 'x' },
      'i',
    );
  const fleet = {
    nodes: store.nodes(),
    self: () => ({ name: 'n1', keysVersion: 0, listening: false, notifications: 0 }),
    reportPolicy: { keys: 2, windowMs: 600_000 },
  };
  const app = await buildApi({ store, control: new RecordingControl(), enforceIntervalMs: 500, fleet });
  t.after(() => app.close());
  const plain = await buildApi({ store, control: new RecordingControl(), enforceIntervalMs: 500 });
  t.after(() => plain.close());

  const keys = await store.createKeys(
    ['a', 'b', 'c'].map((name) => ({
      method: 'chacha20-ietf-poly1305',
      secret: `s-${name}-0123456789`,
      port: 4444,
      name,
    })),
  );
  const token = async (i: number): Promise<string> => (await store.getKey(keys[i]!.id))!.accessToken;
  const report = (tok: string, body: unknown, suffix = '/report', a = app) =>
    a.inject({
      method: 'POST',
      url: `/access/${tok}${suffix}`,
      payload: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
  const hosts = async (tok: string): Promise<string[]> =>
    (
      JSON.parse((await app.inject({ url: `/access/${tok}/sip008` })).body) as {
        servers: { server: string }[];
      }
    ).servers.map((s) => s.server);

  assert.equal((await report('nope', { address: '198.51.100.1' })).statusCode, 404);
  assert.equal((await report(await token(0), { address: '198.51.100.1' }, '/report', plain)).statusCode, 404);
  const bad = await report(await token(0), { address: 'not a host!' });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.body, /address/);
  assert.equal((await report(await token(0), {})).statusCode, 400);

  // One key, many reports: counted once, then refused.
  for (let i = 0; i < REPORTS_PER_KEY; i++)
    assert.equal((await report(await token(0), { address: '198.51.100.1' })).statusCode, 204);
  const limited = await report(await token(0), { address: '198.51.100.1' });
  assert.equal(limited.statusCode, 429);
  assert.ok(Number(limited.headers['retry-after']) > 0);
  assert.deepEqual((await store.nodes().get('n1'))!.suspectedAddresses, [], 'one key is not enough');
  assert.deepEqual((await hosts(await token(2))).sort(), ['198.51.100.1', '198.51.100.2']);
  // An address that is no node's: the same answer (no oracle), nothing stored.
  assert.equal((await report(await token(1), { address: '192.0.2.1' })).statusCode, 204);

  // A disabled key may not report.
  await store.updateKey(keys[2]!.id, { enabled: false });
  await new Promise((r) => setTimeout(r, 700)); // the enforcer's interval
  assert.equal((await report(await token(2), { address: '198.51.100.1' })).statusCode, 403);
  await store.updateKey(keys[2]!.id, { enabled: true });

  // A second key (through the SIP008 URL's /report): the address is suspected, out of the keys.
  assert.equal((await report(await token(1), { address: '198.51.100.1' }, '/sip008/report')).statusCode, 204);
  assert.deepEqual((await store.nodes().get('n1'))!.suspectedAddresses, ['198.51.100.1']);
  assert.deepEqual(await hosts(await token(0)), ['198.51.100.2']);
  const nodes = JSON.parse(
    (await app.inject({ url: `/${(await store.getSettings()).apiPrefix}/nodes` })).body,
  ) as { nodes: { suspectedAddresses?: string[] }[] };
  assert.deepEqual(nodes.nodes[0]!.suspectedAddresses, ['198.51.100.1']);
});

test('blocked-address threshold: a store setting, shown by GET /server, set by PUT /server/blocked-address-reports', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(parseStoreLocation(undefined, dir), { defaults: { port: 4444 } });
  t.after(() => store.close());
  await store
    .nodes()
    .register({ name: 'n1', addresses: ['198.51.100.1'], port: 4444, transports: [], version: 'x' }, 'i');
  // No fixed policy: every report reads the store's setting.
  const fleet = {
    nodes: store.nodes(),
    self: () => ({ name: 'n1', keysVersion: 0, listening: false, notifications: 0 }),
  };
  const app = await buildApi({ store, control: new RecordingControl(), enforceIntervalMs: 500, fleet });
  t.after(() => app.close());
  const prefix = (await store.getSettings()).apiPrefix;
  const admin = (method: 'GET' | 'PUT', path: string, body?: unknown) =>
    app.inject({
      method,
      url: `/${prefix}${path}`,
      ...(body !== undefined
        ? { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }
        : {}),
    });
  const shown = async (): Promise<unknown> =>
    (JSON.parse((await admin('GET', '/server')).body) as { blockedAddressReports?: unknown })
      .blockedAddressReports;
  assert.deepEqual(await shown(), { keys: 3, windowSeconds: 600 });

  const keys = await store.createKeys(
    ['a', 'b'].map((name) => ({
      method: 'chacha20-ietf-poly1305',
      secret: `s-${name}-0123456789`,
      port: 4444,
      name,
    })),
  );
  const report = async (i: number) =>
    app.inject({
      method: 'POST',
      url: `/access/${(await store.getKey(keys[i]!.id))!.accessToken}/report`,
      payload: JSON.stringify({ address: '198.51.100.1' }),
      headers: { 'content-type': 'application/json' },
    });
  const suspected = async (): Promise<string[]> => (await store.nodes().get('n1'))!.suspectedAddresses;

  // Bad values: 400, one line naming the field; nothing changes.
  for (const body of [
    { keys: 0, windowSeconds: 600 },
    { keys: 2, windowSeconds: 10 },
    { keys: 2.5, windowSeconds: 600 },
    {},
  ]) {
    const r = await admin('PUT', '/server/blocked-address-reports', body);
    assert.equal(r.statusCode, 400, JSON.stringify(body));
    const msg = (JSON.parse(r.body) as { message: string }).message;
    assert.ok(!msg.includes('\n'), msg);
    assert.match(msg, /keys|windowSeconds/);
  }
  assert.deepEqual(await shown(), { keys: 3, windowSeconds: 600 });

  // Negative control: at the default (3), two keys do not mark the address.
  assert.equal((await report(0)).statusCode, 204);
  assert.equal((await report(1)).statusCode, 204);
  assert.deepEqual(await suspected(), []);
  // Set to 2 through the API: the next report (any node's API reads the store) marks it.
  assert.equal(
    (await admin('PUT', '/server/blocked-address-reports', { keys: 2, windowSeconds: 900 })).statusCode,
    204,
  );
  assert.deepEqual(await shown(), { keys: 2, windowSeconds: 900 });
  assert.equal((await report(1)).statusCode, 204);
  assert.deepEqual(await suspected(), ['198.51.100.1']);
});
