import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/shared/clock.js';
import type { RuntimeKey, ServerControl } from '../../src/shared/control.js';
import {
  KeyEnforcer,
  openStore,
  parseStoreLocation,
  StoreError,
  windowStart,
  nextReset,
  HOUR_MS,
  DAY_MS,
  type KyselyStore,
} from '../../src/store/index.js';
import { check2022RoundTrip } from './keys2022-roundtrip.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function open(dir: string, clock = new ManualClock()): Promise<KyselyStore> {
  return openStore(parseStoreLocation(undefined, dir), {
    clock,
    defaults: { hostname: 'example.org', port: 4444 },
  });
}

const base = { method: 'chacha20-ietf-poly1305', secret: 'pw', port: 4444 };

class RecordingControl implements ServerControl {
  keys: RuntimeKey[] = [];
  closed: string[] = [];
  calls = 0;
  setKeys(keys: readonly RuntimeKey[]): void {
    this.keys = [...keys];
    this.calls++;
  }
  closeKeyConnections(id: string): number {
    this.closed.push(id);
    return 0;
  }
  openConnections(): ReadonlyMap<string, number> {
    return new Map();
  }
}

test('creates the SQLite file in WAL mode and initial settings', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  t.after(() => store.close());
  assert.ok(existsSync(join(dir, 'ladder.db')));
  await store.createKey(base);
  assert.ok(existsSync(join(dir, 'ladder.db-wal')), 'WAL file exists');
  assert.equal(
    statSync(join(dir, 'ladder.db')).mode & 0o777,
    0o600,
    'database (holds secrets) is owner-only',
  );
  const s = await store.getSettings();
  assert.equal(s.hostnameForAccessKeys, 'example.org');
  assert.equal(s.portForNewAccessKeys, 4444);
  assert.match(s.serverId, /^[0-9a-f-]{36}$/);
  assert.match(s.apiPrefix, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(s.accessKeyDataLimitBytes, null);
});

test('ids count up like Outline and skip ids taken by PUT', async (t) => {
  const store = await open(tempDir(t));
  t.after(() => store.close());
  const a = await store.createKey(base);
  await store.createKey({ ...base, id: '1' });
  const b = await store.createKey(base);
  assert.equal(a.id, '0');
  assert.equal(b.id, '2');
  await assert.rejects(
    store.createKey({ ...base, id: '1' }),
    (e: unknown) => e instanceof StoreError && e.code === 'KEY_EXISTS',
  );
  assert.deepEqual(
    (await store.listKeys()).map((k) => k.id),
    ['0', '1', '2'],
  );
});

test('bulk create is all or nothing', async (t) => {
  const store = await open(tempDir(t));
  t.after(() => store.close());
  await store.createKey({ ...base, id: 'taken' });
  await assert.rejects(store.createKeys([{ ...base }, { ...base }, { ...base, id: 'taken' }]));
  assert.equal(await store.countKeys(), 1);
  const made = await store.createKeys(Array.from({ length: 30 }, (_, i) => ({ ...base, name: `k${i}` })));
  assert.equal(made.length, 30);
  assert.equal(await store.countKeys(), 31);
});

test('200 parallel creations and deletions leave a consistent store', async (t) => {
  const store = await open(tempDir(t));
  t.after(() => store.close());
  const created = await Promise.all(
    Array.from({ length: 200 }, (_, i) => store.createKey({ ...base, name: `n${i}` })),
  );
  const ids = created.map((k) => k.id);
  assert.equal(new Set(ids).size, 200, 'ids unique');
  assert.equal(new Set(created.map((k) => k.accessToken)).size, 200, 'tokens unique');
  // Delete every other key while creating 200 more, all at once.
  const doomed = ids.filter((_, i) => i % 2 === 0);
  const results = await Promise.all([
    ...doomed.map((id) => store.deleteKey(id)),
    ...Array.from({ length: 200 }, (_, i) => store.createKey({ ...base, name: `m${i}` })),
  ]);
  assert.equal(results.slice(0, 100).filter((r) => r === true).length, 100);
  const keys = await store.listKeys();
  assert.equal(keys.length, 300);
  assert.equal(await store.countKeys(), 300);
  assert.equal(new Set(keys.map((k) => k.id)).size, 300);
  for (const id of doomed) assert.equal(await store.getKey(id), undefined);
  // Deleting again reports "not found" rather than failing.
  assert.equal(await store.deleteKey(doomed[0]!), false);
});

