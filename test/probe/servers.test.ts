/**
 * `ladder probe --servers`: the self-check against real local servers. Through the CLI: a
 * running `ladder server` with the right key (reachable), the same server with a wrong key
 * (blocked at the tunnel step: it takes TCP and never answers), a closed port (blocked at tcp),
 * read from keys and from a subscription file; the table, the exit code, the JSON, and no
 * password or WebSocket path printed. One-line errors for bad input. In process: WebSocket
 * endpoints behind the real web front with TLS (a test CA): reachable with the CA, blocked at
 * tls without it (the certificate really is checked), blocked at websocket on a wrong path.
 */
import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createTunnelDialer, endpointFromKey } from '../../src/client/index.js';
import { checkServer, explain, type ServerTarget } from '../../src/probe/servers.js';
import { runLadder } from '../helpers/ladder-run.js';
import { freePort } from '../helpers/net.js';
import { ssUrl, startLadderServer, type Peer } from '../helpers/peers.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';
import { makeCa, opensslSkip, type TestCa } from '../web/fixtures.js';

const PASSWORD = 'probe-servers-right-key';
const dir = mkdtempSync(join(tmpdir(), 'ladder-probe-servers-'));
let server: Peer & { port: number };
let web: http.Server;
let target: string;
let requests = 0;

