/**
 * The client's raw SIP004 tunnels on the native relay (src/client/native-tunnel.ts): a SOCKS5
 * connection is handed to relay_pair.cc once the server's first payload opened, and must behave
 * as relay.ts does - 8 MiB each way intact, half-close, idle timeout, client stop, nothing left
 * running - against ss-server (shadowsocks-libev) and against a Ladder server. Each case runs the
 * client with the native relay and, as the control, without it; relayLive() says which one
 * carried the connection (the in-process Ladder server runs relay.ts, so every native relay on
 * this thread is the client's).
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { serveBulk, startUpstream, type Upstream } from '../helpers/client-upstream.js';
import { peerSkip } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { sha256Hex } from '../helpers/hash.js';
import { serve, type TestServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';
import { sleep, waitFor } from '../helpers/wait.js';

const relayFns = nativeRelay();
const NEED = 'the native addon with relayPair (Linux; npm run build:native)';
const PASSWORD = 'client-native-relay-pw';
const MiB = 1024 * 1024;
const live = (): number => relayFns?.relayLive() ?? 0;

type Dest = TestServer;
const startDest = (handler: (s: net.Socket) => void): Promise<Dest> =>
  serve(handler, { allowHalfOpen: true });

/** Reads a socket to its end: the bytes, and whether it ended with a FIN (not a reset). */
function readAll(s: net.Socket): Promise<{ data: Buffer; fin: boolean }> {
  const parts: Buffer[] = [];
  let fin = false;
  s.on('data', (b: Buffer) => parts.push(b));
  s.once('end', () => (fin = true));
  s.on('error', () => {});
  s.resume(); // socks5Connect hands it over paused
  return new Promise((resolve) => s.once('close', () => resolve({ data: Buffer.concat(parts), fin })));
}

/** Resolves with the first bytes the socket reads (then keeps collecting them in `parts`). */
function firstBytes(s: net.Socket, parts: Buffer[]): Promise<void> {
  return new Promise((resolve) => {
    s.on('data', (b: Buffer) => {
      parts.push(b);
      resolve();
    });
    s.resume(); // socks5Connect hands it over paused
  });
}

