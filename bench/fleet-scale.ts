/**
 * Issue 16's scale bench (not a test): --nodes (100) simulated fleet nodes on one real PostgreSQL
 * (test/helpers/postgres.ts) holding --keys (10,000) keys. A simulated node is what a fleet node
 * asks of the database, without a data plane: its own store (Kysely pool), registration and a
 * heartbeat every HEARTBEAT_MS through NodeRegistry, and a KeyListener (one dedicated LISTEN
 * connection) whose notification triggers what the enforcer does, a full evaluateKeys (every key
 * and the usage totals). Each node's database work is serialized (one pool connection at a time).
 *
 * Measured:
 * - for --changes (10) single-key changes (a limit set through the store, the next once every
 *   node applied the last): from just before the update to each node hearing the NOTIFY, and to
 *   its evaluation done; p50/p99/max over nodes × changes. All simulated nodes share this one
 *   process's event loop, so "applied" serializes 100 evaluations that real nodes run in
 *   parallel on their own hosts: one evaluation alone is printed for that reason;
 * - database writes per node per minute over --window (30 s): row updates to `nodes` (heartbeats)
 *   from pg_stat_user_tables, per node; usage batches are stated from the flush interval;
 * - a 10,000-key change set (one UPDATE of every key: one statement, one NOTIFY): time until
 *   every node has applied it;
 * - connections held (pg_stat_activity).
 *
 *   node --import tsx bench/fleet-scale.ts [--nodes 100] [--keys 10000] [--changes 20] [--window 30]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Pg from 'pg';
import { KeyListener } from '../src/fleet/key-listener.js';
import { silentLogger } from '../src/shared/logger.js';
import {
  createAccessKeys,
  evaluateKeys,
  HEARTBEAT_MS,
  openStore,
  parseStoreLocation,
  type KyselyStore,
} from '../src/store/index.js';
import { startPostgres } from '../test/helpers/postgres.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : dflt;
};
const NODES = flag('nodes', 100);
const KEYS = flag('keys', 10_000);
const CHANGES = flag('changes', 10);
const WINDOW_S = flag('window', 30);

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
/** Evaluations that failed (e.g. a pool connection timing out under load): printed, not hidden. */
let evalErrors = 0;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface SimNode {
  name: string;
  store: KyselyStore;
  listener: KeyListener;
  /** Versions heard (the notification arrived) and applied, and when (performance.now()). */
  heard: Map<number, number>;
  applied: Map<number, number>;
  heartbeat: NodeJS.Timeout;
  queue: Promise<unknown>;
  version: number;
}