before(async () => {
  web = http.createServer((_req, res) => {
    requests++;
    res.writeHead(204).end();
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  target = `http://127.0.0.1:${(web.address() as AddressInfo).port}/generate_204`;
  server = await startLadderServer({ method: 'aes-256-gcm', password: PASSWORD });
});
after(async () => {
  await server?.stop();
  web?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ladder probe --servers (CLI, real ladder server)', () => {
  test('a working key, a wrong key and a closed port: the table says where each fails, exit 3, JSON masked', async () => {
    const closed = await freePort();
    const good = ssUrl('aes-256-gcm', PASSWORD, '127.0.0.1', server.port, 'home');
    const wrong = ssUrl('aes-256-gcm', 'not-the-password', '127.0.0.1', server.port);
    const sub = join(dir, 'sub.txt');
    writeFileSync(
      sub,
      Buffer.from(`${wrong}\n${ssUrl('aes-256-gcm', PASSWORD, '127.0.0.1', closed)}\n`).toString('base64'),
    );
    const json = join(dir, 'servers.jsonl');
    const before = requests;
    const r = await runLadder([
      'probe',
      '--servers',
      good,
      sub,
      '--target',
      target,
      '--timeout',
      '2',
      '--json',
      json,
    ]);
    assert.equal(r.code, 3, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], '1 of 3 endpoints reachable from this network');
    const row = (n: number): string => lines.find((l) => l.startsWith(`${n}  `)) ?? '';
    assert.match(row(1), /ss:\/\/127\.0\.0\.1:\d+ aes-256-gcm "home"\s+ok\s+ok\s+reachable/);
    assert.match(row(2), /ok\s+timeout\s+blocked at tunnel/);
    assert.match(row(3), /refused\s+-\s+blocked at tcp/);
    assert.match(
      r.stdout,
      /#2: the server took the connection but the tunnel did not answer \(\w+\): a wrong key or method, a key the server has disabled, expired or over its limit,/,
    );
    assert.match(r.stdout, /#3: TCP connect refused/);
    assert.equal(requests, before + 1, 'only the right key reached the target');
    const out = readFileSync(json, 'utf8');
    type M = {
      test_name: string;
      test_keys: { blocking: string | false; accessible: boolean; steps: Array<{ detail?: string }> };
    };
    const ms = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as M);
    assert.deepEqual(
      ms.map((m) => [m.test_name, m.test_keys.blocking, m.test_keys.accessible]),
      [
        ['x_ladder_server_check', false, true],
        ['x_ladder_server_check', 'tunnel', false],
        ['x_ladder_server_check', 'tcp', false],
      ],
    );
    assert.equal(ms[0]!.test_keys.steps.at(-1)?.detail, 'HTTP 204');
    for (const text of [r.stdout, r.stderr, out]) {
      assert.ok(!text.includes(PASSWORD) && !text.includes('not-the-password'), 'no password printed');
      assert.ok(!text.includes(Buffer.from(`aes-256-gcm:${PASSWORD}`).toString('base64url').slice(0, 20)));
    }
  });

  test('every endpoint reachable: exit 0 (the control for exit 3)', async () => {
    const r = await runLadder([
      'probe',
      '--servers',
      ssUrl('aes-256-gcm', PASSWORD, '127.0.0.1', server.port),
      '--target',
      target,
      '--timeout',
      '5',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^1 of 1 endpoints reachable/);
  });

  test('several keys in one quoted argument are split; no tag prints a password or a pasted URL', async () => {
    const other = 'probe-servers-second-key';
    const closed = await freePort();
    const first = ssUrl('aes-256-gcm', PASSWORD, '127.0.0.1', server.port, 'home');
    // The second key's tag carries a pasted access URL: the table shows the tag, not the URL.
    const second = `${ssUrl('aes-256-gcm', other, '127.0.0.1', closed)}#office%20ss%3A%2F%2Fc2VjcmV0@x.example%3A1`;
    const r = await runLadder([
      'probe',
      '--servers',
      `${first} \n ${second}`,
      '--target',
      target,
      '--timeout',
      '2',
    ]);
    assert.equal(r.code, 3, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], '1 of 2 endpoints reachable from this network', r.stdout);
    const row = (n: number): string => lines.find((l) => l.startsWith(`${n}  `)) ?? '';
    assert.match(row(1), /ss:\/\/127\.0\.0\.1:\d+ aes-256-gcm "home"\s+ok\s+ok\s+reachable/);
    assert.match(row(2), new RegExp(`ss://127\\.0\\.0\\.1:${closed} aes-256-gcm "office …"\\s+refused`));
    for (const text of [r.stdout, r.stderr]) {
      for (const pw of [PASSWORD, other])
        assert.ok(!text.includes(Buffer.from(`aes-256-gcm:${pw}`).toString('base64url').slice(0, 20)), text);
      assert.ok(!text.includes('c2VjcmV0') && !text.includes('ss://c') && !text.includes('x.example'), text);
    }
  });

  test('bad input: one line naming what and where, exit 2, no traffic, no secret', async () => {
    const garbage = join(dir, 'garbage.txt');
    writeFileSync(garbage, 'servers:\n  - not a key\n');
    const cases: Array<[string[], RegExp]> = [
      [['--servers', 'ss://bm90LWEta2V5@127.0.0.1:1'], /^ladder: --servers #1: invalid ss:\/\/ URL/],
      [['--servers', join(dir, 'missing.txt')], /missing\.txt: /],
      [['--servers', garbage], /garbage\.txt: /],
      [
        ['--servers', ssUrl('aes-256-gcm', PASSWORD, '127.0.0.1', 1), '--target', 'https://example.com/'],
        /--target must be an http:\/\/ URL/,
      ],
      [
        ['--servers', ssUrl('aes-256-gcm', PASSWORD, '127.0.0.1', 1), '--list', 'x.csv'],
        /--list or --servers, not both/,
      ],
    ];
    for (const [args, re] of cases) {
      const r = await runLadder(['probe', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const errLines = r.stderr.trim().split('\n');
      assert.equal(errLines.length, 1, r.stderr);
      assert.match(errLines[0]!, re);
      assert.ok(!r.stderr.includes(PASSWORD));
      assert.equal(r.stdout, '');
    }
  });
});

describe('checkServer over the web front (WebSocket + TLS, in process)', () => {
  const noOpenssl = opensslSkip();
  let ca: TestCa;
  let ws: WsTestServer;
  const secret = 'ws-probe-secret';
  before(async () => {
    if (noOpenssl) return;
    ca = makeCa(dir, 'front.test');
    ws = await startWsTestServer({
      keys: [{ id: 'k', method: 'chacha20-ietf-poly1305', secret }],
      secretPath: '/hidden-path',
      front: { tls: { cert: ca.cert, key: ca.key } },
    });
  });
  after(() => ws?.close());

  const wsTarget = (path: string, trust: boolean): ServerTarget => {
    const ep = endpointFromKey(
      `ss://${Buffer.from(`chacha20-ietf-poly1305:${secret}`).toString('base64url')}@127.0.0.1:${ws.webPort}?plugin=${encodeURIComponent(`v2ray-plugin;tls;mux=0;host=front.test;path=${path}`)}`,
      'local',
    );
    const websocket = { ...ep.websocket!, ...(trust ? { ca: ca.caPem } : {}) };
    return {
      name: 'wss',
      host: ep.host,
      port: ep.port,
      websocket,
      dialer: (nextHop) => createTunnelDialer({ ...ep, nextHop }),
    };
  };
  const opts = (): { target: URL; timeoutMs: number } => ({ target: new URL(target), timeoutMs: 3000 });

  test(
    'trusted certificate and the right path: reachable through tcp, tls, websocket, tunnel',
    { skip: noOpenssl },
    async () => {
      const c = await checkServer(wsTarget('/hidden-path', true), opts());
      assert.deepEqual(
        c.steps.map((s) => [s.step, s.failure]),
        [
          ['tcp', null],
          ['tls', null],
          ['websocket', null],
          ['tunnel', null],
        ],
      );
      assert.equal(c.blocking, false);
    },
  );

  test(
    'without the CA: blocked at tls (negative control: the certificate is checked)',
    { skip: noOpenssl },
    async () => {
      const c = await checkServer(wsTarget('/hidden-path', false), opts());
      assert.equal(c.blocking, 'tls');
      assert.match(c.steps.at(-1)!.failure!, /^ssl_/);
    },
  );

  test('a wrong secret path: blocked at websocket', { skip: noOpenssl }, async () => {
    const upgrades = ws.upgrades;
    const c = await checkServer(wsTarget('/wrong-path', true), opts());
    assert.equal(c.blocking, 'websocket');
    assert.equal(ws.upgrades, upgrades);
    assert.equal(c.steps.at(-1)!.failure, 'upgrade_refused: HTTP 404');
    assert.match(explain(c), /^the server answered HTTP 404 .*does not match the server's secret path/);
    assert.ok(!explain(c).includes('/wrong-path'), 'the path is not named');
  });
});
