/**
 * Issue 16 part A end to end: real `ladder server --node` processes on one real PostgreSQL, each
 * on its own loopback address and the same data port (as a fleet's hosts would be).
 *
 * - a key created through node A's API carries traffic through node C within 2 s of the 201;
 * - a disable through B closes the key's connections on A and C within 2 s; negative control:
 *   node D runs with LADDER_FLEET_NOTIFY=off and --key-poll 10, and applies changes only at its
 *   polls (its tunnel outlives the disable by seconds, and closes within the poll bound);
 * - kill -9 of a node: shown down (ladder nodes list, GET /nodes, Prometheus) within the heartbeat
 *   bound and gone from the dynamic keys; a running `ladder client` on a dynamic key moves on
 *   without a restart; a blocked node leaves the keys at once, unblock brings it back;
 * - `ladder nodes` and `ladder server --node` bad input: one line, exit 2.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { KyselyStore } from '../../src/store/index.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { runLadder, seeHelp } from '../helpers/ladder-run.js';
import { readExactly } from '../helpers/net.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, type PgCluster } from '../helpers/postgres.js';
import { socks5Connect } from '../helpers/socks5.js';
import { sleep, waitFor } from '../helpers/wait.js';
import {
  fleetFixture,
  startNodeProc,
  stopProc,
  tryTunnel,
  untilCarries,
  type FleetFixture,
  type FleetNodeProc,
  type KeyCreds,
} from './fleet-helpers.js';

let fx: FleetFixture | undefined;
let pg: PgCluster | undefined;
let store: KyselyStore;
let dir: string;
let port: number;
let echoPort: number;
let procs: Run[] = [];
const nodes = new Map<string, FleetNodeProc>();

const HOSTS = { a: '127.0.0.2', b: '127.0.0.3', c: '127.0.0.4', d: '127.0.0.5' } as const;

before(async () => {
  if (!HAVE_POSTGRES) return;
  fx = await fleetFixture('ladder-fleet-');
  ({ pg, dir, port, echoPort, procs } = fx);
  for (const name of ['a', 'b', 'c', 'd'] as const) {
    const n = await startNodeProc({
      name,
      host: HOSTS[name],
      dataDir: join(dir, name),
      pgUrl: pg.url,
      port,
      apiPrefix: fx.apiPrefix,
      // D: no LISTEN and a long poll, the negative control; A: Prometheus on.
      ...(name === 'd'
        ? { env: { LADDER_FLEET_NOTIFY: 'off' }, extra: ['--no-metrics', '--key-poll', '10'] }
        : {}),
      ...(name === 'a' ? { extra: ['--metrics-host', '127.0.0.1', '--metrics-port', '0'] } : {}),
    });
    nodes.set(name, n);
    procs.push(n.run);
  }
  store = await fx.store();
});

after(() => fx?.close());

const node = (n: string): FleetNodeProc => nodes.get(n)!;
const SKIP = SKIP_WITHOUT_POSTGRES;

async function createKey(
  via: FleetNodeProc,
  name: string,
): Promise<{ id: string; creds: KeyCreds; at: number }> {
  const r = await via.call('POST', '/access-keys', { name });
  assert.equal(r.status, 201, r.body);
  const at = Date.now();
  const k = JSON.parse(r.body) as { id: string; method: string; password: string };
  return { id: k.id, creds: { method: k.method, password: k.password }, at };
}

/** The hosts a key's dynamic SIP008 lists, fetched through `via`'s API. */
async function listedHosts(via: FleetNodeProc, id: string): Promise<string[]> {
  const token = (await store.getKey(id))!.accessToken;
  const r = await via.call('GET', `/../access/${token}/sip008`);
  assert.equal(r.status, 200, r.body);
  return (JSON.parse(r.body) as { servers: { server: string }[] }).servers.map((s) => s.server).sort();
}

