/**
 * The Shadowsocks connection handler over any byte stream: the same session, for a SIP004 key and
 * a 2022 key, run through ShadowsocksServer.handleStream() on a plain in-memory Duplex pair (no
 * socket at all) and through the TCP listener, relays the same bytes to a loopback echo
 * destination; garbage and a replayed first write meet the same uniform reaction on both (no
 * byte back, the stream left open until the peer ends it or the idle timeout passes).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { duplexPair, type Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { Aead2022RequestEncoder, Aead2022ResponseDecoder } from '../../src/protocol/shadowsocks/aead2022.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { getAead2022Method } from '../../src/protocol/shadowsocks/methods2022.js';
import { encodeAddress, type SocksAddress } from '../../src/protocol/socks5/address.js';
import { ManualClock } from '../../src/shared/clock.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { ShadowsocksServer, type ConnectionClosedEvent } from '../../src/server/index.js';
import { openTestTunnel } from '../helpers/test-client.js';

const IDLE_MS = 60_000;
const settle = (ms = 40): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll (real time) until `ok()` or a bound; returns the last ok() value. */
async function until(ok: () => boolean, timeoutMs = 5_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!ok() && Date.now() < end) await settle(10);
  return ok();
}

// ---- destination: a loopback echo that records what it was sent, per connection ----

interface Echo {
  readonly port: number;
  readonly sessions: Buffer[][];
  close(): Promise<void>;
}

