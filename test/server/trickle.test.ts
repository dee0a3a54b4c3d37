/**
 * A client that trickles bytes cannot hold an unauthenticated connection open: before a key is
 * found, and in the held-open phase after a failed trial, the server closes (FIN, nothing
 * written) at one idle timeout after the accept, however often bytes keep coming (as Outline's
 * ss-server's one read deadline for the authentication phase). Before, each byte restarted the
 * idle clock, so one byte a second held a descriptor for ever. Checked on the JS listener, the
 * native accept (with and without its handshake wait) and a 2-worker plane.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { startWorkerPlane } from '../../src/server/index.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { reusePortAvailable } from '../../src/server/workers/reuseport.js';
import { silentLogger } from '../../src/shared/logger.js';
import { nativeAccept } from '../../src/transport/native-stream.js';
import { skipUnless } from '../helpers/prereq.js';

const IDLE_MS = 1500;
const EVERY_MS = 300;
/** The old code never closes while bytes come: give up well after the deadline. */
const GIVE_UP_MS = IDLE_MS * 3;
const KEY = { id: 'k', method: 'chacha20-ietf-poly1305', secret: 'trickle-pw' };

interface Trickled {
  /** ms from the connect to the server's FIN; undefined: none came before GIVE_UP_MS. */
  finMs: number | undefined;
  bytesBack: number;
  reset: boolean;
}

/** Connect, send `burst` (if any), then one random byte every EVERY_MS until the server's FIN. */
function trickle(port: number, burst?: Buffer): Promise<Trickled> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    s.setNoDelay(true);
    let t0 = 0;
    let bytesBack = 0;
    let finMs: number | undefined;
    let reset = false;
    let tick: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearInterval(tick);
      clearTimeout(giveUp);
      s.destroy();
      resolve({ finMs, bytesBack, reset });
    };
    const giveUp = setTimeout(done, GIVE_UP_MS + 2000);
    s.once('connect', () => {
      t0 = performance.now();
      s.write(burst ?? randomBytes(1));
      tick = setInterval(() => {
        if (performance.now() - t0 > GIVE_UP_MS) return done();
        s.write(randomBytes(1));
      }, EVERY_MS);
    });
    s.on('data', (d: Buffer) => (bytesBack += d.length));
    s.once('end', () => {
      finMs = performance.now() - t0;
      clearInterval(tick);
      setTimeout(done, 30); // linger: an RST would follow a close with unread bytes
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (finMs === undefined && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) reset = true;
      done();
    });
  });
}

/** Trickled from the first byte (key trial pending) and after a failed trial (100 bytes of garbage). */
async function checkPort(port: number): Promise<void> {
  const results = await Promise.all([trickle(port), trickle(port, randomBytes(100)), trickle(port)]);
  for (const [i, r] of results.entries()) {
    const at = `connection ${i}: ${JSON.stringify(r)}`;
    assert.equal(r.bytesBack, 0, at);
    assert.equal(r.reset, false, at);
    assert.ok(r.finMs !== undefined, `${at}: no FIN while bytes kept coming`);
    // The server's clock starts at its accept, which another thread (the native accept, a worker)
    // may reach before this loop sees 'connect': some slack below; above, a loaded machine's timer
    // lag (the old code, with a byte every EVERY_MS, never closes before GIVE_UP_MS).
    assert.ok(
      r.finMs >= IDLE_MS - 250 && r.finMs < IDLE_MS + 1500,
      `${at}: FIN not at the idle timeout after the connect`,
    );
  }
}

describe('a trickling client gets FIN one idle timeout after the accept', () => {
  const servers: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  const variants: [string, { nativeAccept: boolean; nativeHandshake?: boolean }, boolean][] = [
    ['JS listener', { nativeAccept: false }, true],
    ['native accept', { nativeAccept: true }, nativeAccept() !== undefined],
    [
      'native accept, LADDER_NATIVE_HANDSHAKE=0',
      { nativeAccept: true, nativeHandshake: false },
      nativeAccept() !== undefined,
    ],
  ];
  for (const [name, opts, ok] of variants) {
    it(name, { skip: skipUnless(ok, 'the native addon with acceptListen') }, async () => {
      const server = new ShadowsocksServer({ keys: [KEY], timeouts: { idleMs: IDLE_MS }, ...opts });
      servers.push(server);
      const addr = await server.listen({ port: 0, host: '127.0.0.1' });
      await checkPort(addr.port);
    });
  }

  it(
    '2-worker plane',
    { skip: skipUnless(reusePortAvailable(), 'the native addon with SO_REUSEPORT sockets') },
    async () => {
      const plane = await startWorkerPlane({
        workers: 2,
        startAtBoot: true,
        keys: [KEY],
        port: 0,
        host: '127.0.0.1',
        logger: silentLogger,
        timeouts: { idleMs: IDLE_MS },
      });
      servers.push(plane);
      await checkPort(plane.address.port);
    },
  );
});