test('usage is buffered, bucketed by hour, and survives a restart', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock(Date.UTC(2026, 10, 10, 12, 30));
  let store = await open(dir, clock);
  const k = await store.createKey({ ...base, name: 'alice' });
  for (let i = 0; i < 1000; i++) store.addBytes(k.id, 10, 90); // no SQLite write per call
  clock.advance(HOUR_MS);
  store.addBytes(k.id, 1, 2);
  store.addBytes('no-such-key', 5, 5); // dropped at flush
  const u = await store.usageSince(clock.now() - 30 * DAY_MS);
  assert.deepEqual(u.get(k.id), { up: 10_001, down: 90_002 });
  assert.equal(u.has('no-such-key'), false);
  const buckets = await store.usageBuckets(0);
  assert.equal(buckets.length, 2);
  store.addBytes(k.id, 100, 0); // unflushed at close: close() must flush it
  await store.close();

  store = await open(dir, clock);
  t.after(() => store.close());
  const again = await store.getKey(k.id);
  assert.equal(again?.name, 'alice');
  assert.equal(again?.lastSeenAt, clock.now());
  assert.deepEqual((await store.usageSince(0)).get(k.id), { up: 10_101, down: 90_002 });
  // The window excludes old buckets.
  assert.equal((await store.usageSince(clock.now() + HOUR_MS)).get(k.id), undefined);
  // Deleting the key deletes its usage.
  await store.deleteKey(k.id);
  assert.equal((await store.usageBuckets(0)).length, 0);
});

test('windows: rolling 30 days, UTC day, ISO week, month', () => {
  const now = Date.UTC(2026, 10, 22, 15, 0); // Sunday 22 Nov 2026
  assert.equal(windowStart('rolling30d', now), now - 30 * DAY_MS);
  assert.equal(windowStart('daily', now), Date.UTC(2026, 10, 22));
  assert.equal(windowStart('weekly', now), Date.UTC(2026, 10, 16)); // Monday
  assert.equal(windowStart('monthly', now), Date.UTC(2026, 10, 1));
  assert.equal(nextReset('monthly', now), Date.UTC(2026, 11, 1));
  assert.equal(nextReset('rolling30d', now), null);
});

test('enforcer: limit below usage, expiry and disable remove the key from setKeys', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 10, 0));
  const store = await open(tempDir(t), clock);
  t.after(() => store.close());
  const control = new RecordingControl();
  const enforcer = new KeyEnforcer({ store, control, clock, intervalMs: 2000 });
  const a = await store.createKey({ ...base, name: 'a' });
  const b = await store.createKey({ ...base, name: 'b' });
  const c = await store.createKey({ ...base, name: 'c' });
  await enforcer.start();
  t.after(() => enforcer.stop());
  assert.deepEqual(control.keys.map((k) => k.id).sort(), [a.id, b.id, c.id]);

  store.addBytes(a.id, 600, 600);
  await store.updateKey(a.id, { dataLimitBytes: 1000 });
  await store.updateKey(b.id, { expiresAt: clock.now() + 5000 });
  await enforcer.refresh();
  assert.deepEqual(control.keys.map((k) => k.id).sort(), [b.id, c.id], 'over-limit key removed');
  assert.deepEqual(control.closed, [a.id]);

  // Expiry is noticed by the periodic loop without any explicit refresh.
  clock.advance(6000);
  await enforcer.refresh(); // let the timer-started evaluation settle
  assert.deepEqual(
    control.keys.map((k) => k.id),
    [c.id],
    'expired key removed',
  );
  assert.equal(enforcer.statuses.find((s) => s.key.id === b.id)?.state, 'expired');

  await store.updateKey(c.id, { enabled: false });
  await enforcer.refresh();
  assert.equal(control.keys.length, 0);

  // Raising the limit and re-enabling bring keys back; the server default limit also applies.
  await store.updateKey(a.id, { dataLimitBytes: null });
  await store.updateKey(c.id, { enabled: true });
  await enforcer.refresh();
  assert.deepEqual(control.keys.map((k) => k.id).sort(), [a.id, c.id]);
  await store.updateSettings({ accessKeyDataLimitBytes: 100 });
  await enforcer.refresh();
  assert.deepEqual(
    control.keys.map((k) => k.id),
    [c.id],
  );
  const calls = control.calls;
  await enforcer.refresh();
  assert.equal(control.calls, calls, 'setKeys only called when the usable set changes');
});