async function startEcho(): Promise<Echo> {
  const sockets = new Set<net.Socket>();
  const sessions: Buffer[][] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const got: Buffer[] = [];
    sessions.push(got);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.on('data', (d: Buffer) => {
      got.push(Buffer.from(d));
      s.write(d);
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    sessions,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---- client side of one session, per edition (the repo's own encoders) ----

interface ClientCodec {
  /** The first write: salt, header(s), target address and initial payload. */
  first(target: SocksAddress, initial: Buffer): Buffer;
  encode(data: Buffer): Buffer;
  decode(wire: Buffer): Buffer[];
}

interface Edition {
  readonly name: string;
  readonly key: RuntimeKey;
  codec(clock: ManualClock): ClientCodec;
}

const SIP004: Edition = {
  name: 'SIP004 (aes-256-gcm)',
  key: { id: 'sip004', method: 'aes-256-gcm', secret: 'duplex test password' },
  codec() {
    const method = getAeadMethod('aes-256-gcm');
    const master = evpBytesToKey('duplex test password', method.keySize);
    const enc = new AeadEncoder(method, master);
    const dec = new AeadDecoder(method, master);
    return {
      first: (target, initial) => enc.encode(Buffer.concat([encodeAddress(target), initial])),
      encode: (data) => enc.encode(data),
      decode: (wire) => dec.push(wire),
    };
  },
};

const PSK_2022 = randomBytes(32);
const SS2022: Edition = {
  name: 'SIP022 (2022-blake3-aes-256-gcm)',
  key: { id: 'ss2022', method: '2022-blake3-aes-256-gcm', secret: PSK_2022.toString('base64') },
  codec(clock) {
    const method = getAead2022Method('2022-blake3-aes-256-gcm');
    const enc = new Aead2022RequestEncoder(method, PSK_2022);
    const dec = new Aead2022ResponseDecoder(method, PSK_2022, enc.salt);
    return {
      first: (target, initial) => enc.encodeHeader(target, initial, clock.now()),
      encode: (data) => enc.encode(data),
      decode: (wire) => dec.push(wire, clock.now()),
    };
  },
};

// ---- the two ways in: the TCP listener, and handleStream() on an in-memory Duplex pair ----

/** What the client end of a stream saw from the server. */
interface Watched {
  readonly stream: Duplex;
  readonly received: Buffer[];
  bytes: number;
  /** The server ended its side (FIN). */
  ended: boolean;
  /** The server reset or destroyed the stream (an 'error' on the client side). */
  error: string | undefined;
  closed: boolean;
  /** handleStream only: the server's end of the pair, to see that it was neither ended nor destroyed. */
  readonly serverSide: Duplex | undefined;
}

function watch(stream: Duplex, serverSide: Duplex | undefined): Watched {
  const w: Watched = {
    stream,
    received: [],
    bytes: 0,
    ended: false,
    error: undefined,
    closed: false,
    serverSide,
  };
  stream.on('data', (d: Buffer) => {
    w.received.push(d);
    w.bytes += d.length;
  });
  stream.on('end', () => (w.ended = true));
  stream.on('error', (e: NodeJS.ErrnoException) => (w.error = e.code ?? e.message));
  stream.on('close', () => (w.closed = true));
  return w;
}

interface Transport {
  readonly name: string;
  open(server: ShadowsocksServer): Promise<Watched>;
}

const TCP: Transport = {
  name: 'TCP listener',
  async open(server) {
    const port = server.address()!.port;
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return watch(socket, undefined);
  },
};

const DUPLEX: Transport = {
  name: 'plain Duplex (handleStream)',
  open(server) {
    const [client, serverSide] = duplexPair();
    server.handleStream(serverSide, { remoteAddress: '192.0.2.7' });
    return Promise.resolve(watch(client, serverSide));
  },
};

/** The server has not ended, reset or destroyed the stream, and wrote nothing. */
function assertHeldOpen(w: Watched, what: string): void {
  assert.equal(w.bytes, 0, `${what}: no byte back`);
  assert.equal(w.ended, false, `${what}: not ended by the server`);
  assert.equal(w.error, undefined, `${what}: not reset`);
  assert.equal(w.closed, false, `${what}: not closed`);
  if (w.serverSide) {
    assert.equal(w.serverSide.writableEnded, false, `${what}: server side not ended`);
    assert.equal(w.serverSide.destroyed, false, `${what}: server side not destroyed`);
  }
}

/** How a failed connection was treated, comparable across transports. */
interface Reaction {
  bytesBack: number;
  heldUntil: 'peer-end' | 'idle-timeout';
  closedBy: 'fin';
  status: string;
  bytesDown: number;
}

// ---- the tests ----

for (const edition of [SIP004, SS2022]) {
  describe(`Connection over any Duplex: ${edition.name}`, () => {
    const clock = new ManualClock();
    const closed: ConnectionClosedEvent[] = [];
    let echo: Echo;
    let server: ShadowsocksServer;
    let target: SocksAddress;
    const relayed = new Map<string, Buffer>();
    const reactions = new Map<string, Reaction>();

    before(async () => {
      echo = await startEcho();
      target = { type: 'ipv4', host: '127.0.0.1', port: echo.port };
      server = new ShadowsocksServer({
        keys: [edition.key],
        clock,
        allowPrivateDestinations: true,
        timeouts: { idleMs: IDLE_MS },
        hooks: { onConnectionClosed: (e) => closed.push(e) },
      });
      assert.deepEqual(server.rejectedKeys, []);
      await server.listen({ port: 0, host: '127.0.0.1' });
    });
    after(async () => {
      await server.close();
      await echo.close();
    });

    /** The close event of the next connection to close (waits, bounded). */
    async function nextClosed(): Promise<ConnectionClosedEvent> {
      assert.ok(await until(() => closed.length > 0), 'a connection closed');
      return closed.shift()!;
    }

    // The same plaintext for both transports: a first write and three more of varied sizes.
    const initial = Buffer.from('hello through any stream');
    const more = [randomBytes(1), randomBytes(1_000), randomBytes(40_000)];
    const plaintext = Buffer.concat([initial, ...more]);

    for (const transport of [TCP, DUPLEX]) {
      it(`relays a session to a loopback echo (${transport.name})`, async () => {
        closed.length = 0;
        const sessionsBefore = echo.sessions.length;
        const codec = edition.codec(clock);
        const w = await transport.open(server);
        w.stream.write(codec.first(target, initial));
        for (const m of more) w.stream.write(codec.encode(m));
        const plain: Buffer[] = [];
        let plainLen = 0;
        const decodeNew = (() => {
          let seen = 0;
          return () => {
            for (; seen < w.received.length; seen++) {
              for (const p of codec.decode(w.received[seen]!)) {
                plain.push(p);
                plainLen += p.length;
              }
            }
          };
        })();
        assert.ok(
          await until(() => {
            decodeNew();
            return plainLen >= plaintext.length;
          }),
          `echoed ${plainLen} of ${plaintext.length} bytes`,
        );
        assert.ok(Buffer.concat(plain).equals(plaintext), 'the client got back exactly what it sent');
        const atDestination = Buffer.concat(echo.sessions[sessionsBefore] ?? []);
        assert.ok(atDestination.equals(plaintext), 'the destination got exactly the plaintext');
        relayed.set(transport.name, atDestination);

        // The client ends; the FIN travels to the destination and back, and the server ends too.
        w.stream.end();
        assert.ok(await until(() => w.ended), 'the server ended its side after the client did');
        const e = await nextClosed();
        assert.equal(e.status, 'OK');
        assert.equal(e.keyId, edition.key.id);
        assert.equal(e.probe, false);
        assert.equal(e.bytesDown, w.bytes);
        assert.equal(w.error, undefined);
      });

      it(`garbage: no byte back, held open until the peer ends it (${transport.name})`, async () => {
        closed.length = 0;
        const w = await transport.open(server);
        w.stream.write(randomBytes(300));
        await settle();
        assertHeldOpen(w, 'after garbage');
        clock.advance(IDLE_MS - 1);
        await settle();
        assertHeldOpen(w, 'just before the idle timeout');
        w.stream.end();
        assert.ok(await until(() => w.ended), 'answered the peer FIN with a FIN');
        const e = await nextClosed();
        assert.equal(w.bytes, 0);
        assert.equal(w.error, undefined, 'a FIN, not a reset');
        assert.equal(e.probe, true);
        reactions.set(`garbage ${transport.name}`, {
          bytesBack: w.bytes,
          heldUntil: 'peer-end',
          closedBy: 'fin',
          status: e.status,
          bytesDown: e.bytesDown,
        });
        assert.equal(e.status, 'ERR_CIPHER');
      });

      it(`replayed first write: no byte back, held open until the idle timeout (${transport.name})`, async () => {
        closed.length = 0;
        // A real session, then its first write again on a new stream of the same kind.
        const codec = edition.codec(clock);
        const first = codec.first(target, initial);
        const captured = Buffer.from(first);
        const real = await transport.open(server);
        real.stream.write(first);
        assert.ok(await until(() => real.bytes > 0), 'the real session was answered');

        const w = await transport.open(server);
        w.stream.write(captured);
        await settle();
        assertHeldOpen(w, 'after the replay');
        clock.advance(IDLE_MS - 1);
        await settle();
        assertHeldOpen(w, 'just before the idle timeout');
        clock.advance(1);
        assert.ok(await until(() => w.ended), 'closed with a FIN at the idle timeout');
        await settle();
        assert.equal(w.bytes, 0);
        assert.equal(w.error, undefined, 'a FIN, not a reset');
        // The real session idled out in the same advance (relay idle timeout); both closed.
        const events = [await nextClosed(), await nextClosed()];
        const e = events.find((x) => x.probe)!;
        assert.ok(e, 'the replay closed as a probe');
        reactions.set(`replay ${transport.name}`, {
          bytesBack: w.bytes,
          heldUntil: 'idle-timeout',
          closedBy: 'fin',
          status: e.status,
          bytesDown: e.bytesDown,
        });
        assert.equal(e.status, 'ERR_REPLAY_CLIENT');
        real.stream.destroy();
      });
    }

    it('both transports relayed the same bytes and reacted the same way to failures', () => {
      assert.ok(relayed.get(TCP.name)!.equals(relayed.get(DUPLEX.name)!));
      for (const kind of ['garbage', 'replay']) {
        assert.deepEqual(reactions.get(`${kind} ${DUPLEX.name}`), reactions.get(`${kind} ${TCP.name}`), kind);
      }
    });
  });
}

describe('Connection over any Duplex: the TCP test client still works beside handleStream', () => {
  it('openTestTunnel relays through the listener while a Duplex session is open', async () => {
    const echo = await startEcho();
    const server = new ShadowsocksServer({
      keys: [SIP004.key],
      allowPrivateDestinations: true,
      timeouts: { idleMs: IDLE_MS },
    });
    const addr = await server.listen({ port: 0, host: '127.0.0.1' });
    try {
      const [client, serverSide] = duplexPair();
      server.handleStream(serverSide);
      client.write(randomBytes(10)); // garbage on the in-memory stream, held open
      const t = await openTestTunnel({
        port: addr.port,
        method: SIP004.key.method,
        password: SIP004.key.secret,
        target: { host: '127.0.0.1', port: echo.port },
        initial: Buffer.from('ping'),
      });
      assert.equal((await t.read(4)).toString(), 'ping');
      assert.equal(server.connectionCount, 2);
      t.destroy();
      client.end();
    } finally {
      await server.close();
      await echo.close();
    }
  });
});