test(
  'fleet: a key created on A carries traffic through C within 2 s; D (no NOTIFY) only at its poll',
  { skip: SKIP },
  async (t) => {
    assert.match(
      node('a').run.stdout(),
      /fleet node a on postgres \(127\.0\.0\.2; heartbeat every 2 s, down after 6 s; key changes by LISTEN\/NOTIFY/,
    );
    assert.match(node('d').run.stdout(), /key changes by polling only/);
    const k = await createKey(node('a'), 'created-on-a');
    const viaC = await untilCarries(HOSTS.c, port, k.creds, echoPort, 5000);
    const sinceCreated = Date.now() - k.at;
    viaC.tunnel.destroy();
    assert.ok(sinceCreated < 2000, `C carried the key ${sinceCreated} ms after the 201 (bound 2 s)`);
    t.diagnostic(`key created on A carried through C ${sinceCreated} ms after the 201`);
    const viaB = await untilCarries(HOSTS.b, port, k.creds, echoPort, 2000);
    viaB.tunnel.destroy();
    // D learns it at its next poll (≤ 10 s), not from a notification.
    const viaD = await untilCarries(HOSTS.d, port, k.creds, echoPort, 14_000);
    viaD.tunnel.destroy();
  },
);

test(
  'fleet: a disable through B closes the key on A and C within 2 s; D closes only at its poll',
  { skip: SKIP },
  async (t) => {
    const k = await createKey(node('a'), 'disable-me');
    // Wait until D has the key: D just polled, so its next poll is ~10 s away (deterministic gap).
    const d = await untilCarries(HOSTS.d, port, k.creds, echoPort, 14_000);
    const a = await untilCarries(HOSTS.a, port, k.creds, echoPort, 2000);
    const c = await untilCarries(HOSTS.c, port, k.creds, echoPort, 2000);
    const r = await node('b').call('PUT', `/access-keys/${k.id}/enabled`, { enabled: false });
    assert.equal(r.status, 204, r.body);
    const at = Date.now();
    const [ca, cc] = await Promise.all([a.tunnel.closed, c.tunnel.closed]);
    assert.ok(ca.at - at < 2000, `closed on A ${ca.at - at} ms after the disable`);
    assert.ok(cc.at - at < 2000, `closed on C ${cc.at - at} ms after the disable`);
    // Negative control: without NOTIFY, D's tunnel is still up well after A's and C's closed…
    await sleep(Math.max(0, 3000 - (Date.now() - at)));
    const dState = await Promise.race([d.tunnel.closed, sleep(0).then(() => 'open' as const)]);
    assert.equal(dState, 'open', 'D (no LISTEN) has not applied the disable 3 s later');
    d.tunnel.send(Buffer.from('echo'));
    assert.equal((await d.tunnel.read(8, 2000)).subarray(4).toString(), 'echo');
    // …and closes within the polling bound (--key-poll 10, plus evaluation time).
    const cd = await Promise.race([d.tunnel.closed, sleep(14_000).then(() => undefined)]);
    assert.ok(cd, 'D closed the key within its poll bound');
    assert.ok(cd.at - at > 2500, `D closed ${cd.at - at} ms after the disable: at its poll`);
    t.diagnostic(
      `disable on B: closed on A after ${ca.at - at} ms, C ${cc.at - at} ms; D (no NOTIFY, poll 10 s) ${cd.at - at} ms`,
    );
    // Other users' connections were not dropped by the delta.
    const other = await createKey(node('a'), 'bystander');
    const by = await untilCarries(HOSTS.a, port, other.creds, echoPort, 2000);
    assert.equal(
      await node('c')
        .call('DELETE', `/access-keys/${k.id}`)
        .then((x) => x.status),
      204,
    );
    by.tunnel.send(Buffer.from('still'));
    assert.equal((await by.tunnel.read(9, 2000)).subarray(4).toString(), 'still');
    by.tunnel.destroy();
  },
);

test(
  'fleet: kill -9 is shown down and leaves the keys; a running client moves; block leaves at once',
  { skip: SKIP },
  async (t) => {
    // A key whose Outline JSON picks a node other than D (D learns new keys only at its poll).
    let k = await createKey(node('a'), 'roamer');
    let victim: FleetNodeProc | undefined;
    for (let i = 0; i < 20; i++) {
      const token = (await store.getKey(k.id))!.accessToken;
      const json = JSON.parse((await node('a').call('GET', `/../access/${token}`)).body) as {
        server: string;
      };
      victim = [...nodes.values()].find((n) => n.host === json.server)!;
      if (victim.name !== 'd') break;
      k = await createKey(node('a'), `roamer ${i}`);
    }
    assert.ok(victim && victim.name !== 'd');
    assert.deepEqual(await listedHosts(node('a'), k.id), Object.values(HOSTS).sort());
    const token = (await store.getKey(k.id))!.accessToken;
    // The client fetches through another node's API.
    const fetchVia = [...nodes.values()].find((n) => n !== victim && n.name !== 'd')!;
    const pin = (await node(fetchVia.name).call('GET', '/server')).status; // the API answers
    assert.equal(pin, 200);
    const { X509Certificate } = await import('node:crypto');
    const { readFileSync } = await import('node:fs');
    const sha = new X509Certificate(
      readFileSync(join(fetchVia.dataDir, 'api-cert.pem')),
    ).fingerprint256.replace(/:/g, '');
    const ssconf = `ssconf://127.0.0.1:${fetchVia.apiPort}/access/${token}?certSha256=${sha}#roamer`;
    const client = run(
      [
        'client',
        '--key',
        ssconf,
        '--socks',
        '127.0.0.1:0',
        '--refresh',
        '1',
        '--state-dir',
        join(dir, 'client'),
      ],
      {
        env: { LADDER_LOG_LEVEL: 'info' },
      },
    );
    procs.push(client);
    const socksPort = Number((await waitForStdout(client, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/, 30_000))[1]);
    const echoVia = async (word: string, ms: number): Promise<string> => {
      const s = await socks5Connect({ proxyPort: socksPort, host: '127.0.0.1', port: echoPort });
      try {
        s.write(word);
        return (await readExactly(s, word.length, ms)).toString();
      } finally {
        s.destroy();
      }
    };
    assert.equal(await echoVia('before', 10_000), 'before');

    // kill -9 the node the client uses.
    victim.run.child.kill('SIGKILL');
    await victim.run.exit;
    const killedAt = Date.now();
    // The database's view every 100 ms (the bound itself), then the operator's view once.
    await waitFor(async () => (await store.nodes().get(victim.name))?.down, {
      timeoutMs: 15_000,
      intervalMs: 100,
      message: 'the killed node shown down',
    });
    const downMs = Date.now() - killedAt;
    t.diagnostic(`kill -9: shown down ${downMs} ms after (bound: 6 s after its last heartbeat)`);
    assert.ok(downMs < 8000, `shown down ${downMs} ms after kill -9 (bound: 6 s without a heartbeat)`);
    const list = await runLadder(['nodes', '--store', pg!.url, 'list'], { killAfterMs: 30_000 });
    assert.match(list.stdout, new RegExp(`^${victim.name}\\s+down \\(active\\)\\s+no`, 'm'));
    assert.match(
      list.stdout,
      /^NAME\s+STATUS\s+IN KEYS\s+ADDRESSES\s+PORT\s+TRANSPORTS\s+HEARTBEAT\s+KEYS VER\s+VERSION$/m,
    );
    assert.ok(
      !(await listedHosts(fetchVia, k.id)).includes(victim.host),
      'the down node left the dynamic key',
    );
    const nodesJson = JSON.parse((await fetchVia.call('GET', '/nodes')).body) as {
      nodes: { name: string; status: string }[];
    };
    assert.equal(nodesJson.nodes.find((n) => n.name === victim.name)?.status, 'down');

    // The running client moves on (its next fetch lists the others), no restart.
    const moved = await waitFor(
      async () => (await echoVia('after', 1500).catch(() => undefined)) === 'after',
      { timeoutMs: 20_000, intervalMs: 200, message: () => `the client moves: ${client.stderr()}` },
    );
    assert.ok(moved);
    assert.equal(client.child.exitCode, null, 'no restart');

    // Prometheus on A (unless A was the victim) shows the node down.
    if (victim.name !== 'a') {
      const text = await (await fetch(node('a').metricsUrl!)).text();
      await waitFor(
        async () =>
          (await (await fetch(node('a').metricsUrl!)).text()).includes(
            `ladder_fleet_node_state{node="${victim.name}",state="down"} 1`,
          ),
        {
          timeoutMs: 5000,
          message: () =>
            `fleet gauges: ${text
              .split('\n')
              .filter((l) => l.startsWith('ladder_fleet'))
              .join(' | ')}`,
        },
      );
    }

    // Block: out of the keys at once; unblock: back.
    const y = [...nodes.values()].find((n) => n !== victim && n !== fetchVia)!;
    const blocked = await runLadder(['nodes', '--store', pg!.url, 'block', y.name, '--reason', 'test'], {
      killAfterMs: 30_000,
    });
    assert.equal(blocked.code, 0, blocked.stderr);
    assert.equal(blocked.stdout, `node ${y.name} is blocked\n`);
    assert.ok(
      !(await listedHosts(fetchVia, k.id)).includes(y.host),
      'a blocked node leaves the keys at once',
    );
    assert.equal((await fetchVia.call('POST', `/nodes/${y.name}/unblock`)).status, 200);
    assert.ok((await listedHosts(fetchVia, k.id)).includes(y.host), 'unblocked: listed again');
  },
);

test('fleet: ladder nodes and --node bad input is one line, exit 2', { skip: SKIP }, async () => {
  const one = async (args: string[], re: RegExp): Promise<void> => {
    const r = await runLadder(args, { killAfterMs: 60_000 });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, re);
  };
  // A running node (the kill -9 victim above is any of A, B, C: the key's spread picks it).
  const live = [...nodes.values()].find(
    (n) => n.name !== 'd' && n.run.child.exitCode === null && n.run.child.signalCode === null,
  )!;
  const name = live.name;
  const hostRe = live.host.replace(/\./g, '\\.');
  await one(['nodes', '--store', pg!.url, 'drain', 'nosuch'], /^ladder: no node named "nosuch"$/m);
  await one(
    ['nodes', '--store', pg!.url, 'add-address', 'a', 'not a host!'],
    /is not an IP address or a DNS name/,
  );
  await one(
    ['nodes', '--store', pg!.url, 'rm', name],
    new RegExp(`node "${name}" is running \\(heartbeat [\\d.]+ s ago\\); stop it first`),
  );
  await one(
    ['nodes', '--store', pg!.url, 'frobnicate'],
    new RegExp(`^ladder: unknown command 'frobnicate' ${seeHelp('nodes')}`, 'm'),
  );
  await one(['nodes', '--data-dir', join(dir, 'nostore'), 'list'], /fleet nodes live in a PostgreSQL store/);
  await one(
    ['server', '--data-dir', join(dir, 'sq'), '--node', 'x', '--port', '0'],
    /--node needs a PostgreSQL store/,
  );
  await one(
    ['server', '--store', pg!.url, '--data-dir', join(dir, 'bad'), '--node', 'bad name'],
    /--node must be 1-63 letters/,
  );
  // A name whose node runs: refused before anything listens.
  await one(
    [
      'server',
      '--store',
      pg!.url,
      '--data-dir',
      join(dir, 'dup'),
      '--node',
      name,
      '--port',
      '0',
      '--api-port',
      '0',
      '--no-metrics',
    ],
    new RegExp(
      `^ladder: node "${name}" is already running \\(heartbeat [\\d.]+ s ago; down after 6 s without one\\); stop it or choose another --node name$`,
      'm',
    ),
  );
  // The good path of the same commands, for contrast.
  const ok = await runLadder(['nodes', '--store', pg!.url, 'add-address', name, '127.0.0.33'], {
    killAfterMs: 30_000,
  });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `node ${name}: addresses 127.0.0.33, ${live.host}\n`);
  const b = (await store.nodes().get(name))!;
  assert.deepEqual(b.addresses, ['127.0.0.33', live.host]);
  // A clean stop (SIGTERM) shows the node down at once: keys stop listing it without the 6 s wait.
  await stopProc(live.run);
  const gone = (await store.nodes().get(name))!;
  assert.equal(gone.down, true);
  assert.equal(gone.stopped, true);
  const stoppedList = await runLadder(['nodes', '--store', pg!.url, 'list'], { killAfterMs: 30_000 });
  assert.match(
    stoppedList.stdout,
    new RegExp(
      `^${name}\\s+down \\(active\\)\\s+no\\s+127\\.0\\.0\\.33,${hostRe}\\s+\\d+\\s+ss:\\d+\\s+stopped\\s`,
      'm',
    ),
  );
  // tryTunnel is the probe above; a wrong password never carries traffic (the probe can fail).
  assert.equal(
    await tryTunnel(HOSTS.b, port, { method: 'chacha20-ietf-poly1305', password: 'wrong' }, echoPort),
    undefined,
  );
});
