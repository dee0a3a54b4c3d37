/**
 * The server's per-connection trims of issue 15, session 12, each against its switch off:
 *   - lazy idle timer (LADDER_LAZY_IDLE): a natively accepted connection that is relaying after
 *     its first bytes arms no pre-relay idle timer; one that fails still gets the uniform reaction
 *     (nothing written, FIN after the idle timeout);
 *   - lean end (LADDER_LEAN_END): NativeStream.destroySilently closes without a 'close' event;
 *   - packed worker events (LADDER_PACKED_EVENTS): the main thread unpacks what the worker packed.
 */
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AuthEvent, ConnectionClosedEvent } from '../../src/server/events.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { EventPacker, unpackEvents } from '../../src/server/workers/event-batch.js';
import { systemClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import {
  listenNative,
  nativeAccept,
  nativeAcceptLive,
  type NativeStream,
} from '../../src/transport/native-stream.js';
import { fdOf, startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { probeOnce } from '../probing/prober.js';

const NEED = 'the native addon with acceptListen and relayConnect (Linux; npm run build:native)';
const fns = nativeAccept();
const available = fns !== undefined && typeof nativeRelay()?.relayConnect === 'function';
const KEY = { id: 'k1', method: 'aes-256-gcm', secret: 'conn-lean-pw' };
/** Distinctive, so the connection's own idle timers can be told from any other timer. */
const IDLE_MS = 777;

async function startServer(opts: { lazyIdle: boolean }) {
  const closed: ConnectionClosedEvent[] = [];
  const server = new ShadowsocksServer({
    keys: [KEY],
    allowPrivateDestinations: true,
    nativeRelay: true,
    nativeAccept: true,
    nativeHandshake: true,
    lazyIdle: opts.lazyIdle,
    timeouts: { idleMs: IDLE_MS },
    logger: silentLogger,
    hooks: { onConnectionClosed: (e) => closed.push(e) },
  });
  const addr = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port: addr.port, closed };
}

/**
 * Counts the system clock's timers of at most IDLE_MS (the connection's idle timer) while `fn`
 * runs. An idle timer is armed for IDLE_MS less the connection's age (the native handshake hands
 * JS a connection some ms after its accept, 100 ms and more on a loaded machine, so the count
 * takes any delay up to IDLE_MS); nothing else on the system clock arms one during these round
 * trips (all five the control arms are of 777 ms on a quiet machine).
 */
async function idleTimersDuring(fn: () => Promise<void>): Promise<number> {
  const clock = systemClock as { setTimeout: typeof systemClock.setTimeout };
  const real = clock.setTimeout;
  let n = 0;
  clock.setTimeout = (cb, ms) => {
    if (ms > 0 && ms <= IDLE_MS) n++;
    return real(cb, ms);
  };
  try {
    await fn();
  } finally {
    clock.setTimeout = real;
  }
  return n;
}

describe('per-connection trims (issue 15, session 12)', { skip: skipUnless(available, NEED) }, () => {
  let echo: TestServer;
  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    await echo.close();
  });

  for (const lazyIdle of [true, false]) {
    const label = lazyIdle ? 'lazy idle timer' : 'LADDER_LAZY_IDLE=0 (control)';
    it(`${label}: relayed connections ${lazyIdle ? 'arm no' : 'arm one'} pre-relay idle timer each; usage and status as before`, async () => {
      const r = await startServer({ lazyIdle });
      try {
        const armed = await idleTimersDuring(async () => {
          for (let i = 0; i < 5; i++) {
            const t = await openTestTunnel({
              port: r.port,
              method: KEY.method,
              password: KEY.secret,
              target: { host: '127.0.0.1', port: echo.port },
              initial: Buffer.from(`ping ${i}`),
            });
            assert.equal((await t.read(6)).toString(), `ping ${i}`);
            t.end();
            await t.closed;
          }
          await waitFor(() => r.closed.length === 5, { timeoutMs: 3000 });
        });
        assert.equal(armed, lazyIdle ? 0 : 5);
        assert.deepEqual(
          r.closed.map((e) => [e.status, e.keyId]),
          Array.from({ length: 5 }, () => ['OK', 'k1']),
        );
        assert.equal(nativeAcceptLive(), 0);
      } finally {
        await r.server.close();
      }
    });

    it(`${label}: garbage and silence get the uniform reaction (nothing written, FIN after the idle timeout)`, async () => {
      const r = await startServer({ lazyIdle });
      try {
        const [garbage, silent] = await Promise.all(
          [Buffer.alloc(80, 7), Buffer.alloc(0)].map((payload, i) =>
            probeOnce(r.port, { label: String(i), payload }, { giveUpMs: IDLE_MS * 5 }),
          ),
        );
        for (const p of [garbage!, silent!]) {
          assert.equal(p.bytesBack, 0);
          assert.equal(p.reaction, 'FIN');
          assert.ok(p.ms >= IDLE_MS - 50, `closed after ${p.ms} ms`);
        }
        await waitFor(() => r.closed.length === 2, { timeoutMs: 3000 });
        assert.deepEqual(r.closed.map((e) => e.status).sort(), ['ERR_CIPHER', 'ERR_SHORT_HEADER']);
      } finally {
        await r.server.close();
      }
    });
  }

  it('destroySilently closes the connection with no event at all; destroy emits close', async () => {
    const listener = net.createServer();
    await new Promise<void>((res) => listener.listen(0, '127.0.0.1', res));
    const streams: NativeStream[] = [];
    const { port } = listener.address() as net.AddressInfo;
    const handle = listenNative(fns!, fdOf(listener), (s) => void streams.push(s));
    listener.close();
    try {
      const peers = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')];
      const ends = peers.map((p) => new Promise<void>((res) => p.on('end', res).on('close', () => res())));
      for (const p of peers) p.on('error', () => {});
      await waitFor(() => streams.length === 2, { timeoutMs: 3000 });
      const events: string[] = [];
      for (const [i, s] of streams.entries()) s.on('close', () => events.push(`close ${i}`));
      streams[0]!.destroySilently();
      streams[1]!.destroy();
      await Promise.all(ends); // both peers see the server's close
      await sleep(20);
      assert.deepEqual(events, ['close 1']);
      assert.equal(streams[0]!.destroyed, true);
      assert.equal(nativeAcceptLive(), 0);
      for (const p of peers) p.destroy();
    } finally {
      handle.close();
    }
  });
});

