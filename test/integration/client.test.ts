/**
 * The local proxy client end to end on loopback: SOCKS5 and HTTP inbounds -> Shadowsocks AEAD
 * dialer -> a tiny SIP004 server built in this file from the codec (decode header, connect,
 * relay) -> echo / HTTP / half-close destinations.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { SocksClient } from 'socks';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { endpointFromKey } from '../../src/client/key.js';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { decodeAddress, type SocksAddress } from '../../src/protocol/socks5/address.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { encodeFirstWrite, inProberTrigger, makeShapedSalt } from '../../src/protocol/shadowsocks/shaping.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { DirectDialer } from '../../src/transport/dialer.js';
import { readAll, readExactly, startEcho, type TestServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';
import { waitFor } from '../helpers/wait.js';

const PASSWORD = 'correct horse battery staple';
const METHOD = 'aes-256-gcm';

interface MiniSs {
  port: number;
  /** Target addresses decoded from clients' headers, in order. */
  seen: SocksAddress[];
  close(): Promise<void>;
}

/** A minimal SIP004 server: enough to exercise the client, not a reference implementation. */
async function startMiniSs(methodName = METHOD, password = PASSWORD): Promise<MiniSs> {
  const method = getAeadMethod(methodName);
  const key = evpBytesToKey(password, method.keySize);
  const seen: SocksAddress[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    const dec = new AeadDecoder(method, key);
    const enc = new AeadEncoder(method, key);
    let head = Buffer.alloc(0);
    let target: net.Socket | undefined;
    let clientEnded = false;
    sock.on('data', (chunk: Buffer) => {
      let payloads: Buffer[];
      try {
        payloads = dec.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      for (const p of payloads) {
        if (target) {
          target.write(p);
          continue;
        }
        head = Buffer.concat([head, p]);
        const a = decodeAddress(head);
        if (!a) continue;
        seen.push(a.address);
        const t = net.connect({ host: a.address.host, port: a.address.port, allowHalfOpen: true });
        target = t;
        sockets.add(t);
        t.on('close', () => sockets.delete(t));
        t.on('error', () => sock.destroy());
        const rest = head.subarray(a.length);
        if (rest.length > 0) t.write(rest);
        t.on('data', (d: Buffer) => sock.write(enc.encode(d)));
        t.on('end', () => sock.end());
        if (clientEnded) t.end();
      }
    });
    sock.on('end', () => {
      clientEnded = true;
      target?.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A raw TCP hop in front of `port` that records the first 'data' chunk of every connection. */
async function startCapture(
  port: number,
): Promise<{ port: number; firsts: Buffer[]; close(): Promise<void> }> {
  const firsts: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (a) => {
    const b = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        a.destroy();
        b.destroy();
      });
    }
    a.once('data', (d: Buffer) => firsts.push(Buffer.from(d)));
    a.pipe(b);
    b.pipe(a);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    firsts,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function keyFor(port: number, extra: { prefix?: Uint8Array; method?: string } = {}): string {
  return formatSsUrl({
    method: extra.method ?? METHOD,
    password: PASSWORD,
    host: '127.0.0.1',
    port,
    ...(extra.prefix ? { prefix: extra.prefix } : {}),
  });
}

async function roundTrip(sock: net.Socket, data: Buffer): Promise<Buffer> {
  sock.write(data);
  return readExactly(sock, data.length, 10_000);
}

describe('ladder client through a SIP004 server', () => {
  let ss: MiniSs;
  let capture: Awaited<ReturnType<typeof startCapture>>;
  let echo: TestServer;
  let echo6: TestServer;
  let client: LocalClient;
  let socksPort: number;
  let httpPort: number;

  before(async () => {
    ss = await startMiniSs();
    capture = await startCapture(ss.port);
    echo = await startEcho();
    echo6 = await startEcho({ host: '::1' });
    // A generous first-data wait so the first-write length checks cannot be broken by a slow,
    // loaded machine (the application here writes immediately, so nothing actually waits).
    // shape: false: these tests check the unshaped SIP004 layout byte for byte (shaping, on by
    // default, is tested in 'first-packet shaping and failures').
    client = await startClient({
      key: keyFor(capture.port),
      socks: '127.0.0.1:0',
      http: '127.0.0.1:0',
      firstDataWaitMs: 1000,
      shape: false,
    });
    socksPort = client.socksAddress!.port;
    httpPort = client.httpAddress!.port;
  });

  after(async () => {
    await client.close();
    await Promise.all([ss.close(), capture.close(), echo.close(), echo6.close()]);
  });

  test('SOCKS5 CONNECT to IPv4, IPv6 and a domain (sent unresolved)', async () => {
    for (const host of ['127.0.0.1', '::1', 'localhost']) {
      const port = host === '::1' ? echo6.port : echo.port;
      const before = ss.seen.length;
      const s = await socks5Connect({ proxyPort: socksPort, host, port });
      const data = randomBytes(3000);
      assert.deepEqual(await roundTrip(s, data), data, `echo via ${host}`);
      s.destroy();
      const addr = ss.seen[before]!;
      assert.equal(addr.host, host);
      assert.equal(addr.type, host === 'localhost' ? 'domain' : host === '::1' ? 'ipv6' : 'ipv4');
      assert.equal(addr.port, port);
    }
  });

  test('SOCKS5 through the `socks` npm client (socks5h: domain)', async () => {
    const { socket } = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port: socksPort, type: 5 },
      command: 'connect',
      destination: { host: 'localhost', port: echo.port },
      timeout: 5000,
    });
    const data = Buffer.from('hello through socks');
    assert.deepEqual(await roundTrip(socket, data), data);
    socket.destroy();
    assert.equal(ss.seen.at(-1)!.type, 'domain');
  });

  test('the first write carries salt + header + first app bytes, and its length follows the request', async () => {
    const method = getAeadMethod(METHOD);
    const lengths: number[] = [];
    for (const n of [1, 100, 1000, 5000]) {
      const before = capture.firsts.length;
      const s = await socks5Connect({ proxyPort: socksPort, host: '127.0.0.1', port: echo.port });
      const data = randomBytes(n);
      assert.deepEqual(await roundTrip(s, data), data);
      s.destroy();
      const first = await waitFor(() => capture.firsts[before]);
      // salt | sealed length (2+16) | sealed (IPv4 header 7 + n) + tag 16
      assert.equal(first.length, method.saltSize + 2 + 16 + 7 + n + 16, `first packet for ${n} app bytes`);
      lengths.push(first.length);
    }
    assert.deepEqual(
      lengths,
      [...lengths].sort((a, b) => a - b),
    );
  });

  test('optimistic data pipelined behind the SOCKS5 request also rides in the first write', async () => {
    const method = getAeadMethod(METHOD);
    const before = capture.firsts.length;
    const early = Buffer.from('GET / HTTP/1.0\r\n\r\n');
    const s = await socks5Connect({
      proxyPort: socksPort,
      host: '127.0.0.1',
      port: echo.port,
      earlyData: early,
    });
    assert.deepEqual(await readExactly(s, early.length, 5000), early);
    s.destroy();
    const first = await waitFor(() => capture.firsts[before]);
    assert.equal(first.length, method.saltSize + 2 + 16 + 7 + early.length + 16);
  });

  test('server-speaks-first: the header goes alone after the wait and the banner arrives', async () => {
    const banner = Buffer.from('220 smtp.example ESMTP ready\r\n');
    const smtp = net.createServer((s) => {
      s.on('error', () => {});
      s.end(banner);
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
    try {
      const before = capture.firsts.length;
      const t0 = Date.now();
      const s = await socks5Connect({
        proxyPort: socksPort,
        host: '127.0.0.1',
        port: (smtp.address() as AddressInfo).port,
      });
      const got = await readAll(s, 5000);
      assert.deepEqual(got, banner);
      assert.ok(Date.now() - t0 < 10_000);
      const first = await waitFor(() => capture.firsts[before]);
      assert.equal(first.length, getAeadMethod(METHOD).saltSize + 2 + 16 + 7 + 16, 'header alone');
    } finally {
      await new Promise<void>((r) => smtp.close(() => r()));
    }
  });

  test('half-close: the application ends its side and still gets the whole response', async () => {
    // Destination answers only after it sees FIN: sha256 of everything it read.
    const hasher = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      const h = createHash('sha256');
      s.on('data', (d: Buffer) => h.update(d));
      s.on('end', () => s.end(h.digest()));
    });
    await new Promise<void>((r) => hasher.listen(0, '127.0.0.1', r));
    const port = (hasher.address() as AddressInfo).port;
    try {
      // (a) data, a pause, then FIN; (b) data and FIN at once, inside the first-data wait;
      // (c) FIN with no data at all.
      for (const mode of ['paused', 'immediate', 'empty'] as const) {
        const s = await socks5Connect({ proxyPort: socksPort, host: '127.0.0.1', port });
        const body = mode === 'empty' ? Buffer.alloc(0) : randomBytes(mode === 'paused' ? 200_000 : 500);
        if (mode === 'paused') {
          s.write(body.subarray(0, 1000));
          await new Promise((r) => setTimeout(r, 80));
          s.end(body.subarray(1000));
        } else {
          s.end(body);
        }
        const got = await readAll(s, 10_000);
        assert.deepEqual(got, createHash('sha256').update(body).digest(), `half-close (${mode})`);
      }
    } finally {
      await new Promise<void>((r) => hasher.close(() => r()));
    }
  });

  test('8 MiB each way arrives intact', async () => {
    const s = await socks5Connect({ proxyPort: socksPort, host: '127.0.0.1', port: echo.port });
    const body = randomBytes(8 * 1024 * 1024);
    const done = readExactly(s, body.length, 30_000);
    s.write(body);
    const got = await done;
    assert.ok(got.equals(body));
    s.destroy();
  });

  test('UDP ASSOCIATE and BIND get COMMAND_NOT_SUPPORTED', async () => {
    for (const cmd of [2, 3]) {
      const s = net.connect({ host: '127.0.0.1', port: socksPort });
      s.write(Buffer.from([5, 1, 0]));
      assert.deepEqual(await readExactly(s, 2, 5000), Buffer.from([5, 0]));
      s.write(Buffer.from([5, cmd, 0, 1, 0, 0, 0, 0, 0, 0]));
      const reply = await readAll(s, 5000);
      assert.equal(reply[0], 5);
      assert.equal(reply[1], 7, 'REP 7 = command not supported');
      assert.equal(reply.length, 10);
    }
  });

  test('garbage on the SOCKS5 port is closed without a reply; no-acceptable-method is answered', async () => {
    const g = net.connect({ host: '127.0.0.1', port: socksPort });
    g.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    assert.equal((await readAll(g, 5000)).length, 0);
    const m = net.connect({ host: '127.0.0.1', port: socksPort });
    m.write(Buffer.from([5, 1, 2])); // only user/pass offered, none configured
    assert.deepEqual(await readAll(m, 5000), Buffer.from([5, 0xff]));
  });

  test('HTTP CONNECT tunnels raw bytes; first bytes ride with the header', async () => {
    const method = getAeadMethod(METHOD);
    const before = capture.firsts.length;
    const s = net.connect({ host: '127.0.0.1', port: httpPort });
    s.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`);
    const head = await new Promise<string>((resolve, reject) => {
      let text = '';
      const onData = (d: Buffer): void => {
        text += d.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        if (end !== -1) {
          s.off('data', onData);
          s.pause();
          if (text.length > end + 4) s.unshift(Buffer.from(text.slice(end + 4), 'latin1'));
          resolve(text.slice(0, end));
        }
      };
      s.on('data', onData);
      s.once('error', reject);
    });
    assert.match(head, /^HTTP\/1\.1 200 /);
    const data = randomBytes(777);
    assert.deepEqual(await roundTrip(s, data), data);
    s.destroy();
    const first = await waitFor(() => capture.firsts[before]);
    assert.equal(first.length, method.saltSize + 2 + 16 + 7 + data.length + 16);
  });

  test('HTTP absolute-URI GET and POST are rewritten to origin-form without proxy headers', async () => {
    const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
    const origin = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        res.setHeader('Set-Cookie', ['a=1', 'b=2']);
        res.end(`hello ${req.method} ${req.url}`);
      });
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const port = (origin.address() as AddressInfo).port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const viaProxy = (method: string, path: string, body?: string) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const req = http.request({
          host: '127.0.0.1',
          port: httpPort,
          method,
          path: `http://localhost:${port}${path}`,
          agent,
          headers: {
            'Proxy-Connection': 'keep-alive',
            'X-Test': 'yes',
            Connection: 'keep-alive, X-Drop',
            'X-Drop': 'gone',
          },
        });
        req.on('response', (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      const r1 = await viaProxy('GET', '/a/b?c=d');
      assert.equal(r1.status, 200);
      assert.equal(r1.body, 'hello GET /a/b?c=d');
      assert.deepEqual(r1.headers['set-cookie'], ['a=1', 'b=2']);
      const r2 = await viaProxy('POST', '/post', 'x'.repeat(10_000));
      assert.equal(r2.body, 'hello POST /post');
      assert.equal(seen.length, 2);
      assert.equal(seen[0]!.url, '/a/b?c=d');
      assert.equal(seen[0]!.headers.host, `localhost:${port}`);
      assert.equal(seen[0]!.headers['x-test'], 'yes');
      assert.equal(seen[0]!.headers['proxy-connection'], undefined);
      assert.equal(seen[0]!.headers['x-drop'], undefined);
      assert.equal(seen[0]!.headers.connection, 'close');
      assert.equal(seen[1]!.body.length, 10_000);
      assert.equal(ss.seen.at(-1)!.type, 'domain', 'request host goes to the server unresolved');
    } finally {
      agent.destroy();
      await new Promise<void>((r) => origin.close(() => r()));
    }
  });

  test('HTTP Upgrade through an absolute-URI request (WebSocket-style) relays raw bytes', async () => {
    const origin = http.createServer((_req, res) => res.end('no upgrade'));
    let seenHead = '';
    origin.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      seenHead = `${req.method} ${req.url} host=${req.headers.host} upgrade=${req.headers.upgrade} proxy=${req.headers['proxy-connection'] ?? '-'}`;
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      socket.pipe(socket);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const port = (origin.address() as AddressInfo).port;
    try {
      const s = net.connect({ host: '127.0.0.1', port: httpPort });
      s.write(
        `GET http://127.0.0.1:${port}/ws?x=1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: echo\r\nProxy-Connection: keep-alive\r\n\r\n`,
      );
      const expected = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n';
      assert.equal((await readExactly(s, expected.length, 5000)).toString(), expected);
      assert.deepEqual(await roundTrip(s, Buffer.from('frames')), Buffer.from('frames'));
      s.destroy();
      assert.equal(seenHead, `GET /ws?x=1 host=127.0.0.1:${port} upgrade=echo proxy=-`);
    } finally {
      origin.closeAllConnections();
      await new Promise<void>((r) => origin.close(() => r()));
    }
  });

  test('HTTP proxy refuses non-proxy requests and https absolute URIs with 400', async () => {
    for (const path of ['/local', 'https://example.com/']) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: httpPort, path, agent: false });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 400);
    }
  });
});

