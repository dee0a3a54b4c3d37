import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import type Pg from 'pg';
import { createLogger } from '../../src/shared/logger.js';
import {
  createAccessKeys,
  DEFAULT_POOL_SIZE,
  KeyEnforcer,
  openStore,
  parseStoreLocation,
} from '../../src/store/index.js';
import { postgresPool } from '../../src/store/dialect.js';
import { systemClock } from '../../src/shared/clock.js';
import { waitFor } from '../helpers/wait.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { SecretsControl } from '../helpers/secrets-control.js';

/**
 * Issue 16's scale bench: half of 100 nodes never applied a 10,000-key change set. Measured cause:
 * every node's usage flush sat in a row-lock wait (minutes: a statement the client had given up on
 * kept running, and its locks, on a connection the pool had closed), and each key evaluation
 * reads usage after the node's flush, so it sat behind it. Also: 100 nodes × a pool of 10 ran
 * PostgreSQL out of connections. Real PostgreSQL (test/helpers/postgres.ts).
 */

const { Client } = createRequire(import.meta.url)('pg') as typeof Pg;
let pg: PgCluster | undefined;
before(async () => {
  if (HAVE_POSTGRES) pg = await startPostgres({ maxConnections: 12 });
});
after(() => pg?.destroy());

const logSink = (): {
  logger: ReturnType<typeof createLogger>;
  lines: () => { msg: string; level: number }[];
} => {
  const sink = new PassThrough();
  let text = '';
  sink.on('data', (b: Buffer) => (text += b.toString()));
  return {
    logger: createLogger({ level: 'info', destination: sink }),
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { msg: string; level: number }),
  };
};

test(
  'a usage flush blocked by a row lock gives up soon; the key evaluation behind it still applies a change; nothing is lost or doubled',
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 120_000 },
  async () => {
    const store = await openStore(parseStoreLocation(pg!.url, '.'), { flushIntervalMs: 3_600_000 });
    const admin = new Client({ connectionString: pg!.url });
    await admin.connect();
    try {
      const [used, changed] = (await createAccessKeys(store, { method: 'chacha20-ietf-poly1305', count: 2 }))
        .keys;
      const control = new SecretsControl();
      const enforcer = new KeyEnforcer({ store, control, intervalMs: 3_600_000 });
      await enforcer.start();
      const usageInDb = async (): Promise<number> => {
        const r = await admin.query<{ n: string | null }>(
          'select sum(up_bytes + down_bytes) as n from usage where key_id = $1',
          [used!.id],
        );
        return Number(r.rows[0]?.n ?? 0);
      };

      // Another transaction holds the used key's row (as another node's flush or a key change does).
      await admin.query('begin');
      await admin.query('select 1 from keys where id = $1 for update', [used!.id]);
      store.addBytes(used!.id, 100, 200);
      await store.updateKey(changed!.id, { secret: 'changed-while-locked' });
      const t0 = Date.now();
      await enforcer.refresh();
      const ms = Date.now() - t0;
      assert.equal(control.secrets.get(changed!.id), 'changed-while-locked', 'the change was applied');
      // Bounded by the flush's lock timeout (2 s), not by the 30 s query timeout (or forever).
      assert.ok(ms < 15_000, `the evaluation waited ${ms} ms behind a blocked usage flush`);
      // Negative control: the lock did block the flush (its bytes are not in the database yet).
      assert.equal(store.pendingUsageEntries, 1, 'the batch is kept for a retry');
      await admin.query('rollback');
      assert.equal(await usageInDb(), 0);

      await store.flush();
      assert.equal(await usageInDb(), 300, 'written once the lock is gone, exactly once');
      assert.equal(store.pendingUsageEntries, 0);
      enforcer.stop();
    } finally {
      await admin.query('rollback').catch(() => undefined);
      await admin.end();
      await store.close();
    }
  },
);

