/**
 * The client's native SOCKS5 front (src/client/native-socks.ts, native/socks5_front.cc): accept,
 * the no-auth handshake and the first-data wait in C++, raw SIP004 tunnels dialled by the addon
 * and relayed by relayPair from the first byte. Each case runs the client with the front and, as
 * the control, with the JS inbound (socks5-inbound.ts): the bytes an application sees must be the
 * same. relayLive() says which path carried a connection: the in-process Ladder server runs
 * relay.ts, and the client's hand-off threshold (64 KiB) keeps short JS-path exchanges off the
 * native relay, so a relay running after a few bytes is the front's.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { nativeRelay, nativeSocksFront } from '../../src/transport/native-sockets.js';
import { serveBulk, startUpstream, type Upstream } from '../helpers/client-upstream.js';
import { peerSkip, ssUrl } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { sha256Hex } from '../helpers/hash.js';
import { readExactly, serve, type TestServer } from '../helpers/net.js';
import { socks5Connect, socks5FirstAnswer } from '../helpers/socks5.js';
import { sleep, waitFor } from '../helpers/wait.js';

const relayFns = nativeRelay();
const NEED = 'the native addon with socks5Front (Linux; npm run build:native)';
const PASSWORD = 'client-native-socks-pw';
const MiB = 1024 * 1024;
const live = (): number => relayFns?.relayLive() ?? 0;
const fds = (): number => readdirSync('/proc/self/fd').length;
const skip = skipUnless(nativeSocksFront() !== undefined, NEED);

/** Everything a raw connection receives after sending `parts` (one write each, 20 ms apart). */
async function exchange(port: number, parts: Buffer[], settleMs = 300): Promise<Buffer> {
  const s = net.connect({ port, host: '127.0.0.1' });
  const got: Buffer[] = [];
  s.on('data', (b: Buffer) => got.push(b));
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  for (const p of parts) {
    s.write(p);
    await sleep(20);
  }
  await Promise.race([new Promise((r) => s.once('close', r)), sleep(settleMs)]);
  s.destroy();
  return Buffer.concat(got);
}

function echoOn(s: net.Socket): void {
  s.pipe(s);
}