async function main(): Promise<void> {
  const pg = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'ladder-fleet-bench-'));
  const nodes: SimNode[] = [];
  const { Client } = createRequire(import.meta.url)('pg') as typeof Pg;
  const admin = new Client({ connectionString: pg.url });
  try {
    const main = await openStore(parseStoreLocation(pg.url, dir));
    const t0 = performance.now();
    for (let made = 0; made < KEYS; made += 1000)
      await createAccessKeys(main, { method: 'chacha20-ietf-poly1305', count: Math.min(1000, KEYS - made) });
    console.log(`${KEYS} keys created in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const ids = (await main.listKeys()).map((k) => k.id);

    for (let i = 0; i < NODES; i++) {
      const name = `sim-${i}`;
      const store = await openStore(parseStoreLocation(pg.url, dir), { writerId: name });
      const reg = store.nodes();
      await reg.register(
        { name, addresses: [`198.51.100.${i % 250}`], port: 443, transports: [], version: 'bench' },
        name,
      );
      const n: SimNode = {
        name,
        store,
        heard: new Map(),
        applied: new Map(),
        queue: Promise.resolve(),
        version: 0,
        heartbeat: setInterval(() => {
          n.queue = n.queue.then(() => reg.heartbeat(name, name, n.version)).catch(() => undefined);
        }, HEARTBEAT_MS),
        listener: new KeyListener({
          url: pg.url,
          log: silentLogger,
          onConnect: () => undefined,
          onChange: (version) => {
            n.heard.set(version, performance.now());
            n.queue = n.queue
              .then(() => evaluateKeys(store, Date.now()))
              .then(() => {
                n.applied.set(version, performance.now());
                n.version = Math.max(n.version, version);
              })
              .catch(() => void evalErrors++);
          },
        }),
      };
      await n.listener.start();
      nodes.push(n);
    }
    await admin.connect();
    const conns = await admin.query<{ n: string }>(
      'select count(*) as n from pg_stat_activity where backend_type = $1',
      ['client backend'],
    );
    console.log(`${NODES} nodes registered and listening; client connections held: ${conns.rows[0]!.n}`);

    const version = async (): Promise<number> =>
      Number(
        (await admin.query<{ v: string }>('select last_value as v from ladder_keys_version')).rows[0]!.v,
      );
    const waitAll = async (v: number, limitMs: number): Promise<number | undefined> => {
      const start = performance.now();
      while (performance.now() - start < limitMs) {
        if (nodes.every((n) => n.applied.has(v))) return Math.max(...nodes.map((n) => n.applied.get(v)!));
        await sleep(20);
      }
      return undefined;
    };

    // What one node's apply costs alone (one full evaluation, nothing else running).
    const alone: number[] = [];
    for (let i = 0; i < 5; i++) {
      const a = performance.now();
      await evaluateKeys(main, Date.now());
      alone.push(performance.now() - a);
    }
    alone.sort((a, b) => a - b);
    console.log(`one node's apply alone (evaluateKeys of ${KEYS} keys): median ${alone[2]!.toFixed(0)} ms`);

    // Single-key changes, one at a time (the next once every node applied the last, or 60 s).
    const heard: number[] = [];
    const lat: number[] = [];
    let missed = 0;
    for (let c = 0; c < CHANGES; c++) {
      const id = ids[(c * 7919) % ids.length]!;
      const before = performance.now();
      await main.updateKey(id, { dataLimitBytes: 1_000_000 + c });
      const v = await version();
      const all = await waitAll(v, 60_000);
      if (all === undefined) missed++;
      for (const n of nodes) {
        const h = n.heard.get(v);
        if (h !== undefined) heard.push(h - before);
        const at = n.applied.get(v);
        if (at !== undefined) lat.push(at - before);
      }
      await sleep(200);
    }
    const fmt = (xs: number[]): string =>
      `p50 ${pct(xs, 50).toFixed(0)} ms, p99 ${pct(xs, 99).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
    console.log(
      `single-key change over ${nodes.length} nodes x ${CHANGES} changes: commit to NOTIFY heard ${fmt(heard)}; ` +
        `to applied (${nodes.length} evaluations serialized in this one process) ${fmt(lat)}` +
        (missed ? ` (${missed} changes not applied by every node within 60 s)` : '') +
        `; evaluations failed so far: ${evalErrors}`,
    );

    // Writes per node per minute (heartbeats), from the table statistics.
    const upd = async (): Promise<number> => {
      const r = await admin.query<{ n: string }>(
        "select n_tup_upd + n_tup_ins as n from pg_stat_user_tables where relname = 'nodes'",
      );
      return Number(r.rows[0]!.n);
    };
    await admin.query('select pg_stat_clear_snapshot()');
    const u0 = await upd();
    const w0 = performance.now();
    await sleep(WINDOW_S * 1000);
    await sleep(600); // the statistics collector's delay
    await admin.query('select pg_stat_clear_snapshot()');
    const perMin = ((await upd()) - u0) / nodes.length / ((performance.now() - w0) / 60_000);
    console.log(
      `database writes per node per minute: heartbeats ${perMin.toFixed(1)} (expected ${60_000 / HEARTBEAT_MS}); ` +
        `usage batches at most 120 (one per 500 ms flush, only while the node carries traffic)`,
    );

    // A 10,000-key change set: one UPDATE, one NOTIFY, a full read on every node.
    const before = performance.now();
    await admin.query('update keys set data_limit_bytes = 5000000000');
    const v = await version();
    const all = await waitAll(v, 120_000);
    const heardAll = Math.max(...nodes.map((n) => n.heard.get(v) ?? NaN)) - before;
    console.log(
      `${KEYS}-key change set: every node heard it ${heardAll.toFixed(0)} ms after the update began`,
    );
    console.log(
      all === undefined
        ? `${KEYS}-key change set: not applied by every node within 120 s`
        : `${KEYS}-key change set (one statement): applied by all ${nodes.length} nodes ${(all - before).toFixed(0)} ms after the update began`,
    );
    await main.close();
  } finally {
    for (const n of nodes) {
      clearInterval(n.heartbeat);
      await n.listener.close();
      await n.queue;
      await n.store.close().catch(() => undefined);
    }
    await admin.end().catch(() => undefined);
    pg.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
