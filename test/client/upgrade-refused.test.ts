/**
 * A web key whose upgrade the front refuses (a wrong secret path: the decoy's 404; a CDN that
 * cannot reach its origin: 502) is logged by `ladder client` at the default level with its own
 * code, ERR_UPGRADE_REFUSED, and the HTTP status, and once per status with what it means — for a
 * WebSocket, an HTTPUpgrade (with and without fast-open, whose refusal arrives after the dial)
 * and a gRPC call (refused after the dial too). The lines name neither the key's path nor the
 * server. Before: `tunnel dial failed` with ERR_CONNECT for the first two, nothing at all at info
 * for gRPC and fast-open. Real parts: Ladder's web front (builtin decoy, gRPC on) on loopback,
 * the client's SOCKS5 front, a plain HTTP server answering 502 as a CDN would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { socks5Connect } from '../helpers/socks5.js';
import { waitFor } from '../helpers/wait.js';
import { startWsTestServer } from '../helpers/web-server.js';
import { clientLogging } from '../helpers/client-logging.js';

const KEY = { id: 'k', method: 'aes-256-gcm', secret: 'upgrade-refused-secret' } as const;
const WRONG = 'wrong-secret-path';

interface Line {
  msg: string;
  code?: string;
  status?: number;
  tunnel?: string;
}

/** The client's info log after one SOCKS5 connection (with data) through `key`. */
async function logAfterOneConnection(key: string, until: (text: string) => boolean): Promise<string> {
  const { client, text } = await clientLogging(key, 'info');
  try {
    const s = await socks5Connect({
      proxyPort: client.socksAddress!.port,
      host: 'example.com',
      port: 80,
      earlyData: Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'),
    });
    s.resume();
    s.on('error', () => {});
    await waitFor(() => until(text()), { timeoutMs: 5000 }).catch(() => {});
    s.destroy();
  } finally {
    await client.close();
  }
  return text();
}

const lines = (text: string): Line[] =>
  text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line)
    .filter((l) => l.msg !== 'client listening');

const webKey = (port: number, options: string): string =>
  formatSsUrl({
    method: KEY.method,
    password: KEY.secret,
    host: '127.0.0.1',
    port,
    plugin: 'v2ray-plugin',
    pluginOptions: `mode=websocket;host=front.test;path=/${WRONG};mux=0${options}`,
  });

test('a refused upgrade: ERR_UPGRADE_REFUSED with its status per connection, what the status means once', async (t) => {
  const srv = await startWsTestServer({ keys: [KEY], front: { grpc: true } });
  t.after(() => srv.close());
  const cdn = http.createServer((_req, res) => res.writeHead(502).end('bad gateway'));
  await new Promise<void>((r) => cdn.listen(0, '127.0.0.1', r));
  t.after(() => cdn.close());
  const cdnPort = (cdn.address() as AddressInfo).port;

  const wrongPath =
    /answered HTTP 404 to the tunnel's upgrade request at the key's path \(a web page, not the tunnel\): the key's path \(path=, or serviceName= for gRPC\) does not match the server's secret path/;
  const cases: Array<[string, string, RegExp | undefined]> = [
    ['WebSocket', webKey(srv.webPort, ''), wrongPath],
    ['HTTPUpgrade', webKey(srv.webPort, ';v2ray-http-upgrade'), undefined],
    [
      'HTTPUpgrade fast-open',
      webKey(srv.webPort, ';v2ray-http-upgrade;v2ray-http-upgrade-fast-open'),
      undefined,
    ],
    [
      'gRPC',
      `ss://${Buffer.from(`${KEY.method}:${KEY.secret}`).toString('base64url')}@127.0.0.1:${srv.webPort}/?type=grpc&serviceName=${WRONG}&security=none`,
      undefined,
    ],
    [
      'WebSocket through a CDN that cannot reach its origin',
      webKey(cdnPort, ''),
      /answered HTTP 502 .*: a CDN or reverse proxy in front of the server could not reach it/,
    ],
  ];
  for (const [name, key, hint] of cases) {
    const status = name.includes('CDN') ? 502 : 404;
    const text = await logAfterOneConnection(
      key,
      (s) => /ERR_UPGRADE_REFUSED|upgrade-refused/.test(s) && (!hint || hint.test(s)),
    );
    const got = lines(text);
    // Every connection: its code and status (a dial refused), or the watch's line (after the dial).
    const refused = got.find(
      (l) =>
        (l.msg === 'tunnel dial failed' && l.code === 'ERR_UPGRADE_REFUSED' && l.status === status) ||
        (l.tunnel === 'upgrade-refused' && l.msg.includes(`refused (HTTP ${status})`)),
    );
    assert.ok(refused, `${name}: ${text}`);
    // What it means, once per status per process (the first case of each status).
    if (hint)
      assert.ok(
        got.some((l) => hint.test(l.msg)),
        `${name}: ${text}`,
      );
    else assert.ok(!got.some((l) => wrongPath.test(l.msg)), `${name}: said once only: ${text}`);
    assert.ok(
      !text.includes(WRONG) && !text.includes('127.0.0.1') && !text.includes('example.com'),
      `${name}: no path, server or destination: ${text}`,
    );
  }
});