test(
  'a store pool holds at most its size (3) and counts waits; PostgreSQL out of connections is one warning naming max_connections, and calls pass again once a connection frees',
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 120_000 },
  async () => {
    const loc = parseStoreLocation(pg!.url, '.');
    const first = await openStore(loc, { flushIntervalMs: 3_600_000 });
    let key: string;
    try {
      key = (await createAccessKeys(first, { method: 'chacha20-ietf-poly1305', count: 1 })).keys[0]!.id;
      // A burst of calls while the one connection the store kept is busy (a key change waiting for
      // a row lock): the pool opens connections up to its size, and the rest queue (counted).
      const locker = new Client({ connectionString: pg!.url });
      await locker.connect();
      await locker.query('begin');
      await locker.query('select 1 from keys where id = $1 for update', [key]);
      const update = first.updateKey(key, { secret: 'burst' });
      await new Promise((r) => setTimeout(r, 300));
      const burst = Array.from({ length: 20 }, () => first.getKey(key));
      const most = first.poolStats()!.open;
      await locker.query('rollback');
      await locker.end();
      await Promise.all([update, ...burst]);
      const s = first.poolStats()!;
      assert.equal(s.max, 3);
      assert.equal(most, 3, `${most} connections open at once`);
      assert.ok(s.waits >= 20 - DEFAULT_POOL_SIZE, `${s.waits} calls waited for a connection`);
      assert.deepEqual([s.timeouts, s.refused], [0, 0]);
    } finally {
      await first.close();
    }

    // Every slot but one taken by other clients; the store opens on that one.
    const hogs: Pg.Client[] = [];
    for (let i = 0; i < 30; i++) {
      const c = new Client({ connectionString: pg!.url });
      try {
        await c.connect();
      } catch (err) {
        assert.match(String(err), /too many clients/);
        break;
      }
      hogs.push(c);
    }
    assert.ok(hogs.length > 1 && hogs.length < 30, 'the database ran out of connections');
    await hogs.pop()!.end();
    const { logger, lines } = logSink();
    const store = await openStore(loc, { flushIntervalMs: 3_600_000, logger });
    try {
      // Its one connection busy (a key change waiting for a row lock), two more calls need a second.
      await hogs[0]!.query('begin');
      await hogs[0]!.query('select 1 from keys where id = $1 for update', [key!]);
      const update = store.updateKey(key!, { secret: 'after-the-lock' });
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 2; i++) await assert.rejects(store.getKey(key!), /too many clients/);
      const warned = lines().filter((l) => /too many clients/.test(l.msg));
      assert.equal(warned.length, 1, 'one warning, not one per refusal');
      assert.match(warned[0]!.msg, /max_connections/);
      assert.ok(store.poolStats()!.refused >= 2);
      assert.equal(store.poolStats()!.open, 1, 'the refused connections are not counted as open');

      // The connection frees: the change commits and the next call gets it.
      await hogs[0]!.query('rollback');
      await update;
      assert.equal((await store.getKey(key!))?.secret, 'after-the-lock');
    } finally {
      for (const h of hogs) await h.end().catch(() => undefined);
      await store.close();
    }
  },
);

test(
  'a call that finds every pooled connection busy fails after acquireTimeoutMs (not an outage) and the next one gets the freed connection',
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 60_000 },
  async () => {
    const store = await openStore(parseStoreLocation(pg!.url, '.'), {
      flushIntervalMs: 3_600_000,
      poolSize: 1,
      acquireTimeoutMs: 300,
    });
    const admin = new Client({ connectionString: pg!.url });
    await admin.connect();
    try {
      const key = (await createAccessKeys(store, { method: 'chacha20-ietf-poly1305', count: 1 })).keys[0]!.id;
      await admin.query('begin');
      await admin.query('select 1 from keys where id = $1 for update', [key]);
      const update = store.updateKey(key, { secret: 'after-the-lock' }); // holds the one connection
      await new Promise((r) => setTimeout(r, 300));
      await assert.rejects(store.getKey(key), /connections stayed busy for 300 ms.*LADDER_STORE_POOL/);
      assert.equal(store.poolStats()!.timeouts, 1);
      assert.equal(store.available, true, 'a busy pool is not a database outage');
      await admin.query('rollback');
      await update;
      assert.equal((await store.getKey(key))?.secret, 'after-the-lock');
      assert.equal(store.poolStats()!.open, 1);
    } finally {
      await admin.query('rollback').catch(() => undefined);
      await admin.end();
      await store.close();
    }
  },
);

