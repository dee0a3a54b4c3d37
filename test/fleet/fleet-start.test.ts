/**
 * Issue 16's start-up leftovers, on a real PostgreSQL:
 *
 * - two nodes creating the first key of an empty store at once make one key (the advisory lock);
 *   negative control: the same race without the lock makes two;
 * - a node's --port does not overwrite the fleet's port for new keys: node B (another port) keeps
 *   node A's, and serves the fleet's key on the key's port;
 * - a node started while PostgreSQL is down, serving its cached keys, stops on SIGTERM within 3 s
 *   (exit 0, "server stopping", the replay state saved) although the store never answered.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Pg from 'pg';
import {
  createAccessKeys,
  ensureFirstKey,
  KEY_CACHE_FILE,
  openStore,
  parseStoreLocation,
  type KyselyStore,
} from '../../src/store/index.js';
import { run } from '../helpers/cli-run.js';
import { freePort } from '../helpers/net.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { echoServer } from '../api/managed-helpers.js';
import { startNodeProc, stopProc, tryTunnel, type FleetNodeProc } from './fleet-helpers.js';

const SKIP = SKIP_WITHOUT_POSTGRES;
let pg: PgCluster | undefined;
const dirs: string[] = [];
const stores: KyselyStore[] = [];
const procs: FleetNodeProc[] = [];
const cleanups: (() => Promise<void>)[] = [];

const cluster = async (): Promise<PgCluster> => (pg ??= await startPostgres());
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'ladder-fleet-start-'));
  dirs.push(d);
  return d;
};
const open = async (url: string): Promise<KyselyStore> => {
  const s = await openStore(parseStoreLocation(url, tmp()));
  stores.push(s);
  return s;
};

after(async () => {
  for (const p of procs) await stopProc(p.run);
  for (const s of stores) await s.close().catch(() => undefined);
  for (const c of cleanups) await c();
  pg?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh database on the cluster (each race needs an empty store). */
async function database(name: string): Promise<string> {
  const c = await cluster();
  const client = new (createRequire(import.meta.url)('pg') as typeof Pg).Client({ connectionString: c.url });
  await client.connect();
  await client.query(`create database ${name}`);
  await client.end();
  return c.url.replace(/\/postgres$/, `/${name}`);
}

/** Two store clients each run ensureFirstKey at once; the second checks while the first creates. */
async function race(url: string, unlocked: boolean): Promise<number> {
  const [s1, s2] = [await open(url), await open(url)];
  const loc = parseStoreLocation(url, tmp());
  const create = (s: KyselyStore) => async () =>
    (await createAccessKeys(s, { name: 'Initial key', method: 'chacha20-ietf-poly1305' })).keys[0]!;
  const results = await Promise.all([
    ensureFirstKey(s1, loc, create(s1), { unlocked, afterCheck: () => sleep(400) }),
    sleep(100).then(() => ensureFirstKey(s2, loc, create(s2), { unlocked })),
  ]);
  const ids = new Set(results.map((r) => r.key.id));
  if (!unlocked) assert.equal(ids.size, 1, 'both nodes got the same first key');
  return s1.countKeys();
}

test(
  'fleet start: two nodes on an empty store make one initial key (without the lock: two)',
  { skip: SKIP },
  async () => {
    assert.equal(await race(await database('locked'), false), 1);
    assert.equal(await race(await database('unlocked'), true), 2, 'negative control: the unguarded race');
  },
);

test(
  "fleet start: a node's --port leaves the fleet's port for new keys; SIGTERM stops a node waiting for PostgreSQL",
  { skip: SKIP, timeout: 240_000 },
  async () => {
    if (!HAVE_POSTGRES) return;
    const c = await cluster();
    const [portA, portB] = [await freePort(), await freePort()];
    const echoPort = await echoServer({ after: (fn) => void cleanups.push(fn) });
    // Opened once A runs: the store is A's making (a client opening it first would set the port).
    let opened: KyselyStore | undefined;
    const apiPrefix = async (): Promise<string> =>
      (await (opened ??= await open(c.url)).getSettings()).apiPrefix;
    const dirB = tmp();
    const a = await startNodeProc({
      name: 'a',
      host: '127.0.0.2',
      dataDir: tmp(),
      pgUrl: c.url,
      port: portA,
      apiPrefix,
    });
    procs.push(a);
    const b = await startNodeProc({
      name: 'b',
      host: '127.0.0.3',
      dataDir: dirB,
      pgUrl: c.url,
      port: portB,
      apiPrefix,
    });
    procs.push(b);
    const store = opened!;
    assert.equal((await store.getSettings()).portForNewAccessKeys, portA, "B's --port did not overwrite A's");
    const keys = await store.listKeys();
    assert.equal(keys.length, 1);
    const key = keys[0]!;
    assert.equal(key.port, portA);
    const creds = { method: key.method, password: key.secret };
    // B serves the fleet's key on the key's port (its pool listens there), as the keys list it.
    const viaB = await waitFor(() => tryTunnel('127.0.0.3', portA, creds, echoPort), { timeoutMs: 15_000 });
    viaB.destroy();
    await waitFor(() => existsSync(join(dirB, KEY_CACHE_FILE)), { timeoutMs: 10_000 });

    // B restarts while PostgreSQL is down: it serves its cached key set, and the store never answers.
    await stopProc(b.run);
    await stopProc(a.run);
    c.stop();
    const replay = join(dirB, 'replay-state.bin');
    rmSync(replay, { force: true });
    const b2 = run(
      ['server', '--store', c.url, '--node', 'b', '--public-host', '127.0.0.3', '--data-dir', dirB]
        .concat(['--host', '127.0.0.3', '--port', String(portB), '--workers', '1', '--api-host', '127.0.0.1'])
        .concat(['--api-port', '0', '--allow-private', '--no-metrics']),
      { env: { LADDER_LOG_LEVEL: 'info' } },
    );
    procs.push({ ...b, run: b2 });
    await waitFor(() => /store unreachable at start/.test(b2.stderr()), { timeoutMs: 60_000 });
    const offline = await waitFor(() => tryTunnel('127.0.0.3', portA, creds, echoPort), {
      timeoutMs: 20_000,
    });
    offline.destroy();
    await sleep(500);
    const at = Date.now();
    b2.child.kill('SIGTERM');
    const code = await Promise.race([b2.exit, sleep(10_000).then(() => 'still running' as const)]);
    const ms = Date.now() - at;
    assert.equal(code, 0, `exit ${String(code)} (signal ${String(b2.child.signalCode)}):\n${b2.stderr()}`);
    assert.ok(ms < 3000, `stopped ${ms} ms after SIGTERM (bound 3 s)`);
    assert.equal(b2.stderr().match(/server stopping/g)?.length, 1, b2.stderr());
    assert.ok(existsSync(replay) && statSync(replay).size > 0, 'the replay state was saved');
    assert.doesNotMatch(b2.stdout(), /Ctrl-C to stop/, 'no banner: the start never finished');
    c.start();
  },
);
