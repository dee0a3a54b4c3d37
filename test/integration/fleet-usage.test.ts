import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Pg from 'pg';
import { startManaged } from '../../src/cli/managed.js';
import { createLogger } from '../../src/shared/logger.js';
import { KEY_CACHE_FILE } from '../../src/store/index.js';
import { api, echoServer } from '../api/managed-helpers.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { freePort } from '../helpers/net.js';
import { SKIP_WITHOUT_POSTGRES, startPostgres } from '../helpers/postgres.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { sleep, waitFor } from '../helpers/wait.js';

/**
 * A fleet on one PostgreSQL (issue 16, items 3 and 4): node A in this process (its API and
 * /metrics/transfer), nodes B and C as `ladder server` processes, all on the same data port on
 * 127.0.0.1/.2/.3 (one machine standing in for three). Usage moved through B and C is summed in
 * A's /metrics/transfer; PostgreSQL stops for 30 s under traffic and every node keeps relaying;
 * a node started during the outage serves its cached keys and one with no cache refuses; after
 * the restart the fleet's usage equals the bytes moved; a key deleted directly in PostgreSQL right
 * after the restart (before any node's next key evaluation: the way a change made while a node's
 * notification connection is not back yet reaches it) is refused on every node; a limit below the
 * fleet total and above any node's share refuses the key on every node.
 */

interface Key {
  id: string;
  method: string;
  password: string;
  port: number;
}
type Host = '127.0.0.1' | '127.0.0.2' | '127.0.0.3' | '127.0.0.4';

const CHUNK = 20_000;

