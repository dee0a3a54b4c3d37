/**
 * The per-thread epoll set of the TCP path (native/thread_poll.cc): the server's accepted
 * connections, its destination connects and its relays watch their sockets there instead of a
 * uv_poll each. Every watch must end with its socket - else the set keeps the event loop alive
 * (the count in the set is what uv_ref follows) and its slots grow without end. Each check has its
 * control: while connections relay (or a connect is pending) the count sees them.
 */
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ShadowsocksServer } from '../../src/server/server.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { nativeAcceptLive } from '../../src/transport/native-stream.js';
import { openTestTunnel, type TestTunnel } from '../helpers/test-client.js';
import { startEcho, freePort, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const fns = nativeRelay();
const KEY = { id: 'k1', method: 'aes-256-gcm', secret: 'native-poll-pw' };
/** [watches, sockets in the set] on this thread. */
const pollLive = (): [number, number] =>
  (fns?.pollLive?.()?.slice(0, 2) as [number, number] | undefined) ?? [0, 0];
const openFds = (): number => readdirSync('/proc/self/fd').length;

describe(
  'the TCP path’s epoll set',
  { skip: skipUnless(typeof fns?.pollLive === 'function', 'the native addon with pollLive (Linux)') },
  () => {
    let echo: TestServer;
    let server: ShadowsocksServer;
    let port: number;
    const closed: ConnectionClosedEvent[] = [];
    before(async () => {
      echo = await startEcho();
      server = new ShadowsocksServer({
        keys: [KEY],
        allowPrivateDestinations: true,
        hooks: { onConnectionClosed: (e) => closed.push(e) },
      });
      port = (await server.listen({ port: 0, host: '127.0.0.1' })).port;
    });
    after(async () => {
      await server.close();
      await echo.close();
    });

    const tunnel = (): Promise<TestTunnel> =>
      openTestTunnel({
        port,
        method: KEY.method,
        password: KEY.secret,
        target: { host: '127.0.0.1', port: echo.port },
        initial: Buffer.from('y'.repeat(32)),
      });

    it('relayed connections are in the set while they relay, and leave it when they end', async () => {
      const start = closed.length;
      const held: TestTunnel[] = [];
      for (let i = 0; i < 30; i++) {
        const t = await tunnel();
        assert.equal((await t.read(32)).toString(), 'y'.repeat(32));
        held.push(t);
      }
      // Control: both sockets of each relay are watched, and read (in the set).
      await waitFor(() => pollLive()[0] >= 60 && pollLive()[1] >= 60, { timeoutMs: 5000 });
      for (const t of held) t.end();
      await Promise.all(held.map((t) => t.closed));
      await waitFor(() => closed.length - start === 30, { timeoutMs: 5000 });
      assert.ok(closed.slice(start).every((e) => e.status === 'OK'));
      await waitFor(() => pollLive()[0] === 0 && pollLive()[1] === 0, { timeoutMs: 5000 });
    });

    it('300 connections (64 at a time), probes and refused dials leave no watch and no descriptor', async () => {
      const fdsBefore = openFds();
      const start = closed.length;
      let next = 0;
      const one = async (i: number): Promise<void> => {
        if (i % 10 === 0) {
          // A probe: bytes that open no key; the server reads on and closes at the peer's FIN.
          const s = net.connect(port, '127.0.0.1');
          await new Promise<void>((res, rej) => s.once('connect', res).once('error', rej));
          s.write(Buffer.alloc(80, 7));
          s.end();
          s.resume();
          await new Promise<void>((res) => s.once('close', () => res()));
          return;
        }
        const t = await tunnel();
        await t.read(32);
        t.end();
        await t.closed;
      };
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < 300) await one(next++);
        }),
      );
      await waitFor(() => closed.length - start === 300, { timeoutMs: 10_000 });
      await waitFor(() => pollLive()[0] === 0 && nativeAcceptLive() === 0 && openFds() <= fdsBefore + 2, {
        timeoutMs: 5000,
      });
    });

    it('a connect watches its socket until it completes, fails or is cancelled', async () => {
      const relay = fns!;
      // Completes: the callback comes with the descriptor, and the watch has ended by then.
      let during: [number, number] = [0, 0];
      const fd = await new Promise<number>((res) => {
        relay.tcpConnect('127.0.0.1', echo.port, (f) => res(f));
        during = pollLive(); // control: the pending connect is watched (EPOLLOUT)
      });
      assert.deepEqual(during, [1, 1]);
      assert.ok(fd >= 0);
      assert.deepEqual(pollLive(), [0, 0]);
      relay.fdClose(fd);
      // Refused: a port nobody listens on.
      const closedPort = await freePort();
      const errno = await new Promise<number>((res) =>
        relay.tcpConnect('127.0.0.1', closedPort, (_f, e) => res(e)),
      );
      assert.ok(errno < 0);
      assert.deepEqual(pollLive(), [0, 0]);
      // Cancelled before it completes: no callback, no watch.
      let called = false;
      const c = relay.tcpConnect('127.0.0.1', echo.port, () => (called = true));
      assert.deepEqual(pollLive(), [1, 1]);
      relay.tcpConnectCancel(c);
      assert.deepEqual(pollLive(), [0, 0]);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(called, false);
    });
  },
);
