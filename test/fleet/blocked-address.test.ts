/**
 * Issue 16, blocked-address detection end to end in the lab: two real `ladder server --node`
 * processes on one real PostgreSQL; node 1 is listed at 127.0.10.1, a lab censor forwarder in
 * front of it (C1 on), node 2 at its own address, direct. `ladder client`s with distinct dynamic
 * keys (SIP008, node 1 first) carry traffic through node 1; the censor null-routes 127.0.10.1
 * (DROP_S2C: connections open, nothing comes back); each client fails over to node 2 and reports
 * the address through node 2's tunnel to the key server (node 2's API).
 *
 * - negative control: two keys' reports (the store's threshold: 3 keys) do not mark the address; it stays
 *   in the keys;
 * - the third key's report marks it: node 1's address leaves the dynamic keys (node 1 itself is
 *   `suspected`, its only address being suspected), `ladder nodes list` shows it, every client
 *   keeps working through node 2;
 * - no client address is stored: every row of every table is searched for 127.0.0.1 (the
 *   clients' source address on loopback) and for the client ports the censor saw.
 * - add-address gives node 1 a fresh address the keys list at once (no re-issue).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type Pg from 'pg';
import type { KyselyStore } from '../../src/store/index.js';
import { Censor } from '../../src/lab/censor.js';
import { profile } from '../../src/lab/profiles.js';
import { TcpForwarder } from '../../src/lab/tcp-forwarder.js';
import { systemClock } from '../../src/shared/clock.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { runLadder } from '../helpers/ladder-run.js';
import { readExactly } from '../helpers/net.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, type PgCluster } from '../helpers/postgres.js';
import { socks5Connect } from '../helpers/socks5.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { fleetFixture, startNodeProc, type FleetFixture, type FleetNodeProc } from './fleet-helpers.js';

const N1 = { name: 'n1', host: '127.0.0.2', listed: '127.0.10.1' };
const N2 = { name: 'n2', host: '127.0.0.3' };

let fx: FleetFixture | undefined;
let pg: PgCluster | undefined;
let store: KyselyStore;
let dir: string;
let port: number;
let echoPort: number;
let censor: Censor;
let forwarder: TcpForwarder | undefined;
let n2: FleetNodeProc;
let procs: Run[] = [];

before(async () => {
  if (!HAVE_POSTGRES) return;
  fx = await fleetFixture('ladder-blocked-');
  ({ pg, dir, port, echoPort, procs } = fx);
  censor = new Censor({ config: profile('none', { c1: { enabled: true } }), clock: systemClock, seed: 16 });
  forwarder = await TcpForwarder.listen(censor, {
    ip: N1.listed,
    port,
    backend: { host: N1.host, port },
  });
  const f = forwarder;
  fx.cleanups.push(() => f.close());
  const common = { pgUrl: pg.url, port, apiPrefix: fx.apiPrefix };
  const n1 = await startNodeProc({ ...N1, publicHost: N1.listed, dataDir: join(dir, 'n1'), ...common });
  procs.push(n1.run);
  n2 = await startNodeProc({ ...N2, dataDir: join(dir, 'n2'), ...common });
  procs.push(n2.run);
  store = await fx.store();
  // The threshold is a fleet-wide store setting, set through any node's API (3 keys is the default).
  const put = await n2.call('PUT', '/server/blocked-address-reports', { keys: 3, windowSeconds: 600 });
  assert.equal(put.status, 204, put.body);
});

after(() => fx?.close());

/** The hosts a key's SIP008 lists, in order, fetched through node 2's API. */
async function listed(token: string): Promise<string[]> {
  const r = await n2.call('GET', `/../access/${token}/sip008`);
  assert.equal(r.status, 200, r.body);
  return (JSON.parse(r.body) as { servers: { server: string }[] }).servers.map((s) => s.server);
}

interface Client {
  run: Run;
  socksPort: number;
  echo(word: string, ms: number): Promise<string | undefined>;
}

