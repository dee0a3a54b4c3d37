/**
 * The usage delta read (PostgreSQL, every node's evaluation, every 2 s) no longer re-reads every
 * row changed in the last two minutes at each poll (docs/fleet.md "usage re-reads": 10,000 rows a
 * node every 2 s, 5 million a second at 1,000 nodes): a poll looks back NARROW_MARGIN_MS, a wide
 * read every WIDE_READ_MS looks back DELTA_MARGIN_MS before the previous wide read. Shown on a
 * real PostgreSQL: a poll after the narrow margin reads none of 60 unchanged rows (it read all 60
 * before), and a row that commits 7 s after its stamp (a flush held on locks), which the polls
 * miss, is counted at the next wide read, so the totals still equal a full read.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Kysely, sql } from 'kysely';
import { ManualClock } from '../../src/shared/clock.js';
import { createDialect } from '../../src/store/dialect.js';
import type { Database } from '../../src/store/schema.js';
import { openStore, parseStoreLocation, HOUR_MS, type KyselyStore } from '../../src/store/index.js';
import { NARROW_MARGIN_MS, UsageTotalsCache, WIDE_READ_MS } from '../../src/store/usage-totals.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, startPostgres, type PgCluster } from '../helpers/postgres.js';

let pg: PgCluster | undefined;
before(async () => {
  if (HAVE_POSTGRES) pg = await startPostgres();
});
after(() => pg?.destroy());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test(
  'usage delta reads: a poll re-reads no unchanged row; a late commit is counted at the wide read',
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 60_000 },
  async () => {
    const loc = parseStoreLocation(pg!.url, '.');
    const clock = new ManualClock(Date.now());
    const store: KyselyStore = await openStore(loc, { clock, flushIntervalMs: 3_600_000, writerId: 'w1' });
    const db = new Kysely<Database>({ dialect: createDialect(loc).dialect });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 60; i++)
        ids.push(
          (
            await store.createKey({
              name: `k${i}`,
              method: 'chacha20-ietf-poly1305',
              secret: `s${i}`,
              port: 1,
            })
          ).id,
        );
      for (const id of ids) store.addBytes(id, 100, 200);
      await store.flush();
      const from = Math.floor(clock.now() / HOUR_MS) * HOUR_MS - HOUR_MS;
      const cacheWith = (ttlMs: number): UsageTotalsCache =>
        new UsageTotalsCache({ db, dialect: 'postgres', clock, ttlMs, read: (q) => q.execute() });
      const cache = cacheWith(300_000);
      const full = async (): Promise<Record<string, unknown>> => {
        const fresh = cacheWith(0); // reads in full every time
        return Object.fromEntries(await fresh.since(from));
      };
      await cache.since(from); // the full read
      await sleep(NARROW_MARGIN_MS + 1_000);
      clock.advance(2_000);
      await cache.since(from); // may re-read what changed within the margin before the full read
      const seen = cache.deltaReads.rows;
      clock.advance(2_000);
      await cache.since(from);
      assert.equal(
        cache.deltaReads.rows - seen,
        0,
        'a poll more than the narrow margin after the changes re-reads none of the 60 unchanged rows',
      );

      // A flush that stamps its row, then holds the transaction 7 s before committing. The stamp
      // is 3 s before the update runs, so the narrow poll after the commit misses it however
      // late a loaded machine runs the update (the polls' own overhead was the only margin).
      const late = ids[7]!;
      const bucket = Math.floor(clock.now() / HOUR_MS) * HOUR_MS;
      const held = db.transaction().execute(async (trx) => {
        await sql`update usage set up_bytes = up_bytes + 5000,
        changed_at = (extract(epoch from clock_timestamp()) * 1000)::bigint - 3000
        where key_id = ${late} and bucket = ${bucket}`.execute(trx);
        await sleep(NARROW_MARGIN_MS + 2_000);
      });
      for (let i = 0; i < 5; i++) {
        await sleep(1_000);
        clock.advance(2_000);
        await cache.since(from);
      }
      await held;
      clock.advance(2_000);
      const missed = await cache.since(from);
      assert.equal(
        missed.get(late)!.up,
        100,
        'the narrow poll does not see the late row (the case the wide read is for)',
      );
      assert.equal(cache.deltaReads.wide, 0);

      clock.advance(WIDE_READ_MS);
      const wide = await cache.since(from);
      assert.equal(cache.deltaReads.wide, 1, 'a wide read');
      assert.equal(wide.get(late)!.up, 5_100, 'the late commit is counted at the wide read');
      assert.deepEqual(Object.fromEntries(wide), await full(), 'the totals equal a full read');
    } finally {
      await db.destroy();
      await store.close();
    }
  },
);
