/**
 * The server's native destination connections for WebSocket streams (src/server/web/native-dest.ts,
 * native/dest_stream.cc): the connection alone (echo and half-close both ways, a refused connect,
 * a reset mid-session, back-pressure, bytes that arrive before anyone reads), and behind the
 * WebSocket endpoints with Mux.Cool: 300 sessions leave no connection and no descriptor, a refused
 * destination closes its session (ERR_CONNECT), a reset one too (ERR_RELAY), the operator's key
 * removal closes a relaying one.
 * Negative control: with `nativeDest: false` no session holds a native connection.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { DialError } from '../../src/server/destination.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { nativeAddon } from '../../src/protocol/shadowsocks/native.js';
import { nativeDestAvailable, nativeDestConnect, nativeDestLive } from '../../src/server/web/native-dest.js';
import { systemClock } from '../../src/shared/clock.js';
import { MuxConnection } from '../../src/transport/mux.js';
import { dialWebSocket } from '../../src/transport/ws-dialer.js';
import { sha256Hex } from '../helpers/hash.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { startWsTestServer, tunnelVia, type WsTestServer } from '../helpers/web-server.js';

const NEED = 'the native addon with destConnect (Linux; npm run build:native)';
const available = nativeDestAvailable({});
const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'native-dest-password';

function dial(port: number): Promise<Duplex> {
  return nativeDestConnect('127.0.0.1', port, systemClock.now() + 5000, systemClock);
}

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** A one-connection server on loopback running `onConn`. */
async function serveOnce(onConn: (s: net.Socket) => void): Promise<{ port: number; close: () => void }> {
  const srv = net.createServer({ allowHalfOpen: true }, onConn).listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

let echo: TestServer;
before(async () => {
  echo = await startEcho();
});
after(async () => {
  await echo.close();
});

describe('native destination connection', { skip: skipUnless(available, NEED) }, () => {
  it('echoes, half-closes both ways and closes itself; nothing left open', async () => {
    const d = await dial(echo.port);
    assert.equal(nativeDestLive(), 1);
    let got = '';
    d.on('data', (c: Buffer) => (got += c.toString()));
    d.write(Buffer.from('hello'));
    await waitFor(() => got === 'hello');
    const ended = once(d, 'end');
    const closed = once(d, 'close');
    d.end(); // our FIN: the echo ends in turn
    await ended;
    await closed;
    assert.equal(d.destroyed, true);
    assert.equal(nativeDestLive(), 0);
  });

  it('a refused connect is ERR_CONNECT ECONNREFUSED and leaves nothing', async () => {
    const port = await closedPort();
    await assert.rejects(dial(port), (e: unknown) => {
      assert.ok(e instanceof DialError);
      assert.equal(e.status, 'ERR_CONNECT');
      assert.equal(e.errno, 'ECONNREFUSED');
      return true;
    });
    assert.equal(nativeDestLive(), 0);
  });

  it('a destination that resets mid-session gives an error, then close', async () => {
    const srv = await serveOnce((s) => s.once('data', () => s.resetAndDestroy()));
    try {
      const d = await dial(srv.port);
      d.on('data', () => {});
      const errored = once(d, 'error');
      d.write(Buffer.from('trigger'));
      const [err] = (await errored) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'ECONNRESET');
      if (!d.destroyed) await once(d, 'close');
      assert.equal(nativeDestLive(), 0);
    } finally {
      srv.close();
    }
  });

  it('back-pressure: write says false while the destination does not read, drain follows, end() sends it all first', async () => {
    let peer: net.Socket | undefined;
    const parts: Buffer[] = [];
    let peerEnded = false;
    const srv = await serveOnce((s) => {
      peer = s;
      s.pause();
      s.on('data', (c: Buffer) => parts.push(c));
      s.on('end', () => (peerEnded = true));
    });
    try {
      const d = await dial(srv.port);
      d.on('data', () => {});
      const sent: Buffer[] = [];
      let full = false;
      for (let i = 0; i < 1024 && !full; i++) {
        const c = randomBytes(64 * 1024);
        sent.push(c);
        full = !d.write(c);
      }
      assert.ok(full, 'a destination that reads nothing fills up within 64 MiB');
      assert.ok(d.writableLength > 0);
      const drained = once(d, 'drain');
      await waitFor(() => peer);
      peer!.resume();
      await drained;
      d.end();
      await waitFor(() => peerEnded);
      assert.equal(sha256Hex(...parts), sha256Hex(...sent), 'every byte, in order, before the FIN');
      const closed = once(d, 'close');
      peer!.end();
      await closed;
      assert.equal(nativeDestLive(), 0);
    } finally {
      srv.close();
    }
  });

  it('a loopback connect done inside connect(2) is ready at once: -id, no connected event, the first write sent', async () => {
    // The addon directly: the dial resolves in the same turn (no wake-up for a connected event)
    // because destConnect says -id; before, it always gave +id and a write then was held pending.
    const a = nativeAddon() as unknown as {
      destConnect(ip: string, port: number): number;
      destWrite(id: number, b: Uint8Array): number;
      destClose(id: number): void;
    };
    const r = a.destConnect('127.0.0.1', echo.port);
    try {
      assert.ok(r < 0, `destConnect gave ${r}: not connected at once`);
      assert.equal(a.destWrite(-r, Buffer.from('now')), 0, 'the first write was not sent at once');
    } finally {
      a.destClose(Math.abs(r));
    }
    assert.equal(nativeDestLive(), 0);
    // And through the dial: the first write goes out with nothing pending, the echo comes back.
    const d = await dial(echo.port);
    let got = '';
    d.on('data', (c: Buffer) => (got += c.toString()));
    d.write(Buffer.from('first'));
    assert.equal(d.writableLength, 0);
    await waitFor(() => got === 'first');
    d.destroy();
    assert.equal(nativeDestLive(), 0);
  });

  it('bytes and the end that arrive before anyone reads are held for the first reader', async () => {
    const srv = await serveOnce((s) => s.end('greeting'));
    try {
      const d = await dial(srv.port);
      await new Promise((r) => setTimeout(r, 50));
      let got = '';
      d.on('data', (c: Buffer) => (got += c.toString()));
      await once(d, 'end');
      assert.equal(got, 'greeting');
      d.end();
      await once(d, 'close');
      assert.equal(nativeDestLive(), 0);
    } finally {
      srv.close();
    }
  });
});