describe('packed worker events', () => {
  it('unpack gives back the events the worker packed (every field, absent ones absent)', () => {
    const auth: AuthEvent[] = [
      { keyId: 'k1', timeToAuthMs: 3, keysTried: 2, recent: true, edition: 2017 },
      { keyId: 'kü', timeToAuthMs: 0, keysTried: 1, recent: false, edition: 2022 },
      { keyId: 'k1', timeToAuthMs: 1.5, keysTried: 1, recent: false },
    ];
    const closed: ConnectionClosedEvent[] = [
      {
        status: 'OK',
        keyId: 'k1',
        probe: false,
        timeToAuthMs: 3,
        durationMs: 12.25,
        bytesUp: 2 ** 40,
        bytesDown: 7,
      },
      {
        status: 'ERR_CIPHER',
        keyId: undefined,
        probe: true,
        timeToAuthMs: undefined,
        durationMs: 300000,
        bytesUp: 50,
        bytesDown: 0,
      },
      {
        status: 'ERR_CONNECT',
        keyId: 'kü',
        probe: false,
        timeToAuthMs: 0,
        durationMs: 4,
        bytesUp: 80,
        bytesDown: 0,
        errno: 'ECONNREFUSED',
      },
      {
        status: 'ERR_CLOSED',
        keyId: 'k3',
        probe: false,
        timeToAuthMs: 1,
        durationMs: 9,
        bytesUp: 1,
        bytesDown: 2,
      },
    ];
    const p = new EventPacker();
    assert.equal(p.empty, true);
    for (const e of auth) p.authenticated(e);
    for (const e of closed) p.closed(e);
    assert.equal(p.empty, false);
    const packed = p.take();
    assert.equal(p.empty, true);
    assert.deepEqual(packed.strings, ['k1', 'kü', 'ECONNREFUSED', 'k3']);
    // A structured clone (what postMessage does) changes nothing.
    const out = unpackEvents(structuredClone(packed));
    assert.deepEqual(out.authenticated, auth);
    assert.deepEqual(out.closed, closed);
    assert.deepEqual(unpackEvents(p.take()), { authenticated: [], closed: [] });
  });
});
