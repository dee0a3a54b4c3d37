/**
 * The two routes the dashboard's overview and key page read: GET /server/usage-history (bytes per
 * UTC day, server-wide or one key) and GET /server/status (key states, open connections,
 * transports). Real SQLite store, the API through inject.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/shared/clock.js';
import { harness, tempDir } from './helpers.js';

const DAY = 86_400_000;

test('GET /server/usage-history: one entry per UTC day, oldest first, today last; per key with keyId', async (t) => {
  const start = Date.UTC(2026, 10, 3, 12); // noon, 3 November 2026
  const clock = new ManualClock(start);
  const h = await harness(tempDir(t), { clock });
  t.after(() => h.close());
  const a = JSON.parse((await h.call('POST', '/access-keys', { name: 'a' })).body) as { id: string };
  const b = JSON.parse((await h.call('POST', '/access-keys', { name: 'b' })).body) as { id: string };
  h.store.addBytes(a.id, 100, 1000);
  h.store.addBytes(b.id, 5, 5);
  await h.store.flush();
  clock.advance(2 * DAY);
  h.store.addBytes(a.id, 1, 2);
  await h.store.flush();

  const all = await h.call('GET', '/server/usage-history?days=3');
  assert.equal(all.statusCode, 200);
  const days = (
    JSON.parse(all.body) as { days: { startTimestampMs: number; up: number; down: number; bytes: number }[] }
  ).days;
  assert.deepEqual(
    days.map((d) => [d.startTimestampMs, d.up, d.down, d.bytes]),
    [
      [Date.UTC(2026, 10, 3), 105, 1005, 1110],
      [Date.UTC(2026, 10, 4), 0, 0, 0],
      [Date.UTC(2026, 10, 5), 1, 2, 3],
    ],
  );
  const one = JSON.parse((await h.call('GET', `/server/usage-history?days=3&keyId=${a.id}`)).body) as {
    days: { bytes: number }[];
  };
  assert.deepEqual(
    one.days.map((d) => d.bytes),
    [1100, 0, 3],
  );
  const other = JSON.parse((await h.call('GET', `/server/usage-history?days=3&keyId=${b.id}`)).body) as {
    days: { bytes: number }[];
  };
  assert.deepEqual(
    other.days.map((d) => d.bytes),
    [10, 0, 0],
    'control: the other key has its own',
  );
  const dflt = JSON.parse((await h.call('GET', '/server/usage-history')).body) as { days: unknown[] };
  assert.equal(dflt.days.length, 30, '30 days by default');
  const outside = JSON.parse((await h.call('GET', '/server/usage-history?days=2')).body) as {
    days: { bytes: number }[];
  };
  assert.deepEqual(
    outside.days.map((d) => d.bytes),
    [0, 3],
    'older days are left out',
  );

  for (const bad of ['days=0', 'days=91', 'days=x']) {
    const r = await h.call('GET', `/server/usage-history?${bad}`);
    assert.equal(r.statusCode, 400, bad);
    assert.equal((JSON.parse(r.body) as { field?: string }).field, 'days', bad);
  }
});

test('GET /server/status: key states, open connections and the raw Shadowsocks transport', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const ids: string[] = [];
  for (const name of ['a', 'b', 'c'])
    ids.push((JSON.parse((await h.call('POST', '/access-keys', { name })).body) as { id: string }).id);
  assert.equal((await h.call('PUT', `/access-keys/${ids[1]}/enabled`, { enabled: false })).statusCode, 204);
  assert.equal(
    (await h.call('PUT', `/access-keys/${ids[2]}/expiry`, { expiresAt: 1000, allowPastExpiry: true }))
      .statusCode,
    204,
  );
  h.control.open.set(ids[0]!, 2);
  h.control.open.set(ids[1]!, 1);
  const r = await h.call('GET', '/server/status');
  assert.equal(r.statusCode, 200);
  const s = JSON.parse(r.body) as {
    keys: Record<string, number>;
    openConnections: number;
    transports: { kind: string; ports: number[]; methods?: string[] }[];
    startedTimestampMs: number;
    fleet?: unknown;
  };
  assert.deepEqual(s.keys, { total: 3, active: 1, disabled: 1, expired: 1, over_limit: 0 });
  assert.equal(s.openConnections, 3);
  assert.deepEqual(s.transports, [
    { kind: 'shadowsocks', ports: [4444], methods: ['chacha20-ietf-poly1305'] },
  ]);
  assert.ok(s.startedTimestampMs <= Date.now());
  assert.equal(s.fleet, undefined, 'no fleet: the dashboard shows no Nodes page');
  // Like every admin route, it does not exist without the secret prefix.
  const outside = await h.app.inject({ method: 'GET', url: '/server/status' });
  assert.equal(outside.statusCode, 404);
});