/** One Mux.Cool carrier to `srv`, and a way to run Shadowsocks streams over its sessions. */
async function carrier(srv: WsTestServer): Promise<{ stream: (port: number) => Duplex; close: () => void }> {
  const ws = await dialWebSocket({ url: `ws://127.0.0.1:${srv.webPort}${srv.secretPath}/tcp` });
  const mux = new MuxConnection(ws, { role: 'client' });
  return {
    stream: (port) =>
      tunnelVia(
        srv,
        { method: METHOD, password: PASSWORD },
        async () => mux.open().on('error', () => {}), // the server's End with the error bit, say
        port,
      ),
    close: () => mux.destroy(),
  };
}

/** 64 bytes through a fresh session, echoed, then both sides end. */
async function shortSession(c: { stream: (port: number) => Duplex }, port: number): Promise<void> {
  const s = c.stream(port);
  const body = randomBytes(64);
  let got = Buffer.alloc(0);
  s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  s.write(body);
  await waitFor(() => got.length >= 64);
  assert.deepEqual(got, body);
  s.end();
  await once(s, 'close');
}

describe('Mux.Cool sessions with native destinations', { skip: skipUnless(available, NEED) }, () => {
  it('300 sessions in a row leave no destination connection and no descriptor open', async () => {
    const srv = await startWsTestServer({ keys: [{ id: 'k', method: METHOD, secret: PASSWORD }] });
    const c = await carrier(srv);
    try {
      await shortSession(c, echo.port); // the carrier and its first session settle
      await waitFor(() => nativeDestLive() === 0);
      const fds = openFds();
      for (let i = 0; i < 300; i++) await shortSession(c, echo.port);
      await waitFor(() => nativeDestLive() === 0);
      await waitFor(() => openFds() <= fds, { message: () => `descriptors: ${openFds()}, before ${fds}` });
    } finally {
      c.close();
      await srv.close();
    }
  });

  for (const nativeDest of [true, false]) {
    it(`a relaying session holds ${nativeDest ? 'one native connection' : 'none (negative control: nativeDest false)'}; removing its key closes it`, async () => {
      const closed: ConnectionClosedEvent[] = [];
      const srv = await startWsTestServer({
        keys: [{ id: 'k', method: METHOD, secret: PASSWORD }],
        nativeDest,
        hooks: { onConnectionClosed: (e) => closed.push(e) },
      });
      const c = await carrier(srv);
      try {
        const s = c.stream(echo.port);
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString()));
        s.on('error', () => {});
        s.write(Buffer.from('open'));
        await waitFor(() => got === 'open');
        assert.equal(nativeDestLive(), nativeDest ? 1 : 0);
        const gone = new Promise((r) => s.once('close', r)); // once() would reject at its 'error'
        srv.plane.server.setKeys([]); // the operator removes the key
        await gone;
        await waitFor(() => closed.length === 1);
        assert.equal(closed[0]!.status, 'ERR_CLOSED');
        assert.equal(closed[0]!.bytesUp > 0 && closed[0]!.bytesDown > 0, true, 'usage counted');
        await waitFor(() => nativeDestLive() === 0);
      } finally {
        c.close();
        await srv.close();
      }
    });
  }

  it('a destination that resets mid-session closes its session with ERR_RELAY; the carrier goes on', async () => {
    const closed: ConnectionClosedEvent[] = [];
    const srv = await startWsTestServer({
      keys: [{ id: 'k', method: METHOD, secret: PASSWORD }],
      hooks: { onConnectionClosed: (e) => closed.push(e) },
    });
    const dest = await serveOnce((s) => s.once('data', (d: Buffer) => s.write(d, () => s.resetAndDestroy())));
    const c = await carrier(srv);
    try {
      const s = c.stream(dest.port);
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('error', () => {});
      const gone = new Promise((r) => s.once('close', r));
      s.write(Buffer.from('then reset'));
      await gone;
      assert.equal(got, 'then reset', 'what came before the reset was delivered');
      await waitFor(() => closed.length === 1);
      assert.equal(closed[0]!.status, 'ERR_RELAY');
      await shortSession(c, echo.port);
      await waitFor(() => nativeDestLive() === 0);
    } finally {
      c.close();
      dest.close();
      await srv.close();
    }
  });

  it('a refused destination closes its session with ERR_CONNECT; the carrier goes on', async () => {
    const closed: ConnectionClosedEvent[] = [];
    const srv = await startWsTestServer({
      keys: [{ id: 'k', method: METHOD, secret: PASSWORD }],
      hooks: { onConnectionClosed: (e) => closed.push(e) },
    });
    const c = await carrier(srv);
    try {
      const s = c.stream(await closedPort());
      let got = 0;
      s.on('data', (d: Buffer) => (got += d.length));
      s.on('error', () => {});
      const gone = new Promise((r) => s.once('close', r));
      s.write(Buffer.from('refused'));
      await gone;
      assert.equal(got, 0);
      await waitFor(() => closed.length === 1);
      assert.equal(closed[0]!.status, 'ERR_CONNECT');
      assert.equal(closed[0]!.errno, 'ECONNREFUSED');
      await shortSession(c, echo.port); // the same carrier still works
      await waitFor(() => nativeDestLive() === 0);
    } finally {
      c.close();
      await srv.close();
    }
  });
});
