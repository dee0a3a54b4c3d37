/**
 * HTTPUpgrade on the web front, byte for byte: hand-written clients send exactly the requests
 * Xray, mihomo and sing-box send (their header sets and order as Go's http.Request.Write lays
 * them out; Xray and mihomo's fast-open put their first bytes in the same write as the request,
 * mihomo's `?ed=` puts them in Sec-WebSocket-Protocol), check the 101 answer to the byte, and carry
 * a Shadowsocks stream (a SIP004 and a 2022 key) to an echo server. Then: the trusted proxy's
 * client address as for WebSocket, and the negative control: every wrong request at or near
 * /SECRET/up gets the decoy's answer to the same request on a path that was never secret, byte
 * for byte (Date masked), and reaches no endpoint. Also Ladder's own dialer: its request, its
 * fast-open (request and first bytes before any answer; a refusal as the stream's error), and
 * `ladder probe`'s upgrade step for an HTTPUpgrade key.
 *
 * No Debian package speaks HTTPUpgrade (v2ray is 4.34, from before the transport; no Xray,
 * sing-box or mihomo package): these replays stand in for those clients.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import http from 'node:http';
import { createTunnelDialer, endpointFromKey } from '../../src/client/index.js';
import { checkServers, type ServerTarget } from '../../src/probe/servers.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import type { NextHop } from '../../src/transport/dialer.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import {
  answerProblem,
  dialHttpUpgrade,
  httpUpgradeRequest,
} from '../../src/transport/httpupgrade-dialer.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';
import { exchange, makeCert, mask, opensslSkip, tempDir } from './fixtures.js';

const HOST = 'cdn.test';
const CHROME_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
/** RFC 6455's own example: this key's accept value. */
const WS_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

type Client = 'xray' | 'mihomo-fast-open' | 'mihomo-ed' | 'sing-box';