async function startClient(token: string, i: number): Promise<Client> {
  const sha = new X509Certificate(readFileSync(join(n2.dataDir, 'api-cert.pem'))).fingerprint256.replace(
    /:/g,
    '',
  );
  const key = `ssconf://127.0.0.1:${n2.apiPort}/access/${token}/sip008?certSha256=${sha}`;
  const r = run(
    ['client', '--key', key, '--socks', '127.0.0.1:0', '--refresh', '2', '--state-dir', join(dir, `c${i}`)],
    { env: { LADDER_LOG_LEVEL: 'info' } },
  );
  procs.push(r);
  const socksPort = Number((await waitForStdout(r, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/, 30_000))[1]);
  const echo = async (word: string, ms: number): Promise<string | undefined> => {
    try {
      const s = await socks5Connect({ proxyPort: socksPort, host: '127.0.0.1', port: echoPort });
      try {
        s.write(word);
        return (await readExactly(s, word.length, ms)).toString();
      } finally {
        s.destroy();
      }
    } catch {
      return undefined;
    }
  };
  return { run: r, socksPort, echo };
}

/** Keys whose SIP008 lists node 1 first (the client starts there). */
async function keysOnNode1(count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < 40 && out.length < count; i++) {
    const r = await n2.call('POST', '/access-keys', { name: `user ${i}` });
    assert.equal(r.status, 201, r.body);
    const token = (await store.getKey((JSON.parse(r.body) as { id: string }).id))!.accessToken;
    if ((await listed(token))[0] === N1.listed) out.push(token);
  }
  assert.equal(out.length, count, 'keys that list node 1 first');
  return out;
}

async function reportRows(): Promise<{ node: string; address: string; key_id: string }[]> {
  const pgMod = createRequire(import.meta.url)('pg') as typeof Pg;
  const c = new pgMod.Client({ connectionString: pg!.url });
  await c.connect();
  try {
    return (await c.query<{ node: string; address: string; key_id: string }>('select * from address_reports'))
      .rows;
  } finally {
    await c.end();
  }
}

/** Every row of every table in the database, as JSON text. */
async function dumpAll(): Promise<string[]> {
  const pgMod = createRequire(import.meta.url)('pg') as typeof Pg;
  const c = new pgMod.Client({ connectionString: pg!.url });
  await c.connect();
  try {
    const tables = await c.query<{ t: string }>(
      "select table_name as t from information_schema.tables where table_schema = 'public'",
    );
    const out: string[] = [];
    for (const { t } of tables.rows) {
      const rows = await c.query<{ j: string }>(`select row_to_json(x)::text as j from "${t}" x`);
      for (const r of rows.rows) out.push(`${t}: ${r.j}`);
    }
    return out;
  } finally {
    await c.end();
  }
}