for (const kind of ['ss-server', 'ladder'] as const) {
  const skipKind = skip || (kind === 'ss-server' && peerSkip('ss-server'));
  describe(`native SOCKS5 front <-> ${kind}`, { skip: skipKind, timeout: 180_000 }, () => {
    let upstream: Upstream;
    let echo: TestServer;
    let bulk: TestServer;
    let greeter: TestServer;
    const sent = new Set<string>();
    before(async () => {
      upstream = await startUpstream(kind, PASSWORD);
      // '::' takes IPv4 and IPv6 (bindv6only 0), so 'localhost' works whichever the server picks.
      echo = await serve(echoOn, { host: '::', allowHalfOpen: true });
      bulk = await serveBulk(8 * MiB, sent, { host: '::' });
      // Speaks first (an SMTP-like greeting), then echoes.
      greeter = await serve(
        (s) => {
          s.write('220 hello\r\n');
          s.pipe(s);
        },
        { host: '::', allowHalfOpen: true },
      );
    });
    after(async () => {
      await Promise.all([echo.close(), bulk.close(), greeter.close()]);
      await upstream.close();
    });

    const client = (native: boolean, extra: Parameters<typeof startClient>[0] = {}): Promise<LocalClient> =>
      startClient({ key: upstream.url, socks: '127.0.0.1:0', nativeSocks: native, ...extra });

    for (const native of [true, false]) {
      const which = native ? 'native front' : 'JS inbound (control)';
      for (const host of ['127.0.0.1', '::1', 'localhost']) {
        it(`${which}: CONNECT ${host}, 8 MiB each way arrive intact`, async () => {
          const c = await client(native);
          try {
            const s = await socks5Connect({ proxyPort: c.socksAddress!.port, host, port: bulk.port });
            const firstSeen = new Promise<void>((r) => s.once('data', () => r()));
            s.on('error', () => {});
            const all = readExactly(s, 8 * MiB + 32, 60_000);
            const up = randomBytes(8 * MiB);
            s.write(up.subarray(0, 1000));
            await firstSeen;
            // The front's relay runs from the first answer; the JS path's after 64 KiB at the soonest.
            if (native) assert.equal(live(), 1, 'carried by the native relay');
            s.write(up.subarray(1000));
            const down = await all;
            s.end();
            assert.ok(sent.has(sha256Hex(down.subarray(0, 8 * MiB))), 'download intact');
            assert.equal(down.subarray(8 * MiB).toString('hex'), sha256Hex(up), 'upload intact');
            s.destroy();
            await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
          } finally {
            await c.close();
          }
        });
      }

      it(`${which}: a destination that speaks first (no first data) works`, async () => {
        const c = await client(native, { firstDataWaitMs: 30 });
        try {
          const s = await socks5Connect({
            proxyPort: c.socksAddress!.port,
            host: '127.0.0.1',
            port: greeter.port,
          });
          const got: Buffer[] = [];
          s.on('data', (b: Buffer) => got.push(b));
          s.on('error', () => {});
          s.resume();
          await waitFor(() => Buffer.concat(got).toString() === '220 hello\r\n', { timeoutMs: 5000 });
          s.write('EHLO x\r\n');
          await waitFor(() => Buffer.concat(got).toString() === '220 hello\r\nEHLO x\r\n', {
            timeoutMs: 5000,
          });
          s.destroy();
          await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
        } finally {
          await c.close();
        }
      });

      if (kind === 'ladder')
        it(`${which}: half-close - the application's FIN reaches the destination, the answer comes back`, async () => {
          const c = await client(native);
          try {
            const s = await socks5Connect({
              proxyPort: c.socksAddress!.port,
              host: '127.0.0.1',
              port: echo.port,
            });
            const got: Buffer[] = [];
            s.on('data', (b: Buffer) => got.push(b));
            const ended = new Promise<void>((r) => s.once('end', () => r()));
            s.on('error', () => {});
            s.resume();
            s.write('abc');
            await waitFor(() => got.length > 0, { timeoutMs: 5000 });
            s.end('def');
            await ended;
            assert.equal(Buffer.concat(got).toString(), 'abcdef');
            s.destroy();
            await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
          } finally {
            await c.close();
          }
        });
    }

    it('300 connections leave no relay, handshake, socket or descriptor behind', async () => {
      // The first-data wait far longer than a loaded machine's write takes (see native-tunnel-connect).
      const c = await client(true, { firstDataWaitMs: 10_000 });
      try {
        const before = fds();
        let native = 0;
        for (let i = 0; i < 300; i++) {
          const s = await socks5Connect({
            proxyPort: c.socksAddress!.port,
            host: '127.0.0.1',
            port: echo.port,
          });
          s.on('error', () => {});
          const back = new Promise<void>((r) => s.once('data', () => r()));
          s.resume();
          s.write(`ping ${i}`);
          await back;
          if (live() > 0) native++;
          if (i % 3 === 0) s.destroy();
          else s.end();
        }
        await waitFor(() => live() === 0 && c.openSockets === 0 && fds() <= before, { timeoutMs: 10_000 });
        assert.equal(fds(), before, 'descriptors back where they were');
        assert.equal(native, 300, 'every connection ran on the native relay');
      } finally {
        await c.close();
      }
    });

    it('stopping the client closes relayed connections and stops accepting', async () => {
      const c = await client(true);
      const socks: net.Socket[] = [];
      try {
        const closed: Promise<unknown>[] = [];
        for (let i = 0; i < 3; i++) {
          const s = await socks5Connect({
            proxyPort: c.socksAddress!.port,
            host: '127.0.0.1',
            port: echo.port,
          });
          socks.push(s);
          closed.push(new Promise((r) => s.once('close', r)));
          s.on('error', () => {});
          const back = new Promise<void>((r) => s.once('data', () => r()));
          s.resume();
          s.write(`ping ${i}`);
          await back;
        }
        // One more in its handshake (greeting only), held by the front.
        const pending = net.connect({ port: c.socksAddress!.port, host: '127.0.0.1' });
        pending.on('error', () => {});
        pending.resume(); // reads the front's FIN
        const pendingClosed = new Promise((r) => pending.once('close', r));
        pending.write(Buffer.from([5, 1, 0]));
        await sleep(50);
        assert.equal(live(), 3);
        assert.equal(c.openSockets, 6, 'a native relay counts as its two sockets');
        await c.close();
        await Promise.all([...closed, pendingClosed]);
        assert.equal(live(), 0);
        assert.equal(c.openSockets, 0);
        const refused = await new Promise<string>((r) => {
          const t = net.connect({ port: c.socksAddress!.port, host: '127.0.0.1' });
          t.once('connect', () => (t.destroy(), r('connected')));
          t.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
        });
        assert.equal(refused, 'ECONNREFUSED', 'the listener is closed');
      } finally {
        for (const s of socks) s.destroy();
        await c.close();
      }
    });
  });
}