describe('first-packet shaping and failures', () => {
  test('prefix bytes are the first bytes on the wire and the server still decodes', async () => {
    const ss = await startMiniSs();
    const capture = await startCapture(ss.port);
    const echo = await startEcho();
    const prefix = Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01', 'latin1');
    const client = await startClient({ key: keyFor(capture.port, { prefix }), socks: '127.0.0.1:0' });
    try {
      const s = await socks5Connect({
        proxyPort: client.socksAddress!.port,
        host: '127.0.0.1',
        port: echo.port,
      });
      const data = Buffer.from('prefixed');
      assert.deepEqual(await roundTrip(s, data), data);
      s.destroy();
      const first = await waitFor(() => capture.firsts[0]);
      assert.deepEqual(first.subarray(0, prefix.length), prefix);
    } finally {
      await client.close();
      await Promise.all([ss.close(), capture.close(), echo.close()]);
    }
  });

  test('shaping is on by default for a SIP004 key without a prefix; shape: false is the control', async () => {
    const ss = await startMiniSs();
    const capture = await startCapture(ss.port);
    const echo = await startEcho();
    const shaped = await startClient({
      key: keyFor(capture.port),
      socks: '127.0.0.1:0',
      firstDataWaitMs: 1000,
    });
    const plain = await startClient({
      key: keyFor(capture.port),
      socks: '127.0.0.1:0',
      firstDataWaitMs: 1000,
      shape: false,
    });
    const salt = getAeadMethod(METHOD).saltSize;
    // Ex2 (first 6 bytes printable) or Ex5 (TLS record header / HTTP method): the exemptions the
    // shaped prefixes are built from (docs/client-defences.md, D1).
    const exempt = (b: Buffer): boolean =>
      [...b.subarray(0, 6)].every((x) => x >= 0x20 && x <= 0x7e) ||
      ((b[0] === 0x16 || b[0] === 0x17) && b[1] === 3 && b[2]! <= 9) ||
      /^(GET|PUT|POST|HEAD) /.test(b.subarray(0, 5).toString('latin1'));
    const run = async (c: LocalClient, n: number): Promise<Buffer> => {
      const before = capture.firsts.length;
      const s = await socks5Connect({ proxyPort: c.socksAddress!.port, host: '127.0.0.1', port: echo.port });
      const data = randomBytes(n);
      assert.deepEqual(await roundTrip(s, data), data, 'the server accepts and relays');
      s.destroy();
      return waitFor(() => capture.firsts[before]);
    };
    try {
      const firsts: Buffer[] = [];
      // n = 89: unshaped 32 + 34 + 7 + 89 = 162 is in the prober trigger (160..999, mod 16 = 2).
      for (const n of [89, 10, 300, 89, 500, 1]) firsts.push(await run(shaped, n));
      for (const f of firsts) {
        assert.ok(exempt(f), `shaped first packet starts ${f.subarray(0, 6).toString('hex')}`);
        assert.ok(!inProberTrigger(f.length), `shaped first write of ${f.length} bytes avoids the trigger`);
      }
      // Shaped layout: salt | len(2)+16 | header 7 + data + 16, except the trigger case, which is
      // split into two chunks (header, then data: +34 bytes).
      assert.equal(firsts[1]!.length, salt + 34 + 7 + 10);
      assert.equal(firsts[0]!.length, salt + 34 + 7 + 34 + 89);
      assert.ok(
        new Set(firsts.map((f) => f.subarray(0, 6).toString('hex'))).size >= 3,
        'the prefix varies per connection',
      );
      // Control: unshaped, the trigger length goes out as is and the salt is uniformly random.
      const control = await run(plain, 89);
      assert.equal(control.length, salt + 34 + 7 + 89);
      assert.ok(inProberTrigger(control.length));
    } finally {
      await Promise.all([shaped.close(), plain.close()]);
      await Promise.all([ss.close(), capture.close(), echo.close()]);
    }
  });

  test('shaping hooks: per-connection salt factory and first-write plan (shaping.ts)', async () => {
    const ss = await startMiniSs();
    const capture = await startCapture(ss.port);
    const echo = await startEcho();
    const dialer = new ShadowsocksDialer({
      host: '127.0.0.1',
      port: capture.port,
      method: METHOD,
      password: PASSWORD,
      saltFactory: (n) => makeShapedSalt(n),
      firstWrite: encodeFirstWrite,
    });
    const client = await startClient({ dialer, socks: '127.0.0.1:0', firstDataWaitMs: 1000 });
    try {
      // Unshaped, 32 + 34 + 7 + n = 162 (n = 89) is in the trigger (160..999, length % 16 == 2).
      assert.ok(inProberTrigger(32 + 34 + 7 + 89));
      for (const n of [89, 200]) {
        const before = capture.firsts.length;
        const s = await socks5Connect({
          proxyPort: client.socksAddress!.port,
          host: '127.0.0.1',
          port: echo.port,
        });
        const data = randomBytes(n);
        assert.deepEqual(await roundTrip(s, data), data);
        s.destroy();
        const first = await waitFor(() => capture.firsts[before]);
        assert.ok(!inProberTrigger(first.length), `first write of ${first.length} bytes avoids the trigger`);
      }
      const salts = capture.firsts.map((f) => f.subarray(0, 6).toString('latin1'));
      assert.notEqual(salts[0], salts[1], 'prefix differs per connection');
    } finally {
      await client.close();
      await Promise.all([ss.close(), capture.close(), echo.close()]);
    }
  });

  test('HTTP absolute-URI requests over a dialer that cannot reach its server get a 502', async () => {
    const echo = await startEcho();
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const failing = await startClient({
      dialer: new ShadowsocksDialer({
        host: '127.0.0.1',
        port: deadPort,
        method: METHOD,
        password: PASSWORD,
      }),
      http: '127.0.0.1:0',
    });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({
          host: '127.0.0.1',
          port: failing.httpAddress!.port,
          path: `http://127.0.0.1:${echo.port}/`,
          agent: false,
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 502);
    } finally {
      await failing.close();
      await echo.close();
    }
  });

  test('a prefix longer than the salt is refused', () => {
    assert.throws(
      () =>
        new ShadowsocksDialer({
          host: '127.0.0.1',
          port: 1,
          method: 'aes-128-gcm',
          password: 'x',
          prefix: new Uint8Array(17),
        }),
      /prefix of 17 bytes is longer than the 16-byte salt/,
    );
  });

  test('an unreachable server closes the application connection', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const client = await startClient({ key: keyFor(port), socks: '127.0.0.1:0' });
    try {
      const s = await socks5Connect({ proxyPort: client.socksAddress!.port, host: '127.0.0.1', port: 9 });
      s.write('hi');
      const got = await readAll(s, 5000).catch(() => Buffer.alloc(0));
      assert.equal(got.length, 0);
    } finally {
      await client.close();
    }
  });

  test('a wrong password is not decoded by the server and the connection closes', async () => {
    const ss = await startMiniSs(METHOD, 'another password');
    const echo = await startEcho();
    const client = await startClient({ key: keyFor(ss.port), socks: '127.0.0.1:0' });
    try {
      const s = await socks5Connect({
        proxyPort: client.socksAddress!.port,
        host: '127.0.0.1',
        port: echo.port,
      });
      s.write('hi');
      const got = await readAll(s, 5000).catch(() => Buffer.alloc(0));
      assert.equal(got.length, 0);
      assert.equal(ss.seen.length, 0);
    } finally {
      await client.close();
      await Promise.all([ss.close(), echo.close()]);
    }
  });

  test('SOCKS5 username/password when configured', async () => {
    const echo = await startEcho();
    const client = await startClient({
      dialer: new DirectDialer(),
      socks: '127.0.0.1:0',
      auth: { username: 'alice', password: 's3cret' },
    });
    try {
      const port = client.socksAddress!.port;
      const ok = await SocksClient.createConnection({
        proxy: { host: '127.0.0.1', port, type: 5, userId: 'alice', password: 's3cret' },
        command: 'connect',
        destination: { host: '127.0.0.1', port: echo.port },
        timeout: 5000,
      });
      assert.deepEqual(await roundTrip(ok.socket, Buffer.from('authed')), Buffer.from('authed'));
      ok.socket.destroy();
      await assert.rejects(
        SocksClient.createConnection({
          proxy: { host: '127.0.0.1', port, type: 5, userId: 'alice', password: 'wrong' },
          command: 'connect',
          destination: { host: '127.0.0.1', port: echo.port },
          timeout: 5000,
        }),
      );
    } finally {
      await client.close();
      await echo.close();
    }
  });

  test('HTTP proxy Basic auth when configured; IPv6 listen addresses', async () => {
    const echo = await startEcho();
    const client = await startClient({
      dialer: new DirectDialer(),
      http: '[::1]:0',
      socks: '[::1]:0',
      auth: { username: 'bob', password: 'pw:with:colons' },
    });
    try {
      assert.equal(client.httpAddress!.address, '::1');
      assert.equal(client.socksAddress!.address, '::1');
      const connectVia = async (auth?: string): Promise<string> => {
        const s = net.connect({ host: '::1', port: client.httpAddress!.port });
        const extra = auth ? `Proxy-Authorization: Basic ${Buffer.from(auth).toString('base64')}\r\n` : '';
        s.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`);
        const head = (await readExactly(s, 12, 5000)).toString();
        s.destroy();
        return head;
      };
      assert.equal(await connectVia(), 'HTTP/1.1 407');
      assert.equal(await connectVia('bob:wrong'), 'HTTP/1.1 407');
      assert.equal(await connectVia('bob:pw:with:colons'), 'HTTP/1.1 200');
    } finally {
      await client.close();
      await echo.close();
    }
  });

  test('a refused SOCKS5 client that keeps its side open is closed by us anyway', async () => {
    const client = await startClient({ dialer: new DirectDialer(), socks: '127.0.0.1:0' });
    try {
      const s = net.connect({ host: '127.0.0.1', port: client.socksAddress!.port, allowHalfOpen: true });
      s.on('error', () => {});
      s.write(Buffer.from([5, 1, 2])); // only user/pass offered: refused
      assert.deepEqual(await readExactly(s, 2, 5000), Buffer.from([5, 0xff]));
      await waitFor(() => client.openSockets === 0, { timeoutMs: 6000, intervalMs: 10 });
      s.destroy();
    } finally {
      await client.close();
    }
  });

  test('the HTTP inbound serves /proxy.pac when given one', async () => {
    const pac = 'function FindProxyForURL(url, host) { return "SOCKS5 127.0.0.1:1080; DIRECT"; }';
    const client = await startClient({ dialer: new DirectDialer(), http: '127.0.0.1:0', pac: () => pac });
    try {
      const r = await fetch(`http://127.0.0.1:${client.httpAddress!.port}/proxy.pac`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'application/x-ns-proxy-autoconfig');
      assert.equal(await r.text(), pac);
    } finally {
      await client.close();
    }
  });

  test('close() stops listening and drops open tunnels', async () => {
    const ss = await startMiniSs();
    const echo = await startEcho();
    const client = await startClient({ key: keyFor(ss.port), socks: '127.0.0.1:0' });
    const port = client.socksAddress!.port;
    const s = await socks5Connect({ proxyPort: port, host: '127.0.0.1', port: echo.port });
    assert.deepEqual(await roundTrip(s, Buffer.from('x')), Buffer.from('x'));
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => {});
    s.resume();
    await client.close();
    await closed;
    await assert.rejects(
      socks5Connect({ proxyPort: port, host: '127.0.0.1', port: echo.port, timeoutMs: 2000 }),
    );
    await Promise.all([ss.close(), echo.close()]);
  });
});

