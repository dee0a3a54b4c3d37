/**
 * Issue 16's scale bench (not a test): --nodes (100) simulated fleet nodes spread over --procs (10)
 * child processes (bench/fleet-scale-node.ts: each node has its own store, startFleetNode with
 * heartbeat and LISTEN, and a real KeyEnforcer reading key changes by version), on one real
 * PostgreSQL (test/helpers/postgres.ts, loopback) holding --keys (10,000) keys.
 *
 * Measured:
 * - for --changes (10) single-key changes (a key's secret, so every node's key set changes; the
 *   next once every node applied the last): from just before the UPDATE to each node hearing the
 *   NOTIFY and to its key set holding the new secret; p50/p99/max over nodes × changes; and the
 *   `keys` rows PostgreSQL read meanwhile (pg_stat_user_tables), per change over the fleet;
 * - one enforcer's evaluation alone: a full read of every key vs a delta read of one change;
 * - database writes per node per minute over --window (30) seconds while every node counts bytes
 *   for 5 keys every 400 ms: heartbeats (`nodes` rows), usage batches (`usage_batches` rows) and
 *   usage rows (`usage`), from pg_stat_user_tables (which a busy backend may report late); batches
 *   exactly, from usage_batches.seq;
 * - a 10,000-key change set (one UPDATE of every key's secret): until every node's key set holds
 *   every new secret;
 * - connections held (pg_stat_activity).
 *
 *   node --import tsx bench/fleet-scale.ts [--nodes 100] [--procs 10] [--keys 10000] [--changes 10] [--window 30]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type Pg from 'pg';
import { silentLogger } from '../src/shared/logger.js';
import {
  createAccessKeys,
  DEFAULT_POOL_SIZE,
  HEARTBEAT_MS,
  KeyEnforcer,
  openStore,
  parseStoreLocation,
} from '../src/store/index.js';
import { startPostgres } from '../test/helpers/postgres.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : dflt;
};
const NODES = flag('nodes', 100);
const PROCS = Math.max(1, Math.min(NODES, flag('procs', 10)));
const KEYS = flag('keys', 10_000);
const CHANGES = flag('changes', 10);
const WINDOW_S = flag('window', 30);

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const fmt = (xs: number[]): string =>
  `p50 ${pct(xs, 50).toFixed(0)} ms, p99 ${pct(xs, 99).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;

interface Applied {
  marker: string;
  node: string;
  heardMs: number | null;
  appliedMs: number;
}

async function main(): Promise<void> {
  console.log(
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} (${NODES} nodes in ${PROCS} processes)`,
  );
  // What a fleet needs: each node's pool, its LISTEN connection and its heartbeat's, and a margin.
  const poolSize = Number(process.env.FLEET_BENCH_POOL ?? DEFAULT_POOL_SIZE);
  const pg = await startPostgres({ maxConnections: NODES * (poolSize + 2) + 50 });
  const dir = mkdtempSync(join(tmpdir(), 'ladder-fleet-bench-'));
  const { Client } = createRequire(import.meta.url)('pg') as typeof Pg;
  const admin = new Client({ connectionString: pg.url });
  const children: ChildProcess[] = [];
  const applied: Applied[] = [];
  const reads = { full: 0, delta: 0 };
  const pool = { waits: 0, timeouts: 0, refused: 0, waitMsMax: 0, checkouts: 0, maxOpen: 0 };
  let stats = 0;
  let exited = 0;
  let stopping = false;
  const deadline = setTimeout(() => {
    console.error('bench: 25 min bound reached; stopping');
    for (const c of children) c.kill();
    process.exit(1);
  }, 25 * 60_000);
  deadline.unref();
  try {
    const main = await openStore(parseStoreLocation(pg.url, dir));
    const t0 = now();
    for (let made = 0; made < KEYS; made += 1000)
      await createAccessKeys(main, { method: 'chacha20-ietf-poly1305', count: Math.min(1000, KEYS - made) });
    console.log(`${KEYS} keys created in ${((now() - t0) / 1000).toFixed(1)} s`);
    const ids = (await main.listKeys()).map((k) => k.id);
    await admin.connect();

    // One enforcer alone: a full read of every key, then a delta read of one changed key.
    const solo = new KeyEnforcer({
      store: main,
      control: { setKeys: () => undefined, closeKeyConnections: () => 0, openConnections: () => new Map() },
      intervalMs: 3_600_000,
      logger: silentLogger,
    });
    const fullMs: number[] = [];
    const deltaMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      let a = now();
      await solo.refresh({ full: true });
      fullMs.push(now() - a);
      await main.updateKey(ids[i]!, { secret: `solo-${i}` });
      a = now();
      await solo.refresh();
      deltaMs.push(now() - a);
    }
    console.log(
      `one enforcer alone, ${KEYS} keys: full read and evaluation median ${pct(fullMs, 50).toFixed(0)} ms; ` +
        `delta read of one changed key median ${pct(deltaMs, 50).toFixed(1)} ms`,
    );

    // The fleet.
    const per = Math.ceil(NODES / PROCS);
    let ready = 0;
    for (let p = 0; p < PROCS; p++) {
      const first = p * per;
      const count = Math.min(per, NODES - first);
      if (count <= 0) break;
      const c = fork(
        new URL('./fleet-scale-node.ts', import.meta.url).pathname,
        [pg.url, String(first), String(count)],
        {
          execArgv: ['--import', 'tsx'],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        },
      );
      c.on(
        'message',
        (m: { type: string } & Partial<Applied> & { reads?: typeof reads; pool?: typeof pool }) => {
          if (m.type === 'ready') ready++;
          else if (m.type === 'applied') applied.push(m as Applied);
          else if (m.type === 'stats' && m.reads) {
            reads.full += m.reads.full;
            reads.delta += m.reads.delta;
            if (m.pool) {
              for (const k of ['waits', 'timeouts', 'refused', 'checkouts'] as const) pool[k] += m.pool[k];
              pool.waitMsMax = Math.max(pool.waitMsMax, m.pool.waitMsMax);
              pool.maxOpen = Math.max(pool.maxOpen, m.pool.maxOpen);
            }
            stats++;
          }
        },
      );
      c.on('exit', (code) => {
        if (code !== 0 && !stopping) exited++;
      });
      children.push(c);
    }
    const startedAt = now();
    while (ready < children.length && exited === 0 && now() - startedAt < 600_000) await sleep(100);
    if (ready < children.length) throw new Error(`only ${ready} of ${children.length} processes started`);
    const maxConn = (await admin.query<{ max_connections: string }>('show max_connections')).rows[0]!;
    /** Client connections now, by application_name and state (pg_stat_activity). */
    const activity = async (): Promise<{ total: number; by: string }> => {
      const r = await admin.query<{ app: string; state: string | null; n: string }>(
        `select application_name as app, state, count(*) as n from pg_stat_activity
         where backend_type = 'client backend' group by 1, 2 order by 1, 2`,
      );
      const total = r.rows.reduce((t, x) => t + Number(x.n), 0);
      return { total, by: r.rows.map((x) => `${x.app || '-'}/${x.state ?? '-'} ${x.n}`).join(', ') };
    };
    const held = await activity();
    console.log(
      `${NODES} nodes started in ${((now() - startedAt) / 1000).toFixed(1)} s; client connections held: ${held.total} ` +
        `of max_connections ${maxConn.max_connections} (${held.by})`,
    );
    await sleep(3000); // every node's first full read and catch-up done

    const broadcast = (m: object): void => {
      for (const c of children) c.send(m);
    };
    /** Make a change; wait until every node applied it (or `limitMs`). */
    const change = async (marker: string, keys: number, run: () => Promise<unknown>, limitMs: number) => {
      const t = now();
      broadcast({ type: 'expect', marker, keys, t0: t });
      await sleep(50); // the expect message reaches every process first
      const t1 = now();
      await run();
      const mine = () => applied.filter((a) => a.marker === marker);
      while (mine().length < NODES && now() - t1 < limitMs) await sleep(20);
      // Figures from the update's start (t1), not from the expect message.
      return mine().map((a) => ({
        ...a,
        heardMs: a.heardMs === null ? null : a.heardMs - (t1 - t),
        appliedMs: a.appliedMs - (t1 - t),
      }));
    };
    const keyRowsRead = async (table = 'keys'): Promise<number> => {
      await admin.query('select pg_stat_clear_snapshot()');
      const r = await admin.query<{ n: string }>(
        'select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) as n from pg_stat_user_tables where relname = $1',
        [table],
      );
      return Number(r.rows[0]!.n);
    };

    // Single-key changes.
    const heard: number[] = [];
    const lat: number[] = [];
    let missed = 0;
    await sleep(600);
    const r0 = await keyRowsRead();
    const c0 = now();
    for (let c = 0; c < CHANGES; c++) {
      const id = ids[(c * 7919) % ids.length]!;
      const marker = `-one${c}`;
      const got = await change(marker, 1, () => main.updateKey(id, { secret: `bench${marker}` }), 60_000);
      if (got.length < NODES) missed++;
      for (const a of got) {
        if (a.heardMs !== null) heard.push(a.heardMs);
        lat.push(a.appliedMs);
      }
      await sleep(300);
    }
    await sleep(600); // the statistics collector's delay
    const rowsPerChange = ((await keyRowsRead()) - r0) / CHANGES;
    const pollsMeanwhile = (((now() - c0) / 2000) * NODES) / CHANGES;
    console.log(
      `single-key change, ${NODES} nodes x ${CHANGES} changes: NOTIFY heard ${fmt(heard)}; key set updated ${fmt(lat)}` +
        (missed ? ` (${missed} changes not applied by every node within 60 s)` : '') +
        `; keys rows read by PostgreSQL per change ${rowsPerChange.toFixed(0)} (all nodes, polls included: ~${pollsMeanwhile.toFixed(0)} delta polls per change)`,
    );

    // Writes per node per minute under simulated traffic.
    const writes = async (): Promise<Record<string, number>> => {
      await admin.query('select pg_stat_clear_snapshot()');
      const r = await admin.query<{ relname: string; n: string }>(
        "select relname, n_tup_upd + n_tup_ins as n from pg_stat_user_tables where relname in ('nodes', 'usage')",
      );
      // Batches exactly: each writer run's row holds the seq of its last committed batch.
      const b = await admin.query<{ n: string | null }>('select sum(seq) as n from usage_batches');
      return {
        ...Object.fromEntries(r.rows.map((x) => [x.relname, Number(x.n)])),
        usage_batches: Number(b.rows[0]!.n ?? 0),
      };
    };
    // --window 0: no traffic at all (the change set's figures without usage rows to re-read).
    if (WINDOW_S > 0) broadcast({ type: 'traffic', on: true });
    await sleep(2000);
    const w0 = await writes();
    const ws = now();
    await sleep(WINDOW_S * 1000);
    await sleep(600);
    const w1 = await writes();
    broadcast({ type: 'traffic', on: false });
    const perMin = (t: string): string =>
      (((w1[t] ?? 0) - (w0[t] ?? 0)) / NODES / ((now() - ws) / 60_000)).toFixed(1);
    console.log(
      `database writes per node per minute while counting traffic: heartbeats ${perMin('nodes')} (expected ${60_000 / HEARTBEAT_MS}), ` +
        `usage batches ${perMin('usage_batches')} (at most 120), usage rows ${perMin('usage')}`,
    );
    await sleep(1500);

    // A 10,000-key change set: one UPDATE of every key's secret. pg_stat_activity every 5 s meanwhile.
    let peak = { total: 0, by: '' };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const a = await activity().catch(() => undefined);
        if (a && a.total > peak.total) peak = a;
        if (a && process.env.FLEET_BENCH_DEBUG) {
          console.error('DEBUG pg_stat_activity', a.total, a.by);
          const w = await admin.query<{ w: string; q: string; n: string; age: string }>(
            `select coalesce(wait_event_type, '') || ':' || coalesce(wait_event, '') as w,
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 70) as q, count(*) as n,
                    round(max(extract(epoch from now() - query_start))::numeric, 1)::text as age
             from pg_stat_activity where backend_type = 'client backend' and state = 'active'
             and application_name = 'ladder-store' group by 1, 2 order by 3 desc limit 6`,
          );
          for (const x of w.rows) console.error('DEBUG   active', x.n, x.w, `oldest ${x.age} s`, x.q);
          // The heads of the lock chains: sessions others wait for that wait for no one.
          const heads = await admin.query<{ r: string }>(
            `with b as (select pid, unnest(pg_blocking_pids(pid)) as blocker from pg_stat_activity)
             select a.pid || ' ' || a.application_name || ' ' || coalesce(a.state, '') || ' ' ||
                    coalesce(a.wait_event_type, '') || ':' || coalesce(a.wait_event, '') ||
                    ' xact ' || round(extract(epoch from now() - a.xact_start)::numeric, 1) ||
                    ' s, blocks ' || (select count(*) from b where b.blocker = a.pid) || ', last: ' ||
                    left(regexp_replace(a.query, '\\s+', ' ', 'g'), 70) as r
             from pg_stat_activity a
             where a.pid in (select blocker from b) and cardinality(pg_blocking_pids(a.pid)) = 0
             limit 5`,
          );
          for (const x of heads.rows) console.error('DEBUG   lock chain head', x.r);
        }
        for (let i = 0; i < 50 && sampling; i++) await sleep(100);
      }
    })();
    const u0 = await keyRowsRead('usage');
    const k0 = await keyRowsRead('keys');
    const all = await change(
      '-all',
      KEYS,
      () => admin.query("update keys set secret = secret || '-all'"),
      180_000,
    );
    sampling = false;
    await sampler;
    const allHeard = all.flatMap((a) => (a.heardMs === null ? [] : [a.heardMs]));
    console.log(
      `${KEYS}-key change set (one statement): heard by every node within ${Math.max(...allHeard).toFixed(0)} ms; ` +
        (all.length < NODES
          ? `applied by ${all.length} of ${NODES} nodes within 180 s` +
            (all.length > 0 ? ` (those: ${fmt(all.map((a) => a.appliedMs))})` : '')
          : `every node's key set updated ${fmt(all.map((a) => a.appliedMs))} after the update began`),
    );
    await sleep(600); // the statistics collector's delay
    console.log(
      `rows PostgreSQL read meanwhile (all nodes): keys ${(await keyRowsRead('keys')) - k0}, usage ${(await keyRowsRead('usage')) - u0}`,
    );
    console.log(
      `client connections meanwhile, most at once: ${peak.total} of ${maxConn.max_connections} (${peak.by})`,
    );
    await main.close();
  } finally {
    stopping = true;
    for (const c of children) if (c.connected) c.send({ type: 'stop' });
    const stopAt = now();
    while (stats < children.length && now() - stopAt < 30_000) await sleep(100);
    for (const c of children) if (c.exitCode === null) c.kill();
    console.log(
      `enforcer reads over the run, all nodes (${stats} of ${children.length} processes reported): ${reads.full} full, ${reads.delta} delta; ` +
        `store pools (at most ${pool.maxOpen} connections each): ${pool.checkouts} checkouts, ${pool.waits} waited for a busy pool ` +
        `(longest ${pool.waitMsMax} ms), ${pool.timeouts} gave up waiting, ${pool.refused} refused by PostgreSQL (too many clients)`,
    );
    console.log(
      `load average at end: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    await admin.end().catch(() => undefined);
    pg.destroy();
    rmSync(dir, { recursive: true, force: true });
    clearTimeout(deadline);
  }
}

await main();