describe('native SOCKS5 front: answers byte-identical to the JS inbound', { skip, timeout: 60_000 }, () => {
  let echo: TestServer;
  let upstream: Upstream;
  before(async () => {
    echo = await serve(echoOn, { allowHalfOpen: true });
    upstream = await startUpstream('ladder', PASSWORD);
  });
  after(async () => {
    await echo.close();
    await upstream.close();
  });

  const port = (p: number): Buffer => Buffer.from([p >> 8, p & 255]);
  const HELLO = Buffer.from([5, 1, 0]);
  const REPLY = (rep: number): string => Buffer.from([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]).toString('hex');
  const cases: Array<{ name: string; parts: () => Buffer[]; want: () => string }> = [
    {
      name: 'success (CONNECT IPv4, then echo)',
      parts: () => [
        HELLO,
        Buffer.concat([Buffer.from([5, 1, 0, 1, 127, 0, 0, 1]), port(echo.port)]),
        Buffer.from('hi'),
      ],
      want: () => '0500' + REPLY(0) + Buffer.from('hi').toString('hex'),
    },
    { name: 'bad version (SOCKS4 greeting)', parts: () => [Buffer.from([4, 1, 0])], want: () => '' },
    { name: 'no methods offered', parts: () => [Buffer.from([5, 0])], want: () => '' },
    { name: 'no acceptable method', parts: () => [Buffer.from([5, 1, 2])], want: () => '05ff' },
    {
      name: 'unsupported command (BIND)',
      parts: () => [HELLO, Buffer.from([5, 2, 0, 1, 127, 0, 0, 1, 0, 80])],
      want: () => '0500' + REPLY(7),
    },
    {
      name: 'UDP ASSOCIATE without a UDP handler',
      parts: () => [HELLO, Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0])],
      want: () => '0500' + REPLY(7),
    },
    {
      name: 'bad address type',
      parts: () => [HELLO, Buffer.from([5, 1, 0, 9, 1, 2])],
      want: () => '0500' + REPLY(8),
    },
    {
      name: 'empty domain',
      parts: () => [HELLO, Buffer.from([5, 1, 0, 3, 0, 0, 80])],
      want: () => '0500' + REPLY(8),
    },
    {
      name: 'bad request version',
      parts: () => [HELLO, Buffer.from([4, 1, 0, 1, 1, 1, 1, 1, 0, 80])],
      want: () => '0500',
    },
    {
      name: 'reserved byte set',
      parts: () => [HELLO, Buffer.from([5, 1, 1, 1, 1, 1, 1, 1, 0, 80])],
      want: () => '0500',
    },
    {
      name: 'greeting, request and data in one write',
      parts: () => [
        Buffer.concat([
          HELLO,
          Buffer.from([5, 1, 0, 1, 127, 0, 0, 1]),
          port(echo.port),
          Buffer.from('pipelined'),
        ]),
      ],
      want: () => '0500' + REPLY(0) + Buffer.from('pipelined').toString('hex'),
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const got: Record<string, string> = {};
      for (const native of [true, false]) {
        const cl = await startClient({ key: upstream.url, socks: '127.0.0.1:0', nativeSocks: native });
        try {
          got[native ? 'native' : 'js'] = (await exchange(cl.socksAddress!.port, c.parts())).toString('hex');
        } finally {
          await cl.close();
        }
      }
      assert.equal(got.js, c.want(), 'the JS inbound answers as expected');
      assert.equal(got.native, got.js, 'the front answers the same bytes');
    });
  }

  it('with SOCKS5 authentication configured, the JS inbound answers (the front stays off)', async () => {
    const cl = await startClient({
      key: upstream.url,
      socks: '127.0.0.1:0',
      nativeSocks: true,
      auth: { username: 'u', password: 'p' },
    });
    try {
      assert.equal((await exchange(cl.socksAddress!.port, [HELLO])).toString('hex'), '05ff');
      const s = await socks5Connect({
        proxyPort: cl.socksAddress!.port,
        host: '127.0.0.1',
        port: echo.port,
      }).catch((e: Error) => e);
      assert.ok(s instanceof Error, 'no-auth refused');
    } finally {
      await cl.close();
    }
  });
});

