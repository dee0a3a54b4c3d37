/**
 * `ladder client` (in-process) through the real `ladder server` data plane (in-process), for
 * every SIP004 cipher: SOCKS5 to IPv4 / IPv6 / domain, HTTP CONNECT and absolute-URI GET,
 * half-close, 8 MiB each way, an Outline-prefixed key, and a key the server does not know.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { startDataPlane, type DataPlane } from '../../src/server/index.js';
import { readAll, readExactly, startEcho, type TestServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';

const METHODS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305'] as const;

describe('ladder client -> ladder server', () => {
  let plane: DataPlane;
  let echo: TestServer;
  let echo6: TestServer;
  let origin: http.Server;
  let hasher: net.Server;
  const passwords = Object.fromEntries(METHODS.map((m) => [m, `e2e-${m}-${randomBytes(6).toString('hex')}`]));

  before(async () => {
    plane = await startDataPlane({
      keys: METHODS.map((m, i) => ({ id: `k${i}`, method: m, secret: passwords[m]! })),
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
      timeouts: { idleMs: 5_000, connectMs: 2_000 },
    });
    echo = await startEcho();
    echo6 = await startEcho({ host: '::1' });
    origin = http.createServer((req, res) =>
      res.end(`origin saw ${req.method} ${req.url} host=${req.headers.host}`),
    );
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    hasher = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      const h = createHash('sha256');
      s.on('data', (d: Buffer) => h.update(d));
      s.on('end', () => s.end(h.digest()));
    });
    await new Promise<void>((r) => hasher.listen(0, '127.0.0.1', r));
  });

  after(async () => {
    await plane.close();
    await Promise.all([
      echo.close(),
      echo6.close(),
      new Promise<void>((r) => origin.close(() => r())),
      new Promise<void>((r) => hasher.close(() => r())),
    ]);
  });

  for (const method of METHODS) {
    describe(method, () => {
      let client: LocalClient;
      before(async () => {
        const key = formatSsUrl({
          method,
          password: passwords[method]!,
          host: '127.0.0.1',
          port: plane.address.port,
        });
        client = await startClient({ key, socks: '127.0.0.1:0', http: '127.0.0.1:0' });
      });
      after(() => client.close());

      test('SOCKS5 to IPv4, IPv6 and a domain', async () => {
        for (const [host, port] of [
          ['127.0.0.1', echo.port],
          ['::1', echo6.port],
          ['localhost', echo.port],
        ] as const) {
          const s = await socks5Connect({ proxyPort: client.socksAddress!.port, host, port });
          const data = randomBytes(5000);
          s.write(data);
          assert.deepEqual(await readExactly(s, data.length, 10_000), data, host);
          s.destroy();
        }
      });

      test('8 MiB each way, and half-close', async () => {
        const body = randomBytes(8 * 1024 * 1024);
        const s = await socks5Connect({
          proxyPort: client.socksAddress!.port,
          host: '127.0.0.1',
          port: echo.port,
        });
        const got = readExactly(s, body.length, 30_000);
        s.write(body);
        assert.ok((await got).equals(body));
        s.destroy();
        const h = await socks5Connect({
          proxyPort: client.socksAddress!.port,
          host: '127.0.0.1',
          port: (hasher.address() as AddressInfo).port,
        });
        const small = randomBytes(70_000);
        h.end(small);
        assert.deepEqual(await readAll(h, 10_000), createHash('sha256').update(small).digest());
      });

      test('HTTP proxy: CONNECT and absolute-URI GET', async () => {
        const port = (origin.address() as AddressInfo).port;
        const text = await new Promise<string>((resolve, reject) => {
          const req = http.request({
            host: '127.0.0.1',
            port: client.httpAddress!.port,
            path: `http://localhost:${port}/p?q=1`,
            agent: false,
          });
          req.on('response', (res) => {
            let t = '';
            res.on('data', (d: Buffer) => (t += d.toString()));
            res.on('end', () => resolve(t));
          });
          req.on('error', reject);
          req.end();
        });
        assert.equal(text, `origin saw GET /p?q=1 host=localhost:${port}`);

        const s = net.connect({ host: '127.0.0.1', port: client.httpAddress!.port });
        s.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
        const head = await readExactly(s, 'HTTP/1.1 200 Connection established\r\n\r\n'.length, 5000);
        assert.match(head.toString(), /^HTTP\/1\.1 200 /);
        s.write('ping');
        assert.equal((await readExactly(s, 4, 5000)).toString(), 'ping');
        s.destroy();
      });
    });
  }

  test('an Outline-prefixed key works against the real server', async () => {
    const key = formatSsUrl({
      method: 'chacha20-ietf-poly1305',
      password: passwords['chacha20-ietf-poly1305']!,
      host: '127.0.0.1',
      port: plane.address.port,
      prefix: Buffer.from('POST ', 'latin1'),
    });
    const client = await startClient({ key, socks: '127.0.0.1:0' });
    try {
      const s = await socks5Connect({
        proxyPort: client.socksAddress!.port,
        host: '127.0.0.1',
        port: echo.port,
      });
      s.write('prefixed');
      assert.equal((await readExactly(s, 8, 5000)).toString(), 'prefixed');
      s.destroy();
    } finally {
      await client.close();
    }
  });

  test('shape: true works against the real server and refuses a key with a fixed prefix', async () => {
    const key = formatSsUrl({
      method: 'aes-128-gcm',
      password: passwords['aes-128-gcm']!,
      host: '127.0.0.1',
      port: plane.address.port,
    });
    const client = await startClient({ key, socks: '127.0.0.1:0', shape: true });
    try {
      for (const n of [1, 89, 1000]) {
        const s = await socks5Connect({
          proxyPort: client.socksAddress!.port,
          host: '127.0.0.1',
          port: echo.port,
        });
        const data = randomBytes(n);
        s.write(data);
        assert.deepEqual(await readExactly(s, n, 5000), data);
        s.destroy();
      }
    } finally {
      await client.close();
    }
    const prefixed = formatSsUrl({
      method: 'aes-128-gcm',
      password: 'x',
      host: '127.0.0.1',
      port: 1,
      prefix: Buffer.from('GET '),
    });
    await assert.rejects(startClient({ key: prefixed, socks: '127.0.0.1:0', shape: true }), /prefix/);
  });

  test('a key the server does not know gets no bytes back', async () => {
    const key = formatSsUrl({
      method: 'aes-256-gcm',
      password: 'not-a-key',
      host: '127.0.0.1',
      port: plane.address.port,
    });
    const client = await startClient({ key, socks: '127.0.0.1:0' });
    try {
      const s = await socks5Connect({
        proxyPort: client.socksAddress!.port,
        host: '127.0.0.1',
        port: echo.port,
      });
      s.write('hello?');
      // The server drains silently until its idle timeout; we only check that nothing comes back.
      const got: Buffer[] = [];
      s.on('data', (d: Buffer) => got.push(d));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(Buffer.concat(got).length, 0);
      s.destroy();
    } finally {
      await client.close();
    }
  });
});
