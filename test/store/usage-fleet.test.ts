import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ManualClock } from '../../src/shared/clock.js';
import type { ServerControl } from '../../src/shared/control.js';
import { createLogger } from '../../src/shared/logger.js';
import {
  evaluateKeys,
  HOUR_MS,
  KeyEnforcer,
  loadKeyCache,
  openStore,
  parseStoreLocation,
  saveKeyCache,
  StoreError,
  type KyselyStore,
  type StoreLocation,
  type StoreOptions,
} from '../../src/store/index.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, startPostgres, type PgCluster } from '../helpers/postgres.js';

/**
 * Fleet-wide usage on one store (issue 16): numbered batches make a retried write count once,
 * several writers' usage is read back as deltas equal to a full sum, and a database outage loses
 * no byte. Real PostgreSQL (test/helpers/postgres.ts); the idempotence test also runs on SQLite.
 */

let pg: PgCluster | undefined;
let loc: StoreLocation;
const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'ladder-usage-fleet-'));
  dirs.push(d);
  return d;
};

before(async () => {
  if (HAVE_POSTGRES) {
    pg = await startPostgres();
    loc = parseStoreLocation(pg.url, '.');
  }
});
after(() => {
  pg?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const base = { method: 'chacha20-ietf-poly1305', secret: 'pw', port: 4444 };
/** No background flushes: the test decides when a batch is written. */
const quiet: StoreOptions = { flushIntervalMs: 3_600_000 };

/** A commit whose acknowledgement is lost once, then a retry: counted once (or twice without the seq). */
async function lostAck(where: StoreLocation, newSeqOnRetry: boolean, writerId: string): Promise<number> {
  let failNext = true;
  const store = await openStore(where, {
    ...quiet,
    writerId,
    testing: {
      newSeqOnRetry,
      afterCommit: () => {
        if (failNext) {
          failNext = false;
          throw new Error('injected: the commit happened, its acknowledgement was lost');
        }
      },
    },
  });
  try {
    const key = await store.createKey(base);
    store.addBytes(key.id, 1000, 234);
    await assert.rejects(store.flush(), /acknowledgement was lost/);
    assert.equal(store.pendingUsageEntries, 1, 'the unacknowledged batch is kept for a retry');
    await store.flush();
    assert.equal(store.pendingUsageEntries, 0);
    const u = (await store.usageSince(0)).get(key.id)!;
    return u.up + u.down;
  } finally {
    await store.close();
  }
}

test('a batch retried after a lost commit acknowledgement counts once (SQLite; negative control: twice without the seq)', async () => {
  const dir = tmp();
  assert.equal(await lostAck(parseStoreLocation(join(dir, 'a.db'), dir), false, 'n1'), 1234);
  assert.equal(await lostAck(parseStoreLocation(join(dir, 'b.db'), dir), true, 'n1'), 2468);
});

test(
  'a batch retried after a lost commit acknowledgement counts once (PostgreSQL; negative control: twice without the seq)',
  { skip: SKIP_WITHOUT_POSTGRES },
  async () => {
    assert.equal(await lostAck(loc, false, 'retry-a'), 1234);
    assert.equal(await lostAck(loc, true, 'retry-b'), 2468);
  },
);

/** A ServerControl that only remembers which keys it was told to serve. */
function servingControl(): { served: Set<string>; control: ServerControl } {
  const served = new Set<string>();
  const control: ServerControl = {
    setKeys: (ks) => {
      served.clear();
      for (const k of ks) served.add(k.id);
    },
    closeKeyConnections: () => 0,
    openConnections: () => new Map<string, number>(),
  };
  return { served, control };
}

/** Deterministic pseudo-random numbers (a failing seed can be replayed). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test(
  'three writers: the delta-read totals and the enforcer statuses equal a full read after every step',
  { skip: SKIP_WITHOUT_POSTGRES },
  async () => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 10, 30));
    const writers: KyselyStore[] = [];
    for (const w of ['w1', 'w2', 'w3']) writers.push(await openStore(loc, { ...quiet, clock, writerId: w }));
    // The reference re-reads everything each time (a cache that is always stale).
    const full = await openStore(loc, { ...quiet, clock, usageCacheTtlMs: 0, writerId: 'full' });
    try {
      const keys = [];
      for (let i = 0; i < 6; i++)
        keys.push(
          await writers[0]!.createKey({
            ...base,
            name: `eq${i}`,
            dataLimitBytes: 3_000 + i * 2_000,
            limitPeriod: (['rolling30d', 'daily', 'weekly', 'monthly'] as const)[i % 4]!,
          }),
        );
      const reader = writers[0]!;
      const r = rng(16);
      let overLimitSeen = 0;
      for (let step = 0; step < 120; step++) {
        const w = writers[Math.floor(r() * 3)]!;
        const op = r();
        if (op < 0.5)
          w.addBytes(keys[Math.floor(r() * keys.length)]!.id, Math.floor(r() * 900), Math.floor(r() * 900));
        else if (op < 0.8) await w.flush();
        else if (op < 0.9)
          clock.advance(Math.floor(r() * 20 * 60_000)); // up to 20 min; bytes wait in old hours
        else clock.advance(3 * HOUR_MS); // a writer flushing hours-old bytes: forces a full read
        if (step % 3 !== 0) continue;
        const now = clock.now();
        for (const since of [0, Math.floor(now / HOUR_MS) * HOUR_MS - 2 * HOUR_MS]) {
          // Flush everyone, then compare (the reader's own flush runs inside usageSince).
          for (const x of writers) await x.flush();
          assert.deepEqual(
            Object.fromEntries(await reader.usageSince(since)),
            Object.fromEntries(await full.usageSince(since)),
            `usage since ${since} at step ${step}`,
          );
        }
        const a = await evaluateKeys(reader, now);
        const b = await evaluateKeys(full, now);
        assert.deepEqual(
          a.map((s) => [s.key.id, s.state, s.usedBytes]),
          b.map((s) => [s.key.id, s.state, s.usedBytes]),
          `statuses at step ${step}`,
        );
        overLimitSeen += a.filter((s) => s.state === 'over_limit').length;
      }
      assert.ok(overLimitSeen > 0, 'the run reached some limits (the comparison covered both states)');
    } finally {
      for (const w of writers) await w.close();
      await full.close();
    }
  },
);

test(
  "another node's usage reaches this node's enforcer at its next evaluation after that node's flush (the overshoot bound's terms)",
  { skip: SKIP_WITHOUT_POSTGRES },
  async () => {
    const x = await openStore(loc, { ...quiet, writerId: 'bound-x' });
    const y = await openStore(loc, { ...quiet, writerId: 'bound-y' });
    try {
      const key = await x.createKey({ ...base, dataLimitBytes: 10_000 });
      const { served, control } = servingControl();
      const enforcer = new KeyEnforcer({ store: x, control, intervalMs: 3_600_000 });
      await enforcer.start();
      try {
        assert.ok(served.has(key.id));
        await x.usageSince(0); // x's totals are cached from here on (a 5-min full-read period)
        y.addBytes(key.id, 6_000, 3_000);
        x.addBytes(key.id, 600, 500); // neither node alone reaches 10,000
        await enforcer.refresh();
        assert.ok(served.has(key.id), 'y has not flushed: under the limit as far as the fleet knows');
        await y.flush();
        await enforcer.refresh();
        assert.ok(!served.has(key.id), 'one flush of y and one evaluation of x: refused on x');
        assert.equal(enforcer.statuses.find((st) => st.key.id === key.id)?.usedBytes, 10_100);
      } finally {
        enforcer.stop();
      }
    } finally {
      await x.close();
      await y.close();
    }
  },
);

test(
  'PostgreSQL stopped: usage is kept in memory, the outage is logged once, every byte is written when it returns',
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 60_000 },
  async () => {
    const sink = new PassThrough();
    const lines: string[] = [];
    sink.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    const logger = createLogger({ level: 'info', destination: sink });
    const store = await openStore(loc, { flushIntervalMs: 100, writerId: 'outage', logger });
    try {
      const key = await store.createKey(base);
      // The enforcer's own clock decides expiry: moved past it during the outage, not waited for.
      const enforcerClock = new ManualClock(Date.now());
      const expiring = await store.createKey({ ...base, expiresAt: enforcerClock.now() + 60_000 });
      const { served, control } = servingControl();
      const enforcer = new KeyEnforcer({ store, control, clock: enforcerClock, intervalMs: 3_600_000 });
      await enforcer.start();
      const mine = (): string[] => [key.id, expiring.id].filter((id) => served.has(id)); // (other tests' keys too)
      assert.deepEqual(mine(), [key.id, expiring.id]);
      store.addBytes(key.id, 100, 10);
      await store.flush();
      pg!.stop();
      for (let i = 0; i < 20; i++) {
        store.addBytes(key.id, 7, 3);
        await new Promise((r) => setTimeout(r, 50)); // the 100 ms flush timer retries meanwhile
      }
      await assert.rejects(store.flush());
      assert.equal(store.available, false);
      // Expiry needs no database: the expired key stops, the other keeps working.
      await assert.rejects(enforcer.refresh());
      assert.deepEqual(
        mine(),
        [key.id, expiring.id],
        'nothing changes while the store is away and nothing expired',
      );
      enforcerClock.advance(61_000);
      await assert.rejects(enforcer.refresh());
      assert.deepEqual(mine(), [key.id]);
      enforcer.stop();
      // One key, one hour: the bytes counted during the outage are one or two entries, not twenty.
      assert.ok(store.pendingUsageEntries <= 2, `pending entries: ${store.pendingUsageEntries}`);
      pg!.start();
      await store.flush();
      assert.equal(store.available, true);
      const u = (await store.usageSince(0)).get(key.id)!;
      assert.deepEqual(u, { up: 100 + 20 * 7, down: 10 + 20 * 3 });
      const downs = lines.filter((l) => l.includes('store unreachable'));
      const ups = lines.filter((l) => l.includes('store reachable again'));
      assert.equal(downs.length, 1, lines.join('\n'));
      assert.equal(ups.length, 1, lines.join('\n'));
      assert.ok(!lines.join('').includes(pg!.url), 'no connection string in the log');
    } finally {
      await store.close();
    }
  },
);

test('key cache: owner-only, atomic, round-trips; a damaged one is refused in one line naming the file', () => {
  const dir = tmp();
  const file = join(dir, 'keys-cache.json');
  assert.equal(loadKeyCache(file), undefined);
  const keys = [{ id: '1', method: 'chacha20-ietf-poly1305', secret: 's3cret', port: 4000 }];
  saveKeyCache(file, { savedAt: 1, port: 4000, keys });
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(loadKeyCache(file)?.keys, keys);
  for (const bad of [
    '{"version":1,"port":4000',
    '{"version":1,"savedAt":1,"port":4000,"keys":[{"id":1}]}',
    '[]',
  ]) {
    writeFileSync(file, bad);
    assert.throws(
      () => loadKeyCache(file),
      (err: unknown) =>
        err instanceof StoreError &&
        err.message.includes(file) &&
        !err.message.includes('\n') &&
        !err.message.includes('s3cret'),
    );
  }
});
