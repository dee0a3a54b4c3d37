import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/shared/clock.js';
import {
  KeyEnforcer,
  openStore,
  parseStoreLocation,
  HOUR_MS,
  type StoreLocation,
} from '../../src/store/index.js';
import { check2022RoundTrip } from './keys2022-roundtrip.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, startPostgres, type PgCluster } from '../helpers/postgres.js';

/**
 * The same Store on a real PostgreSQL server (fleet mode), started here with initdb/pg_ctl in a
 * temp dir on loopback. Skips loudly when PostgreSQL is not installed; fails instead under CI.
 */

let pg: PgCluster | undefined;
let loc: StoreLocation;

const SKIP = SKIP_WITHOUT_POSTGRES;

before(async () => {
  if (!HAVE_POSTGRES) return;
  pg = await startPostgres();
  loc = parseStoreLocation(pg.url, '.');
});

after(() => pg?.destroy());

const base = { method: 'chacha20-ietf-poly1305', secret: 'pw', port: 4444 };

test(
  'postgres: keys, 100 parallel creations/deletions, usage sums, restart, enforcement',
  { skip: SKIP },
  async () => {
    assert.equal(loc.kind, 'postgres');
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 10, 0));
    let store = await openStore(loc, { clock });
    assert.equal(store.dialect, 'postgres');
    const made = await Promise.all(
      Array.from({ length: 100 }, (_, i) => store.createKey({ ...base, name: `k${i}` })),
    );
    assert.equal(new Set(made.map((k) => k.id)).size, 100);
    await Promise.all([
      ...made.slice(0, 50).map((k) => store.deleteKey(k.id)),
      ...Array.from({ length: 50 }, () => store.createKey(base)),
    ]);
    assert.equal(await store.countKeys(), 100);
    const keep = made[60]!;
    store.addBytes(keep.id, 3_000_000_000, 4_000_000_000); // > 2^32: bigint columns
    clock.advance(HOUR_MS);
    store.addBytes(keep.id, 1, 1);
    assert.deepEqual((await store.usageSince(0)).get(keep.id), { up: 3_000_000_001, down: 4_000_000_001 });
    await store.updateKey(keep.id, { dataLimitBytes: 5_000_000_000, expiresAt: clock.now() + 1000 });
    await store.close();

    store = await openStore(loc, { clock });
    try {
      const k = await store.getKey(keep.id);
      assert.equal(k?.dataLimitBytes, 5_000_000_000);
      assert.equal(typeof k?.createdAt, 'number');
      assert.equal(k?.lastSeenAt, clock.now());
      const ids: string[] = [];
      const control = {
        setKeys: (keys: readonly { id: string }[]) => ids.splice(0, ids.length, ...keys.map((x) => x.id)),
        closeKeyConnections: () => 0,
        openConnections: () => new Map<string, number>(),
      };
      const enforcer = new KeyEnforcer({ store, control, clock });
      await enforcer.refresh();
      assert.equal(ids.length, 99, 'over-limit key left out');
      assert.ok(!ids.includes(keep.id));
    } finally {
      await store.close();
    }
  },
);

test(
  'postgres: 2022 keys (multi-user iPSK:uPSK, single-user) and identity PSKs round-trip',
  { skip: SKIP },
  async () => {
    await check2022RoundTrip(loc);
  },
);

test('postgres: a missing database is named as such, not as a failed migration', { skip: SKIP }, async () => {
  const url = pg!.url.replace(/\/[^/?]*$/, '/ladder_no_such_db');
  assert.notEqual(url, pg!.url);
  await assert.rejects(openStore(parseStoreLocation(url, '.'), {}), (err: Error) => {
    assert.match(
      err.message,
      /^store: no such database \(create it, or fix its name in the store URL\): .*ladder_no_such_db/,
    );
    assert.doesNotMatch(err.message, /migration/);
    return true;
  });
});
