/**
 * The client with Shadowsocks 2022 (SIP022) keys, against a minimal 2022 server built here from
 * the codec (no 2022 peer binary is installed: shadowsocks-libev and Debian's v2ray predate it).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { endpointFromKey } from '../../src/client/key.js';
import { Aead2022RequestDecoder, Aead2022ResponseEncoder } from '../../src/protocol/shadowsocks/aead2022.js';
import { getAead2022Method, type Aead2022MethodName } from '../../src/protocol/shadowsocks/methods2022.js';
import type { SocksAddress } from '../../src/protocol/socks5/address.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { readAll, readExactly, startEcho, type TestServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';

const METHODS: Aead2022MethodName[] = [
  '2022-blake3-aes-128-gcm',
  '2022-blake3-aes-256-gcm',
  '2022-blake3-chacha20-poly1305',
];

interface Mini2022 {
  port: number;
  seen: SocksAddress[];
  firsts: number[];
  close(): Promise<void>;
}

async function startMini2022(methodName: Aead2022MethodName, key: Buffer): Promise<Mini2022> {
  const method = getAead2022Method(methodName);
  const seen: SocksAddress[] = [];
  const firsts: number[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    const dec = new Aead2022RequestDecoder(method, { key });
    let enc: Aead2022ResponseEncoder | undefined;
    let target: net.Socket | undefined;
    let ended = false;
    sock.once('data', (d: Buffer) => firsts.push(d.length));
    sock.on('data', (chunk: Buffer) => {
      let payloads: Buffer[];
      try {
        payloads = dec.push(chunk, Date.now());
      } catch {
        sock.destroy();
        return;
      }
      if (!target && dec.header) {
        const addr = dec.header.target;
        seen.push(addr);
        const t = net.connect({ host: addr.host, port: addr.port, allowHalfOpen: true });
        target = t;
        sockets.add(t);
        t.on('close', () => sockets.delete(t));
        t.on('error', () => sock.destroy());
        t.on('data', (d: Buffer) => {
          if (!enc) {
            enc = new Aead2022ResponseEncoder(method, key, dec.salt!);
            sock.write(enc.encodeHeader(d, Date.now()));
          } else sock.write(enc.encode(d));
        });
        t.on('end', () => sock.end());
        if (ended) t.end();
      }
      for (const p of payloads) target?.write(p);
    });
    sock.on('end', () => {
      ended = true;
      target?.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    firsts,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

for (const methodName of METHODS) {
  describe(`ladder client with a ${methodName} key`, () => {
    const method = getAead2022Method(methodName);
    const key = randomBytes(method.keySize);
    let ss: Mini2022;
    let echo: TestServer;
    let client: LocalClient;

    before(async () => {
      ss = await startMini2022(methodName, key);
      echo = await startEcho();
      const url = formatSsUrl({
        method: methodName,
        password: key.toString('base64'),
        host: '127.0.0.1',
        port: ss.port,
      });
      // A generous first-data wait: the length assertions must not depend on scheduling luck.
      client = await startClient({ key: url, socks: '127.0.0.1:0', firstDataWaitMs: 1000 });
    });
    after(async () => {
      await client.close();
      await Promise.all([ss.close(), echo.close()]);
    });

    test('SOCKS5 to IPv4 and a domain; one first write whose length follows the request', async () => {
      for (const [host, n] of [
        ['127.0.0.1', 10],
        ['localhost', 1000],
        ['127.0.0.1', 100_000],
      ] as const) {
        const before = ss.firsts.length;
        const s = await socks5Connect({ proxyPort: client.socksAddress!.port, host, port: echo.port });
        const data = randomBytes(n);
        const got = readExactly(s, n, 10_000);
        s.write(data);
        assert.deepEqual(await got, data);
        s.destroy();
        assert.equal(ss.seen.at(-1)!.host, host);
        if (n < 60_000) {
          // salt | fixed header (11 + 16) | variable header (addr + 2 + data) + 16
          const addrLen = host === 'localhost' ? 1 + 1 + 9 + 2 : 7;
          assert.equal(ss.firsts[before], method.saltSize + 27 + addrLen + 2 + n + 16);
        }
      }
    });

    test('server-speaks-first: the header goes padded after the wait, the banner arrives', async () => {
      const banner = Buffer.from('SSH-2.0-test\r\n');
      const srv = net.createServer((s) => {
        s.on('error', () => {});
        s.end(banner);
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      try {
        const s = await socks5Connect({
          proxyPort: client.socksAddress!.port,
          host: '127.0.0.1',
          port: (srv.address() as AddressInfo).port,
        });
        assert.deepEqual(await readAll(s, 5000), banner);
      } finally {
        await new Promise<void>((r) => srv.close(() => r()));
      }
    });
  });
}

test('2022 keys with a bad PSK are refused with a one-line error that hides the key', () => {
  const shortKey = randomBytes(20).toString('base64');
  const url = formatSsUrl({
    method: '2022-blake3-aes-256-gcm',
    password: shortKey,
    host: '127.0.0.1',
    port: 1,
  });
  assert.throws(
    () => endpointFromKey(url, 'local'),
    (err: Error) =>
      /needs exactly 32/.test(err.message) && !err.message.includes(shortKey) && !err.message.includes('\n'),
  );
  const ok = randomBytes(32).toString('base64');
  assert.equal(
    endpointFromKey(
      formatSsUrl({ method: '2022-blake3-chacha20-poly1305', password: ok, host: '::1', port: 8388 }),
      'local',
    ).method,
    '2022-blake3-chacha20-poly1305',
  );
});