/** The request head each client sends (Go: Host, User-Agent, then the other headers sorted). */
function requestHead(client: Client, path: string, early?: Buffer): string {
  switch (client) {
    case 'xray': // transport/internet/httpupgrade/dialer.go, with its default browser headers
      return `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: ${CHROME_UA}\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n\r\n`;
    case 'mihomo-ed':
      return `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\nSec-Websocket-Protocol: ${early!.toString('base64url')}\r\nUpgrade: websocket\r\n\r\n`;
    default: // mihomo's StreamHTTPUpgrade and sing-box's v2rayhttpupgrade client
      return `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;
  }
}

const answerFor = (client: Client): string =>
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${client === 'xray' ? `Sec-WebSocket-Accept: ${WS_ACCEPT}\r\n` : ''}\r\n`;

interface Seen {
  answer?: string;
  /** Every socket write of the client, in order. */
  writes: Buffer[];
}

/**
 * A next hop that is `client` by hand: the request head goes out as that client sends it, the
 * answer head is recorded and stripped, and the rest is the stream.
 */
function handHop(port: number, client: Client, path: string, seen: Seen): NextHop {
  return async () => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await once(sock, 'connect');
    const send = (b: Buffer, cb?: (err?: Error | null) => void): void => {
      seen.writes.push(b);
      sock.write(b, cb);
    };
    let head = Buffer.alloc(0);
    let answered: () => void = () => {};
    const gotAnswer = new Promise<void>((r) => (answered = r));
    let started = false;
    const d = new Duplex({
      allowHalfOpen: true,
      write(chunk: Buffer, _enc, cb) {
        if (started) return send(chunk, cb);
        started = true;
        if (client === 'mihomo-ed') {
          // The first bytes ride in the header; the client reads the 101 before writing on.
          send(Buffer.from(requestHead(client, path, chunk), 'latin1'));
          void gotAnswer.then(() => cb());
        } else {
          // Fast-open: the request head and the first bytes in one write, before any answer.
          send(Buffer.concat([Buffer.from(requestHead(client, path), 'latin1'), chunk]), cb);
        }
      },
      final(cb) {
        sock.end();
        cb();
      },
      read() {
        sock.resume();
      },
    });
    sock.on('data', (c: Buffer) => {
      if (seen.answer === undefined) {
        head = Buffer.concat([head, c]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        seen.answer = head.subarray(0, end + 4).toString('latin1');
        answered();
        c = head.subarray(end + 4);
        if (c.length === 0) return;
      }
      if (!d.push(c)) sock.pause();
    });
    sock.on('end', () => d.push(null));
    sock.on('close', () => d.destroy());
    sock.on('error', (err) => d.destroy(err));
    if (client === 'sing-box') {
      // sing-box waits for the 101 before the stream is handed out.
      send(Buffer.from(requestHead(client, path), 'latin1'));
      started = true;
      await gotAnswer;
    }
    return d;
  };
}

/** Echo `size` random bytes through a Shadowsocks stream over `hop`; resolves when all came back. */
async function echoThrough(
  srv: WsTestServer,
  key: { method: string; password: string },
  hop: NextHop,
  echoPort: number,
  size: number,
): Promise<void> {
  const dialer = createTunnelDialer({ host: '127.0.0.1', port: srv.webPort, ...key, nextHop: hop });
  const s = new DialerStream(dialer, { type: 'ipv4', host: '127.0.0.1', port: echoPort });
  const body = randomBytes(size);
  const got: Buffer[] = [];
  let n = 0;
  s.on('data', (d: Buffer) => {
    got.push(d);
    n += d.length;
  });
  s.write(body.subarray(0, 300));
  s.write(body.subarray(300));
  await waitFor(() => n >= size, { timeoutMs: 10_000, message: `echo of ${size} bytes` });
  assert.equal(
    createHash('sha256').update(Buffer.concat(got)).digest('hex'),
    createHash('sha256').update(body).digest('hex'),
  );
  s.end();
  await once(s, 'close');
}

const KEYS = [
  { id: 'k4', method: 'aes-256-gcm', secret: `hu-${randomBytes(6).toString('hex')}` },
  { id: 'k22', method: '2022-blake3-aes-256-gcm', secret: randomBytes(32).toString('base64') },
];

describe('HTTPUpgrade at /SECRET/up, byte for byte', () => {
  let srv: WsTestServer;
  let echo: TestServer;
  before(async () => {
    echo = await startEcho();
    srv = await startWsTestServer({ keys: KEYS, front: { trustProxy: ['127.0.0.1/32'] } });
  });
  after(async () => {
    await srv?.close();
    await echo?.close();
  });

  const cases: [Client, (typeof KEYS)[number]][] = [
    ['xray', KEYS[0]!],
    ['xray', KEYS[1]!],
    ['mihomo-fast-open', KEYS[1]!],
    ['mihomo-ed', KEYS[0]!],
    ['sing-box', KEYS[1]!],
  ];
  for (const [client, key] of cases) {
    test(`${client}'s request (${key.method}): the 101 to the byte, then 256 KiB echoed`, async () => {
      const seen: Seen = { writes: [] };
      const path = `${srv.secretPath}/up`;
      await echoThrough(
        srv,
        { method: key.method, password: key.secret },
        handHop(srv.webPort, client, path, seen),
        echo.port,
        256 * 1024,
      );
      assert.equal(seen.answer, answerFor(client));
      const first = seen.writes[0]!.toString('latin1');
      if (client === 'xray' || client === 'mihomo-fast-open')
        assert.ok(
          first.length > requestHead(client, path).length,
          'the first Shadowsocks bytes were in the request write',
        );
      else assert.ok(first.endsWith('\r\n\r\n'), 'the request head alone');
    });
  }

  test('an X-Forwarded-For from the trusted proxy is the client address, as for WebSocket', async () => {
    const before = srv.clients.length;
    const r = await exchange(
      srv.webPort,
      `GET ${srv.secretPath}/up HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n`,
    );
    assert.ok(r.text.startsWith('HTTP/1.1 101 '));
    assert.equal(srv.clients.length, before + 1);
    assert.equal(srv.clients.at(-1), '203.0.113.9');
  });

  test("Ladder's own dialer: its request, a 101 it accepts, and a refusal as one line", async () => {
    assert.equal(
      httpUpgradeRequest('/p', 'h.test', WS_KEY),
      `GET /p HTTP/1.1\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${WS_KEY}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nHost: h.test\r\n\r\n`,
    );
    assert.equal(answerProblem(answerFor('sing-box').trimEnd()), undefined);
    assert.equal(
      answerProblem('HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade'),
      'HTTP upgrade answered 101 without Upgrade: websocket and Connection: Upgrade',
    );
    const before = srv.upgrades;
    await assert.rejects(
      dialHttpUpgrade({ url: `ws://127.0.0.1:${srv.webPort}/elsewhere/up`, host: HOST }),
      /^UpstreamDialError: HTTP upgrade refused \(HTTP 404\)$/,
    );
    const sock = await dialHttpUpgrade({
      url: `ws://127.0.0.1:${srv.webPort}${srv.secretPath}/up`,
      host: HOST,
    });
    assert.equal(srv.upgrades, before + 1);
    sock.destroy();
  });
});

test("the probe's upgrade step over HTTPUpgrade: through at /SECRET/up, stopped at the upgrade elsewhere", async () => {
  const srv = await startWsTestServer({ keys: [KEYS[0]!], front: {} });
  const page = http.createServer((_req, res) => res.end('hello'));
  page.listen(0, '127.0.0.1');
  await once(page, 'listening');
  try {
    const targets = [`${srv.secretPath}/up`, '/elsewhere/up'].map((path): ServerTarget => {
      const key = formatSsUrl({
        method: KEYS[0]!.method,
        password: KEYS[0]!.secret,
        host: '127.0.0.1',
        port: srv.webPort,
        plugin: 'v2ray-plugin',
        pluginOptions: `mode=websocket;host=${HOST};path=${path};v2ray-http-upgrade;mux=0`,
      });
      const ep = endpointFromKey(key, 'local');
      return {
        name: path,
        host: ep.host,
        port: ep.port,
        websocket: ep.websocket,
        dialer: (nextHop) => createTunnelDialer({ ...ep, nextHop }),
      };
    });
    const checks = await checkServers(targets, {
      target: new URL(`http://127.0.0.1:${(page.address() as net.AddressInfo).port}/`),
      timeoutMs: 3000,
    });
    assert.deepEqual(
      checks.map((c) => [c.transport, c.blocking]),
      [
        ['websocket', false],
        ['websocket', 'websocket'],
      ],
    );
    assert.match(checks[1]!.steps.at(-1)!.detail ?? '', /HTTP upgrade refused \(HTTP 404\)/);
  } finally {
    page.close();
    await srv.close();
  }
});

test(
  "Ladder's dialer over TLS: a pinned self-signed front, with and without fast-open; a wrong pin and no trust refused",
  { skip: opensslSkip() },
  async () => {
    const dir = tempDir('httpupgrade-pin');
    const cert = makeCert(dir.path, 'front.test');
    const srv = await startWsTestServer({
      keys: [KEYS[0]!],
      front: { tls: { cert: cert.cert, key: cert.key } },
    });
    try {
      const pin = createHash('sha256').update(new X509Certificate(cert.cert).raw).digest('hex');
      const url = `wss://127.0.0.1:${srv.webPort}${srv.secretPath}/up`;
      for (const fastOpen of [false, true]) {
        const s = await dialHttpUpgrade({
          url,
          host: HOST,
          servername: 'front.test',
          pinSha256: pin,
          fastOpen,
        });
        s.destroy();
      }
      const wrong = 'ab'.repeat(32);
      await assert.rejects(dialHttpUpgrade({ url, host: HOST, pinSha256: wrong }), /does not match the pin/);
      await assert.rejects(
        dialHttpUpgrade({ url, host: HOST, pinSha256: wrong, fastOpen: true }),
        /does not match the pin/,
      );
      await assert.rejects(
        dialHttpUpgrade({ url, host: HOST }),
        /HTTP upgrade connect failed: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED)/,
      );
      await waitFor(() => srv.upgrades === 1, {
        timeoutMs: 2000,
        message: 'the pinned non-fast-open dial upgraded',
      });
    } finally {
      await srv.close();
      dir.remove();
    }
  },
);

describe("Ladder's fast-open dialer (v2ray-http-upgrade-fast-open)", () => {
  /** A server that answers only once it holds `want` bytes; records what came before its answer. */
  async function withholding(
    want: number,
    answer: string,
  ): Promise<{ port: number; before: Promise<Buffer>; close(): void }> {
    let got: (b: Buffer) => void = () => {};
    const before = new Promise<Buffer>((r) => (got = r));
    const srv = net.createServer((s) => {
      let acc = Buffer.alloc(0);
      s.on('data', (c: Buffer) => {
        if (acc.length >= want) return;
        acc = Buffer.concat([acc, c]);
        if (acc.length < want) return;
        got(acc);
        s.write(answer);
      });
      s.on('error', () => {});
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    return { port: (srv.address() as net.AddressInfo).port, before, close: () => srv.close() };
  }

  test('resolves before any answer; the request and the first write leave together; the 101 is taken off the stream', async () => {
    const payload = randomBytes(500);
    const head = httpUpgradeRequest('/s/up', HOST, WS_KEY);
    const srv = await withholding(head.length + payload.length, `${answerFor('xray')}stream-bytes`);
    try {
      const s = await dialHttpUpgrade({ url: `ws://127.0.0.1:${srv.port}/s/up`, host: HOST, fastOpen: true });
      s.write(payload);
      const before = (await srv.before).toString('latin1');
      // The key is random per request: compare the head with it masked.
      const masked = before.replace(/Sec-WebSocket-Key: [^\r]+/, `Sec-WebSocket-Key: ${WS_KEY}`);
      assert.equal(masked, head + payload.toString('latin1'));
      const [got] = (await once(s, 'data')) as [Buffer];
      assert.equal(got.toString(), 'stream-bytes');
      s.destroy();
    } finally {
      srv.close();
    }
  });

  test('a refusal destroys the stream with the reason', async () => {
    const head = httpUpgradeRequest('/s/up', HOST, WS_KEY);
    const srv = await withholding(head.length + 1, 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    try {
      const s = await dialHttpUpgrade({ url: `ws://127.0.0.1:${srv.port}/s/up`, host: HOST, fastOpen: true });
      s.resume();
      s.write(Buffer.from('x'));
      const err = await new Promise<Error>((resolve) => s.once('error', resolve));
      assert.match(err.message, /^HTTP upgrade refused \(HTTP 404\)$/);
    } finally {
      srv.close();
    }
  });
});

describe('HTTPUpgrade negative control: wrong requests get the decoy, as on any other path', () => {
  let srv: WsTestServer;
  before(async () => {
    srv = await startWsTestServer({ keys: KEYS, front: {} });
  });
  after(async () => srv?.close());

  const up = 'Connection: Upgrade\r\nUpgrade: websocket\r\n';
  /** `P` is the path's place; each request is also sent with a never-secret path of the same length. */
  const WRONG: [string, string][] = [
    ['a path beside /up', `GET P/upx HTTP/1.1\r\nHost: ${HOST}\r\n${up}\r\n`],
    ['a path below /up', `GET P/up/x HTTP/1.1\r\nHost: ${HOST}\r\n${up}\r\n`],
    [
      'Upgrade other than websocket',
      `GET P/up HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
    ],
    ['POST', `POST P/up HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 0\r\n${up}\r\n`],
    ['a body', `GET P/up HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 3\r\n${up}\r\nabc`],
    [
      'early data that is not base64',
      `GET P/up HTTP/1.1\r\nHost: ${HOST}\r\nSec-WebSocket-Protocol: a b\r\n${up}\r\n`,
    ],
    ['HTTP/1.0', `GET P/up HTTP/1.0\r\nHost: ${HOST}\r\n${up}\r\n`],
    ['no Upgrade header (a plain GET)', `GET P/up HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`],
  ];
  for (const [what, req] of WRONG) {
    test(what, async () => {
      const other = '/'.padEnd(srv.secretPath.length, 'z');
      const before = srv.upgrades;
      const got = await exchange(srv.webPort, req.replace('P', srv.secretPath));
      const plain = await exchange(srv.webPort, req.replace('P', other));
      assert.ok(!got.text.startsWith('HTTP/1.1 101'), got.text.slice(0, 40));
      assert.equal(mask(got.text), mask(plain.text));
      assert.equal(got.close, plain.close);
      assert.equal(srv.upgrades, before, 'nothing reached the endpoints');
    });
  }
});
