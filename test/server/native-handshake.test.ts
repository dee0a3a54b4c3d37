/**
 * The native handshake (LADDER_NATIVE_HANDSHAKE, on by default with the native accept): the addon
 * waits for a connection's first bytes before JS hears of it (tcp_accept.cc waitMs), and dials an
 * IP destination and starts the relay itself (relay_pair.cc relayConnect), so a short connection
 * enters JS twice. Every case runs with it and, as the control, with nativeHandshake: false (the
 * call at the accept, the dial through tcpConnect and JS): reactions, statuses and usage must be
 * the same, and what differs (when JS hears of a connection, who dials) is asserted both ways.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { silentLogger } from '../../src/shared/logger.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { nativeAccept, nativeAcceptLive, nativeHandshakeFromEnv } from '../../src/transport/native-stream.js';
import { usageTotals } from '../helpers/data-plane.js';
import { blackholePort, startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { openTestTunnel, type TestTunnel } from '../helpers/test-client.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { probeOnce } from '../probing/prober.js';

const NEED =
  'the native addon with acceptListen, acceptPending and relayConnect (Linux; npm run build:native)';
const fns = nativeRelay();
const available = nativeAccept()?.acceptPending !== undefined && typeof fns?.relayConnect === 'function';
const KEY = { id: 'k1', method: 'aes-256-gcm', secret: 'native-handshake-pw' };
const KEY2 = { id: 'k2', method: 'chacha20-ietf-poly1305', secret: 'native-handshake-pw2' };
const IDLE_MS = 500;

interface Running {
  server: ShadowsocksServer;
  port: number;
  closed: ConnectionClosedEvent[];
  opened: number[];
  usage: Map<string, { up: number; down: number }>;
}

async function startServer(handshake: boolean, connectMs = 2000, idleMs = IDLE_MS): Promise<Running> {
  const closed: ConnectionClosedEvent[] = [];
  const opened: number[] = [];
  const { sink, usage } = usageTotals();
  const server = new ShadowsocksServer({
    keys: [KEY, KEY2],
    allowPrivateDestinations: true,
    nativeRelay: true,
    nativeAccept: true,
    nativeHandshake: handshake,
    timeouts: { idleMs, connectMs },
    usage: sink,
    logger: silentLogger,
    hooks: { onConnectionClosed: (e) => closed.push(e), onConnectionOpened: () => opened.push(Date.now()) },
  });
  const addr = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port: addr.port, closed, opened, usage };
}

const relayLive = (): number => fns?.relayLive() ?? 0;
const openFds = (): number => readdirSync('/proc/self/fd').length;

function tunnel(r: { port: number }, port: number, initial?: Buffer, key = KEY): Promise<TestTunnel> {
  return openTestTunnel({
    port: r.port,
    method: key.method,
    password: key.secret,
    target: { host: '127.0.0.1', port },
    ...(initial ? { initial } : {}),
  });
}

describe('native handshake', { skip: skipUnless(available, NEED) }, () => {
  let echo: TestServer;
  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    await echo.close();
  });

  it('LADDER_NATIVE_HANDSHAKE: on by default, 0 turns it off', () => {
    assert.equal(nativeHandshakeFromEnv({}), true);
    assert.equal(nativeHandshakeFromEnv({ LADDER_NATIVE_HANDSHAKE: '0' }), false);
  });

  for (const handshake of [true, false]) {
    const which = handshake ? 'native handshake' : 'call at the accept (control)';

    it(`${which}: JS hears of a connection with its first bytes; a round trip with exact usage`, async () => {
      const r = await startServer(handshake);
      try {
        const s = net.connect(r.port, '127.0.0.1');
        s.on('error', () => {});
        await new Promise((res) => s.once('connect', res));
        await sleep(150);
        assert.equal(r.server.connectionCount, 1, 'counted either way');
        assert.equal(r.opened.length, handshake ? 0 : 1, 'JS heard of it at the accept only without');
        s.destroy();
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        const first = randomBytes(3000);
        const t = await tunnel(r, echo.port, first);
        assert.deepEqual(await t.read(first.length), first);
        const more = randomBytes(200_000);
        t.send(more);
        assert.equal((await t.read(first.length + more.length, 10_000)).length, first.length + more.length);
        t.end();
        assert.equal((await t.closed).kind, 'fin');
        await waitFor(() => r.closed.length === 2, { timeoutMs: 2000 });
        const e = r.closed[1]!;
        assert.equal(e.status, 'OK');
        assert.equal(e.keyId, KEY.id);
        const up = t.sentWire.reduce((n, b) => n + b.length, 0);
        const down = t.receivedWire.reduce((n, b) => n + b.length, 0);
        assert.deepEqual([e.bytesUp, e.bytesDown], [up, down]);
        r.server.flushUsage();
        assert.deepEqual(r.usage.get(KEY.id), { up, down }, 'usage counted once, exactly');
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: silent, FIN-only, short and wrong-key connections get today's reaction`, async () => {
      const r = await startServer(handshake);
      try {
        const cases = [
          { label: 'silent, held open', payload: Buffer.alloc(0), halfClose: false },
          { label: 'FIN only', payload: Buffer.alloc(0), halfClose: true },
          { label: 'short garbage, held open', payload: randomBytes(20), halfClose: false },
          { label: 'wrong key, held open', payload: randomBytes(200), halfClose: false },
        ];
        const t0 = Date.now();
        const got = await Promise.all(
          cases.map((c) => probeOnce(r.port, c, { halfClose: c.halfClose, giveUpMs: IDLE_MS * 4 })),
        );
        const shapes = got.map((p) => ({
          bytesBack: p.bytesBack,
          reaction: p.reaction,
          when: p.ms < IDLE_MS / 2 ? 'at once' : p.ms < IDLE_MS * 2 ? 'at the idle timeout' : 'late',
        }));
        assert.deepEqual(shapes, [
          { bytesBack: 0, reaction: 'FIN', when: 'at the idle timeout' },
          { bytesBack: 0, reaction: 'FIN', when: 'at once' },
          { bytesBack: 0, reaction: 'FIN', when: 'at the idle timeout' },
          { bytesBack: 0, reaction: 'FIN', when: 'at the idle timeout' },
        ]);
        await waitFor(() => r.closed.length === 4, { timeoutMs: 2000 });
        assert.deepEqual(r.closed.map((e) => e.status).sort(), [
          'ERR_CIPHER',
          'ERR_SHORT_HEADER',
          'ERR_SHORT_HEADER',
          'ERR_SHORT_HEADER',
        ]);
        assert.ok(r.closed.every((e) => e.probe));
        const silent = r.closed.filter((e) => e.durationMs >= IDLE_MS - 50);
        assert.equal(silent.length, 3, 'the held-open ones lasted the idle timeout from their accept');
        assert.ok(Date.now() - t0 < IDLE_MS * 3);
        assert.equal(nativeAcceptLive(), 0);
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: a refused and a timed-out dial end with ERR_CONNECT and its errno, FIN to the client`, async () => {
      const r = await startServer(handshake, 300);
      const hole = await blackholePort(fns!).catch(async (err: unknown) => {
        await r.server.close();
        throw err;
      });
      const free = net.createServer();
      await new Promise<void>((res) => free.listen(0, '127.0.0.1', res));
      const closedPort = (free.address() as net.AddressInfo).port;
      await new Promise((res) => free.close(res));
      try {
        const refused = await tunnel(r, closedPort, Buffer.from('x'));
        const slow = await tunnel(r, hole.port, Buffer.from('y'));
        // Dialled by the addon, the connect is a relay already (relayConnect); else tcpConnect's.
        // Polled, not read once 100 ms in: on a loaded machine the refused dial may not have ended
        // by then or the slow one not started, and the slow one lasts only its 300 ms budget.
        if (handshake) {
          await waitFor(() => relayLive() === 1, {
            intervalMs: 5,
            message: () => `who dials: the addon (${relayLive()} relays live)`,
          });
        } else {
          await sleep(100);
          assert.equal(relayLive(), 0, 'who dials: JS');
        }
        const [a, b] = await Promise.all([refused.closed, slow.closed]);
        assert.equal(a.kind, 'fin');
        assert.equal(b.kind, 'fin');
        await waitFor(() => r.closed.length === 2, { timeoutMs: 3000 });
        const byErrno = r.closed.map((e) => `${e.status} ${e.errno}`).sort();
        assert.deepEqual(byErrno, ['ERR_CONNECT ECONNREFUSED', 'ERR_CONNECT ETIMEDOUT']);
        assert.ok(r.closed.every((e) => e.keyId === KEY.id && !e.probe));
        await sleep(20);
        assert.equal(nativeAcceptLive(), 0);
        assert.equal(relayLive(), 0);
      } finally {
        hole.close();
        await r.server.close();
      }
    });

    it(`${which}: operator close while dialling and while relaying; server close of a waiting one`, async () => {
      const r = await startServer(handshake, 5000);
      const hole = await blackholePort(fns!).catch(async (err: unknown) => {
        await r.server.close();
        throw err;
      });
      try {
        const dialling = await tunnel(r, hole.port, Buffer.from('x'));
        const relaying = await tunnel(r, echo.port, Buffer.from('ping'));
        assert.equal((await relaying.read(4)).toString(), 'ping');
        await waitFor(() => r.server.openConnections().get(KEY.id) === 2, { timeoutMs: 2000 });
        assert.equal(r.server.closeKeyConnections(KEY.id), 2);
        await Promise.all([dialling.closed, relaying.closed]);
        await waitFor(() => r.closed.length === 2, { timeoutMs: 2000 });
        assert.deepEqual(
          r.closed.map((e) => e.status),
          ['ERR_CLOSED', 'ERR_CLOSED'],
        );
        await sleep(20);
        assert.equal(relayLive(), 0);
        const waiting = net.connect(r.port, '127.0.0.1');
        waiting.on('error', () => {});
        await new Promise((res) => waiting.once('connect', res));
        await waitFor(() => r.server.connectionCount === 1, { timeoutMs: 2000 });
        await r.server.close();
        assert.deepEqual(
          r.closed.map((e) => e.status),
          ['ERR_CLOSED', 'ERR_CLOSED', 'ERR_CLOSED'],
          'the silent one reported by the time close() resolves',
        );
        await new Promise((res) => (waiting.destroyed ? res(undefined) : waiting.on('close', res)));
        assert.equal(nativeAcceptLive(), 0);
      } finally {
        hole.close();
        await r.server.close();
      }
    });

    it(`${which}: a removed key refuses the next connection; the other key still works`, async () => {
      const r = await startServer(handshake);
      try {
        const t = await tunnel(r, echo.port, Buffer.from('a'));
        assert.equal((await t.read(1)).toString(), 'a');
        t.end();
        await t.closed;
        r.server.setKeys([KEY2]);
        const refused = await tunnel(r, echo.port, Buffer.from('b'));
        refused.end();
        const c = await refused.closed;
        assert.equal(c.kind, 'fin');
        assert.equal(refused.receivedWire.length, 0, 'nothing back for the removed key');
        const ok = await tunnel(r, echo.port, Buffer.from('c'), KEY2);
        assert.equal((await ok.read(1)).toString(), 'c');
        ok.end();
        await ok.closed;
        await waitFor(() => r.closed.length === 3, { timeoutMs: 2000 });
        assert.deepEqual(
          r.closed.map((e) => e.status),
          ['OK', 'ERR_CIPHER', 'OK'],
        );
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: 300 short connections (64 at a time) leave no entry, relay or descriptor`, async () => {
      // A long idle timeout: 64 round trips at once on a loaded machine can take longer than
      // IDLE_MS, and a tunnel idled out before its echo would fail the count, not a leak.
      const r = await startServer(handshake, 2000, 30_000);
      try {
        const before = openFds();
        const one = async (i: number): Promise<void> => {
          if (i % 5 === 0) {
            const p = await probeOnce(
              r.port,
              { label: 'g', payload: randomBytes(60) },
              { halfClose: true, giveUpMs: 5000 },
            );
            assert.equal(p.reaction, 'FIN');
            return;
          }
          const t = await tunnel(r, echo.port, Buffer.from(`n${i}`));
          await t.read(String(i).length + 1);
          t.end();
          await t.closed;
        };
        for (let i = 0; i < 300; i += 64) {
          await Promise.all(Array.from({ length: Math.min(64, 300 - i) }, (_, j) => one(i + j)));
        }
        await waitFor(() => r.closed.length === 300, { timeoutMs: 10_000 });
        await waitFor(() => nativeAcceptLive() === 0 && relayLive() === 0 && openFds() <= before, {
          timeoutMs: 5000,
        });
        // (The control's dial that an operator close left pending above ends at its connect budget.)
        await waitFor(() => (fns!.pollLive?.()[0] ?? 0) === 0, { timeoutMs: 8000 });
      } finally {
        await r.server.close();
      }
    });
  }
});