for (const kind of ['ss-server', 'ladder'] as const) {
  const skip = skipUnless(relayFns !== undefined, NEED) || (kind === 'ss-server' && peerSkip('ss-server'));
  describe(`client native relay <-> ${kind}`, { skip, timeout: 120_000 }, () => {
    let upstream: Upstream;
    let echo: Dest;
    let bulk: Dest;
    let halfClose: Dest;
    const sent = new Set<string>(); // bulk: the sha256 of what the destination sent
    before(async () => {
      upstream = await startUpstream(kind, PASSWORD);
      echo = await startDest((s) => s.pipe(s));
      bulk = await serveBulk(8 * MiB, sent);
      // Answers "hi" to the first bytes; after the client's FIN, 1 MiB more and its own FIN.
      halfClose = await startDest((s) => {
        s.once('data', () => s.write('hi'));
        s.on('data', () => {});
        s.once('end', () => s.end(Buffer.alloc(MiB, 7)));
      });
    });
    after(async () => {
      await Promise.all([echo.close(), bulk.close(), halfClose.close()]);
      await upstream.close();
    });

    const client = (native: boolean, idleTimeoutMs = 30_000): Promise<LocalClient> =>
      // nativeRelayAfterBytes 0: handed over at the first answer, so small exchanges test it too.
      startClient({
        key: upstream.url,
        socks: '127.0.0.1:0',
        nativeRelay: native,
        nativeSocks: false, // the hand-off path (native-socks.test.ts covers the front)
        nativeRelayAfterBytes: 0,
        idleTimeoutMs,
      });
    const connect = (c: LocalClient, d: Dest): Promise<net.Socket> =>
      socks5Connect({ proxyPort: c.socksAddress!.port, host: '127.0.0.1', port: d.port });

    it('native, default threshold: a short exchange stays on relay.ts, 64 KiB more moves it', async () => {
      const c = await startClient({
        key: upstream.url,
        socks: '127.0.0.1:0',
        nativeRelay: true,
        nativeSocks: false,
      });
      try {
        const s = await connect(c, echo);
        let got = 0;
        const want = (n: number): Promise<void> =>
          waitFor(() => got >= n, { timeoutMs: 10_000 }).then(() => undefined);
        s.on('data', (b: Buffer) => (got += b.length));
        s.resume();
        s.write('small');
        await want(5);
        await sleep(50);
        assert.equal(live(), 0, 'a short exchange stays on relay.ts');
        s.write(Buffer.alloc(64 * 1024, 1));
        await want(5 + 64 * 1024);
        await waitFor(() => live() === 1, { timeoutMs: 3000 });
        s.destroy();
        await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
      } finally {
        await c.close();
      }
    });

    for (const native of [true, false]) {
      const which = native ? 'native' : 'JS (control)';

      it(`${which}: 8 MiB each way arrive intact`, async () => {
        const c = await client(native);
        try {
          const s = await connect(c, bulk);
          const parts: Buffer[] = [];
          let got = 0;
          const first = firstBytes(s, parts);
          const all = new Promise<void>((r) =>
            s.on('data', (b: Buffer) => {
              if ((got += b.length) === 8 * MiB + 32) r();
            }),
          );
          s.on('error', () => {});
          const up = randomBytes(8 * MiB);
          s.write(up.subarray(0, 1000));
          await first;
          await waitFor(() => live() === (native ? 1 : 0), { timeoutMs: 3000 });
          s.write(up.subarray(1000));
          await all;
          s.end();
          const down = Buffer.concat(parts);
          assert.equal(down.length, 8 * MiB + 32);
          assert.ok(sent.has(sha256Hex(down.subarray(0, 8 * MiB))), 'download intact');
          assert.equal(down.subarray(8 * MiB).toString('hex'), sha256Hex(up), 'upload intact');
          s.destroy();
          await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
        } finally {
          await c.close();
        }
      });

      // Not against ss-server: shadowsocks-libev closes both directions at the first FIN
      // (relay.ts and the native relay alike).
      if (kind === 'ladder')
        it(`${which}: half-close - the client stops sending and still receives to the end`, async () => {
          const c = await client(native);
          try {
            const s = await connect(c, halfClose);
            const parts: Buffer[] = [];
            const first = firstBytes(s, parts);
            const done = new Promise<boolean>((r) => {
              let fin = false;
              s.once('end', () => (fin = true));
              s.once('close', () => r(fin));
            });
            s.on('error', () => {});
            s.write('hello');
            await first;
            await waitFor(() => live() === (native ? 1 : 0), { timeoutMs: 3000 });
            s.end();
            assert.equal(await done, true, 'ended with a FIN');
            const got = Buffer.concat(parts);
            assert.equal(got.length, 2 + MiB);
            assert.equal(got.subarray(0, 2).toString(), 'hi');
            await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
          } finally {
            await c.close();
          }
        });

      it(`${which}: the idle timeout closes a quiet connection`, async () => {
        const c = await client(native, 400);
        try {
          const s = await connect(c, echo);
          const parts: Buffer[] = [];
          const first = firstBytes(s, parts);
          const closed = readAll(s);
          s.write('ping');
          await first;
          await waitFor(() => live() === (native ? 1 : 0), { timeoutMs: 3000 });
          const late = sleep(10_000).then(() => 'still open after 10 s');
          assert.notEqual(await Promise.race([closed, late]), 'still open after 10 s');
          await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
        } finally {
          await c.close();
        }
      });

      it(`${which}: stopping the client closes relayed connections`, async () => {
        const c = await client(native);
        const socks: net.Socket[] = [];
        try {
          const closed: Promise<unknown>[] = [];
          for (let i = 0; i < 3; i++) {
            const s = await connect(c, echo);
            socks.push(s);
            const parts: Buffer[] = [];
            const first = firstBytes(s, parts);
            closed.push(new Promise((r) => s.once('close', r)));
            s.on('error', () => {});
            s.write(`ping ${i}`);
            await first;
          }
          await waitFor(() => live() === (native ? 3 : 0), { timeoutMs: 3000 });
          assert.equal(c.openSockets, 6, 'a native relay counts as its two sockets');
          await c.close();
          await Promise.all(closed);
          assert.equal(live(), 0);
          assert.equal(c.openSockets, 0);
        } finally {
          for (const s of socks) s.destroy();
          await c.close();
        }
      });

      it(`${which}: 200 connections leave no relay and no socket behind`, async () => {
        const c = await client(native);
        let most = 0;
        try {
          for (let batch = 0; batch < 10; batch++) {
            await Promise.all(
              Array.from({ length: 20 }, async (_, i) => {
                const s = await connect(c, echo);
                const parts: Buffer[] = [];
                const first = firstBytes(s, parts);
                const closed = new Promise<boolean>((r) => {
                  let fin = false;
                  s.once('end', () => (fin = true));
                  s.once('close', () => r(fin));
                });
                s.on('error', () => {});
                const msg = `connection ${batch}/${i}`;
                s.write(msg);
                await first;
                await waitFor(() => Buffer.concat(parts).length === msg.length, { timeoutMs: 5000 });
                most = Math.max(most, live());
                s.end();
                assert.equal(await closed, true);
                assert.equal(Buffer.concat(parts).toString(), msg);
              }),
            );
          }
          await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
          if (native) assert.ok(most > 0, 'the native relay carried connections');
          else assert.equal(most, 0);
        } finally {
          await c.close();
        }
      });
    }
  });
}