test(
  'blocked-address detection: a null-routed node address leaves the keys after 3 keys report it; clients continue; no client address stored',
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 240_000 },
  async (t) => {
    const tokens = await keysOnNode1(3);
    const clients: Client[] = [];
    for (const [i, token] of tokens.slice(0, 2).entries()) clients.push(await startClient(token, i));
    for (const c of clients) assert.equal(await c.echo('via n1', 10_000), 'via n1');

    censor.blockEndpoint(N1.listed, undefined, 'test: null-route node 1');
    const t0 = Date.now();
    // The clients fail over to node 2 (the stall bound is 4 s) and report through it.
    for (const [i, c] of clients.entries())
      await waitFor(async () => (await c.echo(`after ${i}`, 2000)) === `after ${i}`, {
        timeoutMs: 40_000,
        intervalMs: 250,
        message: () => `client ${i} moves to node 2: ${c.run.stderr()}`,
      });
    t.diagnostic(`two clients moved to node 2 ${Date.now() - t0} ms after the null-route`);
    await waitFor(async () => (await reportRows()).length >= 2, {
      timeoutMs: 20_000,
      intervalMs: 250,
      message: () => `two reports stored; client 0: ${clients[0]!.run.stderr()}`,
    });
    // Negative control: two distinct keys are fewer than 3; the address stays in the keys.
    await sleep(500);
    const rows = await reportRows();
    assert.equal(new Set(rows.map((r) => r.key_id)).size, 2);
    assert.ok(
      rows.every((r) => r.node === N1.name && r.address === N1.listed),
      JSON.stringify(rows),
    );
    assert.deepEqual((await store.nodes().get(N1.name))!.suspectedAddresses, []);
    assert.ok((await listed(tokens[0]!)).includes(N1.listed), 'fewer than 3 keys: still listed');

    // The third key's client starts on node 1, fails over and reports: the address is suspected.
    const third = await startClient(tokens[2]!, 2);
    clients.push(third);
    await waitFor(async () => (await third.echo('third', 2000)) === 'third', {
      timeoutMs: 40_000,
      intervalMs: 250,
      message: () => `client 2 works through node 2: ${third.run.stderr()}`,
    });
    await waitFor(async () => !(await listed(tokens[0]!)).includes(N1.listed), {
      timeoutMs: 20_000,
      intervalMs: 250,
      message: () => `node 1's address left the keys; client 2: ${third.run.stderr()}`,
    });
    t.diagnostic(`node 1's address left the keys ${Date.now() - t0} ms after the null-route`);
    for (const token of tokens) assert.deepEqual(await listed(token), [N2.host]);
    const n1 = (await store.nodes().get(N1.name))!;
    assert.deepEqual(n1.suspectedAddresses, [N1.listed]);
    assert.equal(n1.state, 'suspected');
    const list = await runLadder(['nodes', '--store', pg!.url, 'list'], { killAfterMs: 30_000 });
    assert.match(list.stdout, /^Blocked-address reports: 3 distinct keys within 600 s /m);
    assert.match(list.stdout, new RegExp(`^n1\\s+suspected\\s+no\\s+127\\.0\\.10\\.1\\(suspected\\)`, 'm'));
    const api = JSON.parse((await n2.call('GET', '/nodes')).body) as {
      nodes: { name: string; status: string; suspectedAddresses?: string[] }[];
    };
    assert.deepEqual(api.nodes.find((n) => n.name === 'n1')?.suspectedAddresses, [N1.listed]);
    // Clients continue through node 2.
    for (const [i, c] of clients.entries()) assert.equal(await c.echo(`still ${i}`, 5000), `still ${i}`);

    // No client address anywhere: the clients' source address on loopback is 127.0.0.1; their
    // ports toward node 1 are in the censor's log; their SOCKS ports are known.
    const clientPorts = new Set<number>(clients.map((c) => c.socksPort));
    for (const d of censor.log.records) if (d.flow && d.flow.cIP) clientPorts.add(d.flow.cPort);
    assert.ok(clientPorts.size > clients.length, 'the censor saw the clients’ connections');
    const dump = await dumpAll();
    assert.ok(
      dump.some((l) => l.startsWith('address_reports:')),
      'the dump includes the reports',
    );
    for (const line of dump) {
      assert.ok(!line.includes('127.0.0.1'), `a client address stored: ${line}`);
      for (const p of clientPorts)
        assert.ok(!line.includes(`127.0.0.1:${p}`), `a client port stored: ${line}`);
    }

    // A fresh address for node 1: listed at once, no re-issue.
    const add = await runLadder(['nodes', '--store', pg!.url, 'add-address', 'n1', '127.0.10.2'], {
      killAfterMs: 30_000,
    });
    assert.equal(add.code, 0, add.stderr);
    assert.ok((await listed(tokens[0]!)).includes('127.0.10.2'));
    assert.ok(!(await listed(tokens[0]!)).includes(N1.listed), 'the suspected address stays out');
  },
);