test(
  "pool.query (pg's callback-style connect) answers on the store's pool; the promise-style checkout still works",
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 60_000 },
  async () => {
    const pool = postgresPool(pg!.url, { max: 1 });
    try {
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('pool.query never answered')), 5_000);
      });
      try {
        const r = await Promise.race([pool.query<{ n: number }>('select 1 as n'), gaveUp]);
        assert.equal(r.rows[0]?.n, 1);
      } finally {
        clearTimeout(timer);
      }
      await assert.rejects(pool.query('select 1/0'), /division by zero/);
      const c = await pool.connect();
      try {
        assert.equal((await c.query<{ n: number }>('select 2 as n')).rows[0]?.n, 2);
      } finally {
        c.release();
      }
      assert.equal(pool.stats().checkouts, 3);
      assert.equal(pool.stats().busy, 0, 'pool.query gave its connection back');
    } finally {
      await pool.end();
    }
  },
);

test(
  "two nodes' usage flushes that see the same keys at different times lock them in one order: no deadlock",
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 120_000 },
  async () => {
    // Node A saw k1 and k3 at one time and k2 later; node B, in the next hour (its usage rows are
    // not A's), saw k2, then k3. By time, A takes k1, k3 then k2 and B takes k2 then k3: while a
    // third transaction holds k3, A waits for it holding k1 and B takes k2, so once k3 frees, A
    // waits for B and B for A.
    const HOUR = 3_600_000;
    let t = Math.floor(Date.now() / HOUR) * HOUR + 1000;
    const clock = { ...systemClock, now: () => t };
    const open = (): Promise<Awaited<ReturnType<typeof openStore>>> =>
      openStore(parseStoreLocation(pg!.url, '.'), { flushIntervalMs: 3_600_000, clock });
    const a = await open();
    const b = await open();
    const admin = new Client({ connectionString: pg!.url });
    await admin.connect();
    const waiting = async (): Promise<number> =>
      Number(
        (
          await admin.query<{ n: string }>(
            "select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and pid <> pg_backend_pid()",
          )
        ).rows[0]!.n,
      );
    try {
      const ids = (await createAccessKeys(a, { method: 'chacha20-ietf-poly1305', count: 3 })).keys
        .map((k) => k.id)
        .sort();
      const [k1, k2, k3] = ids as [string, string, string];
      a.addBytes(k1, 1, 1);
      a.addBytes(k3, 1, 1);
      t += 1000;
      a.addBytes(k2, 1, 1);
      t += HOUR;
      b.addBytes(k2, 1, 1);
      t += 1000;
      b.addBytes(k3, 1, 1);
      await admin.query('begin');
      await admin.query('select 1 from keys where id = $1 for update', [k3]);
      const failures: unknown[] = [];
      const flushA = a.flush().catch((err: unknown) => failures.push(err));
      await waitFor(async () => (await waiting()) === 1, { timeoutMs: 10_000 });
      const flushB = b.flush().catch((err: unknown) => failures.push(err));
      await waitFor(async () => (await waiting()) === 2, { timeoutMs: 10_000 });
      await admin.query('commit');
      await Promise.all([flushA, flushB]);
      assert.deepEqual(
        failures.map((e) => (e instanceof Error ? e.message : String(e))),
        [],
        'both flushes committed',
      );
      const usage = await admin.query<{ key_id: string; n: string }>(
        'select key_id, sum(up_bytes) as n from usage group by key_id order by key_id',
      );
      const byKey = new Map(usage.rows.map((r) => [r.key_id, Number(r.n)]));
      assert.deepEqual([byKey.get(k1), byKey.get(k2), byKey.get(k3)], [1, 2, 2]);
    } finally {
      await admin.query('rollback').catch(() => undefined);
      await admin.end();
      await a.close();
      await b.close();
    }
  },
);