describe('access keys', () => {
  const b64 = (s: string): string => Buffer.from(s).toString('base64url');

  test('a good key parses to an endpoint', () => {
    const ep = endpointFromKey(`ss://${b64('chacha20-ietf-poly1305:pw-123')}@[::1]:8388#home`, 'local');
    assert.equal(ep.method, 'chacha20-ietf-poly1305');
    assert.equal(ep.host, '::1');
    assert.equal(ep.port, 8388);
    assert.equal(ep.tag, 'home');
  });

  const bad: Array<[string, string, RegExp]> = [
    ['stream cipher', `ss://${b64('rc4-md5:TopSecretPw')}@127.0.0.1:8388`, /stream cipher/],
    ['unknown method', `ss://${b64('rot13-gcm:TopSecretPw')}@127.0.0.1:8388`, /unknown method "rot13-gcm"/],
    [
      'misspelt 2022 method',
      `ss://${b64('2022-blake3-aes-256-gmc:TopSecretPw')}@127.0.0.1:8388`,
      /unknown method "2022-blake3-aes-256-gmc" \(did you mean 2022-blake3-aes-256-gcm\?\); expected one of .*chacha20-ietf-poly1305, 2022-blake3-aes-128-gcm/,
    ],
    [
      'plugin',
      `ss://${b64('aes-256-gcm:TopSecretPw')}@127.0.0.1:8388/?plugin=obfs-local%3Bobfs%3Dhttp`,
      /plugin "obfs-local".*not support/,
    ],
    ['no port', `ss://${b64('aes-256-gcm:TopSecretPw')}@127.0.0.1`, /port/],
    ['bad scheme', 'http://TopSecretPw@127.0.0.1:8388', /ss:\/\//],
    ['online config', 'ssconf://example.com/TopSecretPw', /ssconf/],
    ['garbage userinfo', 'ss://!!TopSecretPw!!@127.0.0.1:8388', /userinfo/],
  ];
  for (const [name, key, re] of bad) {
    test(`bad key (${name}) gives one line naming the problem, without the password`, () => {
      let msg = '';
      try {
        endpointFromKey(key, 'local');
      } catch (err) {
        msg = (err as Error).message;
      }
      assert.match(msg, re);
      assert.ok(!msg.includes('\n'), 'one line');
      assert.ok(!msg.includes('TopSecretPw'), `password leaked: ${msg}`);
      assert.ok(!msg.includes(b64('aes-256-gcm:TopSecretPw')), 'userinfo leaked');
    });
  }

  test('startClient with a bad key rejects before listening', async () => {
    await assert.rejects(startClient({ key: 'ss://nope', socks: '127.0.0.1:0' }), /invalid ss:\/\/ URL/);
  });
});