test('enforcer: a monthly quota resets at the start of the month', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 10, 30, 22, 0));
  const store = await open(tempDir(t), clock);
  t.after(() => store.close());
  const control = new RecordingControl();
  const enforcer = new KeyEnforcer({ store, control, clock });
  const k = await store.createKey({ ...base, dataLimitBytes: 100, limitPeriod: 'monthly' });
  store.addBytes(k.id, 0, 150);
  await enforcer.refresh();
  assert.equal(control.keys.length, 0);
  clock.advance(3 * HOUR_MS); // 1 Dec, 01:00 UTC
  await enforcer.refresh();
  assert.deepEqual(
    control.keys.map((x) => x.id),
    [k.id],
  );
});

test('a store path that cannot be created fails with a clear message', async (t) => {
  const dir = tempDir(t);
  const store = await open(dir);
  await store.close();
  await assert.rejects(
    openStore({ kind: 'sqlite', path: join(dir, 'ladder.db', 'x.db') }), // parent is a file
    (e: unknown) => e instanceof StoreError && /cannot open SQLite file/.test(e.message),
  );
});

test('usage window totals are cached, advanced by flushes, and re-read after the TTL', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 10, 0));
  const a = await openStore(parseStoreLocation(undefined, dir), { clock, usageCacheTtlMs: 60_000 });
  t.after(() => a.close());
  const k = await a.createKey(base);
  a.addBytes(k.id, 10, 10);
  const since = clock.now() - 30 * DAY_MS;
  assert.deepEqual((await a.usageSince(since)).get(k.id), { up: 10, down: 10 });
  a.addBytes(k.id, 5, 0); // applied to the cached window by the flush, no re-query
  assert.deepEqual((await a.usageSince(since)).get(k.id), { up: 15, down: 10 });
  // Another process (or fleet node) writes usage: seen once the cache entry expires.
  const b = await openStore(parseStoreLocation(undefined, dir), { clock });
  b.addBytes(k.id, 100, 100);
  await b.close();
  assert.deepEqual((await a.usageSince(since)).get(k.id), { up: 15, down: 10 }, 'cached');
  clock.advance(61_000);
  assert.deepEqual((await a.usageSince(since)).get(k.id), { up: 115, down: 110 }, 're-read after TTL');
  // Mutating a returned map does not touch the cache.
  (await a.usageSince(since)).get(k.id)!.up = 0;
  assert.equal((await a.usageSince(since)).get(k.id)!.up, 115);
  await a.deleteKey(k.id);
  assert.equal((await a.usageSince(since)).get(k.id), undefined);
});

test('2022 keys (multi-user iPSK:uPSK, single-user) and identity PSKs round-trip on SQLite', async (t) => {
  await check2022RoundTrip(parseStoreLocation(undefined, tempDir(t)));
});
