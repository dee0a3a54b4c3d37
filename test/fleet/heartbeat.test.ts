/**
 * "Down" means down: a fleet node's heartbeat keeps coming while its management thread (the one
 * running the API, key evaluations and usage writes, at nice +5) is stalled for longer than the
 * down bound. Real PostgreSQL; a trigger records every heartbeat with its time (database clock);
 * this thread is blocked for 8 s (Atomics.wait: no event loop turn at all). Without the heartbeat
 * thread no beat lands during the stall, and the node would be shown down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Pg from 'pg';
import { startFleetNode } from '../../src/fleet/node.js';
import { createLogger } from '../../src/shared/logger.js';
import { DOWN_AFTER_MS, HEARTBEAT_MS, openStore, parseStoreLocation } from '../../src/store/index.js';
import { SKIP_WITHOUT_POSTGRES, startPostgres } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

const STALL_MS = 8000;

test(
  'fleet heartbeat: written while the management thread is stalled past the down bound',
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 120_000 },
  async (t) => {
    const pg = await startPostgres();
    t.after(() => pg.destroy());
    const dir = mkdtempSync(join(tmpdir(), 'ladder-heartbeat-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const store = await openStore(parseStoreLocation(pg.url, dir));
    t.after(() => store.close());
    const pgc = new (createRequire(import.meta.url)('pg') as typeof Pg).Client({ connectionString: pg.url });
    await pgc.connect();
    t.after(() => pgc.end());
    await pgc.query('create table hb_log (name text, at bigint)');
    await pgc.query(`create function hb_log_f() returns trigger language plpgsql as $$
      begin insert into hb_log values (new.name, new.heartbeat_at); return new; end $$`);
    await pgc.query(
      'create trigger hb_log_t after update of heartbeat_at on nodes for each row execute function hb_log_f()',
    );
    const node = await startFleetNode({
      registry: store.nodes(),
      url: pg.url,
      info: { name: 'n1', addresses: ['192.0.2.1'], port: 443, transports: [], version: 'x' },
      enforcer: { refresh: async () => [] },
      log: createLogger({ level: 'silent' }),
      notify: false,
    });
    t.after(() => node.close());
    const beats = async (from: number): Promise<number[]> =>
      (
        await pgc.query<{ at: string }>("select at from hb_log where name = 'n1' and at > $1 order by at", [
          from,
        ])
      ).rows.map((r) => Number(r.at));
    await waitFor(async () => (await beats(0)).length >= 2, { timeoutMs: 15_000, intervalMs: 200 });

    const t0 = await store.nodes().now();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, STALL_MS); // the management thread stalls
    const end = t0 + STALL_MS - 100; // beats after this may be this thread's catching up
    const during = (await beats(t0)).filter((at) => at < end);
    const gaps = [t0, ...during, end].slice(1).map((at, i, a) => at - (i === 0 ? t0 : a[i - 1]!));
    t.diagnostic(
      `heartbeats during the ${STALL_MS} ms stall: ${during.length}; longest gap ${Math.max(...gaps)} ms`,
    );
    assert.ok(during.length >= STALL_MS / HEARTBEAT_MS - 2, `${during.length} heartbeats during the stall`);
    assert.ok(
      Math.max(...gaps) < DOWN_AFTER_MS,
      `a gap of ${Math.max(...gaps)} ms (down after ${DOWN_AFTER_MS})`,
    );
    const n1 = (await store.nodes().get('n1'))!;
    assert.equal(n1.down, false);

    // A clean stop still shows the node down at once (the thread stops before the row is cleared).
    await node.close();
    assert.equal((await store.nodes().get('n1'))!.stopped, true);
  },
);