const FIRST_SERVER: Array<{
  what: string;
  handler: (s: net.Socket) => void;
  stallMs: number;
  failure: string;
}> = [
  // Accepts and reads, never answers: a server behind a censor's drop rule.
  { what: 'never answers', handler: (s) => s.resume(), stallMs: 300, failure: '0:stall' },
  // Reads the request, then resets: a censor's RST injection (the application's connection closes).
  {
    what: 'resets',
    handler: (s) => s.once('data', () => s.resetAndDestroy()),
    stallMs: 10_000,
    failure: '0:reset',
  },
];

for (const first of FIRST_SERVER) {
  describe(
    `native SOCKS5 front: failover when the first server ${first.what}`,
    { skip, timeout: 60_000 },
    () => {
      for (const native of [true, false]) {
        it(native ? 'native front' : 'JS inbound (control)', async () => {
          const upstream = await startUpstream('ladder', PASSWORD);
          const bad = await serve(first.handler);
          const echo = await serve(echoOn, { allowHalfOpen: true });
          const failures: string[] = [];
          const c = await startClient({
            keys: [ssUrl('chacha20-ietf-poly1305', PASSWORD, '127.0.0.1', bad.port), upstream.url],
            socks: '127.0.0.1:0',
            nativeSocks: native,
            failover: {
              stallMs: first.stallMs,
              onEndpointFailure: (i, kind) => failures.push(`${i}:${kind}`),
            },
          });
          try {
            const s1 = await socks5Connect({
              proxyPort: c.socksAddress!.port,
              host: '127.0.0.1',
              port: echo.port,
            });
            s1.on('error', () => {});
            s1.resume();
            const closed = new Promise((r) => s1.once('close', r));
            s1.write('first');
            await waitFor(() => failures.length > 0, { timeoutMs: 5000 });
            assert.deepEqual(failures, [first.failure]);
            assert.equal(bad.accepted, 1);
            if (first.failure === '0:reset') await closed; // else it waits for its answer
            s1.destroy();
            assert.equal(
              await socks5FirstAnswer(c.socksAddress!.port, echo.port, 'second'),
              'second',
              'the next connection went to the second server',
            );
            assert.equal(bad.accepted, 1);
            await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
          } finally {
            await c.close();
            await Promise.all([bad.close(), echo.close()]);
            await upstream.close();
          }
        });
      }
    },
  );
}