test(
  'fleet: usage summed across nodes, 30 s PostgreSQL outage under traffic loses and doubles nothing, deletions and limits reach every node',
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 240_000 },
  async (t) => {
    const pg = await startPostgres();
    t.after(() => pg.destroy());
    const dirs: string[] = [];
    const tmp = (): string => {
      const d = mkdtempSync(join(tmpdir(), 'ladder-fleet-'));
      dirs.push(d);
      return d;
    };
    t.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
    const echoPort = await echoServer(t);
    const port = await freePort();

    const a = await startManaged(
      {
        dataDir: tmp(),
        store: pg.url,
        node: 'a',
        port: String(port),
        host: '127.0.0.1',
        publicHost: '127.0.0.1',
        apiPort: '0',
        apiHost: '127.0.0.1',
        metrics: false,
        allowPrivate: true,
      },
      createLogger({ level: 'silent' }),
      { enforceIntervalMs: 500, reportMs: 200, drawQr: false },
    );
    t.after(() => a.close());
    const cfg = JSON.parse(a.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'))!) as {
      apiUrl: string;
      certSha256: string;
    };
    const newKey = async (name: string): Promise<Key> => {
      const r = await api(cfg, 'POST', '/access-keys', { name });
      assert.equal(r.status, 201, r.body);
      return JSON.parse(r.body) as Key;
    };
    const k1 = await newKey('carried');
    const k2 = await newKey('deleted-after-restart');
    const k3 = await newKey('disabled-before-outage');

    const procs: Run[] = [];
    t.after(async () => {
      for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
      await Promise.all(procs.map((p) => p.exit));
    });
    const startNode = (host: Host, dataDir: string): Run => {
      const r = run(
        ['server', '--data-dir', dataDir, '--store', pg.url, '--host', host, '--port', String(port)].concat([
          '--public-host',
          host,
          '--api-host',
          host,
          '--api-port',
          '0',
          '--no-metrics',
          '--allow-private',
        ]),
        { env: { LADDER_LOG_LEVEL: 'info' } },
      );
      procs.push(r);
      return r;
    };
    const dirB = tmp();
    const b = startNode('127.0.0.2', dirB);
    const c = startNode('127.0.0.3', tmp());
    await Promise.all([b, c].map((n) => waitForStdout(n, /Shadowsocks on port/, 60_000)));

    /** One echo of CHUNK bytes through `host` with `key`: 2 × CHUNK bytes of usage. */
    const echo = async (host: Host, key: Key, timeoutMs = 5000): Promise<void> => {
      const tun = await openTestTunnel({
        host,
        port: key.port,
        method: key.method,
        password: key.password,
        target: { host: '127.0.0.1', port: echoPort },
        initial: Buffer.alloc(CHUNK, 1),
      });
      try {
        await tun.read(CHUNK, timeoutMs);
      } finally {
        tun.end();
        await Promise.race([tun.closed, sleep(2000)]);
        tun.destroy();
      }
    };
    const refused = (host: Host, key: Key): Promise<boolean> =>
      echo(host, key, 1500).then(
        () => false,
        () => true,
      );
    const nodes: Host[] = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
    const moved = new Map<Host, number>(); // echoes of k1 through each node
    const carry = async (host: Host): Promise<void> => {
      await echo(host, k1);
      moved.set(host, (moved.get(host) ?? 0) + 1);
    };
    const transfer = async (): Promise<Record<string, number>> =>
      (
        JSON.parse((await api(cfg, 'GET', '/metrics/transfer')).body) as {
          bytesTransferredByUserId: Record<string, number>;
        }
      ).bytesTransferredByUserId;
    // Usage counts the bytes on the wire (salts, length and tag overhead included): what one echo
    // costs is measured once, on A alone, and every later echo is the same size.
    await echo('127.0.0.1', k1);
    let perEcho = 0;
    await waitFor(
      async () => {
        const v = (await transfer())[k1.id] ?? 0;
        const stable = v > 2 * CHUNK && v === perEcho;
        perEcho = v;
        return stable;
      },
      { timeoutMs: 15_000, intervalMs: 700 },
    );
    assert.ok(perEcho < 2 * CHUNK + 1000, `one echo: ${perEcho} bytes of usage`);
    moved.set('127.0.0.1', 1);
    // Every node learned the keys (the enforcer's poll: key changes by NOTIFY are another branch's).
    for (const h of nodes) {
      await waitFor(
        () =>
          echo(h, k1).then(
            () => true,
            () => false,
          ),
        { timeoutMs: 15_000, intervalMs: 300 },
      );
      moved.set(h, (moved.get(h) ?? 0) + 1);
      await echo(h, k2);
    }
    const total = (): number => [...moved.values()].reduce((x, y) => x + y, 0) * perEcho;
    let seen: number | undefined;
    const k1Counted = async (): Promise<boolean> => (seen = (await transfer())[k1.id]) === total();

    // Usage through B and C, summed in A's /metrics/transfer.
    for (let i = 0; i < 3; i++) await carry('127.0.0.2');
    for (let i = 0; i < 2; i++) await carry('127.0.0.3');
    await waitFor(k1Counted, {
      timeoutMs: 15_000,
      intervalMs: 300,
      message: () => `k1 usage ${seen}, bytes moved ${total()}`,
    });

    // A revocation seen before the outage stays in force through it.
    assert.equal((await api(cfg, 'PUT', `/access-keys/${k3.id}/enabled`, { enabled: false })).status, 204);
    for (const h of nodes) await waitFor(() => refused(h, k3), { timeoutMs: 15_000, intervalMs: 200 });
    // B's key cache: owner-only, written by its enforcer.
    assert.equal(statSync(join(dirB, KEY_CACHE_FILE)).mode & 0o777, 0o600);

    // ---- PostgreSQL down for 30 s, traffic on every node --------------------------------------
    pg.stop();
    const outageEnds = Date.now() + 30_000;
    const failures: string[] = [];
    const traffic = async (h: Host): Promise<void> => {
      for (let i = 0; i < 500 && Date.now() < outageEnds; i++) {
        await carry(h).catch((err: Error) => failures.push(`${h}: ${err.message}`));
        await sleep(300);
      }
    };
    const during = async (): Promise<void> => {
      const r = await api(cfg, 'GET', '/access-keys');
      assert.equal(r.status, 503, r.body);
      assert.match((JSON.parse(r.body) as { message: string }).message, /unreachable/);
      for (const h of nodes) {
        assert.ok(await refused(h, k3), `${h} still refuses the key disabled before the outage`);
        await echo(h, k2); // not deleted yet: a known key
      }
      // A node started now (D: B's disk copied to a replacement machine) serves B's cached keys;
      // one with no cache says it cannot start.
      const dirD = tmp();
      copyFileSync(join(dirB, KEY_CACHE_FILE), join(dirD, KEY_CACHE_FILE));
      const d = startNode('127.0.0.4', dirD);
      const e = startNode('127.0.0.4', tmp());
      const code = await e.exit;
      assert.notEqual(code, 0);
      assert.match(e.stderr(), /cannot start without the store/);
      assert.equal(e.stderr().trim().split('\n').length, 1, e.stderr());
      await waitFor(() => /store unreachable at start/.test(d.stderr()), { timeoutMs: 30_000 });
      await waitFor(
        () =>
          echo('127.0.0.4', k1).then(
            () => true,
            () => false,
          ),
        {
          timeoutMs: 20_000,
          intervalMs: 300,
        },
      );
      moved.set('127.0.0.4', 1);
      assert.ok(await refused('127.0.0.4', k3), 'D refuses the key disabled before the outage (cache)');
      nodes.push('127.0.0.4');
    };
    await Promise.all([...nodes.map(traffic), during()]);
    assert.deepEqual(failures, [], 'every node kept relaying for known keys');
    assert.ok(Date.now() >= outageEnds - 1000);

    // ---- PostgreSQL back; a key deleted at once, directly in the database ----------------------
    pg.start();
    const pgc = new (createRequire(import.meta.url)('pg') as typeof Pg).Client({ connectionString: pg.url });
    await pgc.connect();
    await pgc.query('delete from keys where id = $1', [k2.id]);
    await pgc.query('delete from usage where key_id = $1', [k2.id]);
    await pgc.end();
    for (const h of nodes) await waitFor(() => refused(h, k2), { timeoutMs: 20_000, intervalMs: 300 });
    for (const h of nodes) await carry(h); // k1 still works everywhere

    // Nothing lost, nothing counted twice.
    await waitFor(k1Counted, {
      timeoutMs: 30_000,
      intervalMs: 500,
      message: () => `k1 usage ${seen}, bytes moved ${total()}`,
    });
    assert.equal((await transfer())[k2.id], undefined);
    for (const n of [b, c]) {
      assert.equal(n.stderr().match(/store unreachable:/g)?.length, 1, `outage logged once:\n${n.stderr()}`);
      assert.equal(
        n.stderr().match(/store reachable again/g)?.length,
        1,
        `recovery logged once:\n${n.stderr()}`,
      );
      assert.ok(!n.stderr().includes(pg.url), 'no connection string in the log');
    }

    // A limit below the fleet total but above any node's share: refused on every node.
    const shares = [...moved.values()].map((n) => n * perEcho);
    const limit = total() - 1;
    assert.ok(limit > Math.max(...shares), 'no node alone reached the limit');
    const put = await api(cfg, 'PUT', `/access-keys/${k1.id}/data-limit`, { limit: { bytes: limit } });
    assert.equal(put.status, 204, put.body);
    for (const h of nodes) await waitFor(() => refused(h, k1), { timeoutMs: 15_000, intervalMs: 300 });
  },
);
