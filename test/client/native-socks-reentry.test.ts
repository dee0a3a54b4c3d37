/**
 * The addon parts of the client's native SOCKS5 front called the way a careless caller would:
 * JS closing the front or the relay from inside their own callbacks, a throwing onFirst, the
 * front closed with connections in their handshake. Nothing may crash, each callback comes at
 * most once, and no relay, handshake or descriptor is left (native/socks5_front.cc,
 * native/relay_pair.cc's onFirst).
 */
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { nativeSocksFront } from '../../src/transport/native-sockets.js';
import { fdOf } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep, waitFor } from '../helpers/wait.js';

const fns = nativeSocksFront();
const skip = skipUnless(fns !== undefined, 'the native addon with socks5Front (Linux; npm run build:native)');
const fds = (): number => readdirSync('/proc/self/fd').length;

/** A connected loopback pair: [the test's end, the end whose descriptor the relay takes]. */
async function pair(): Promise<[net.Socket, net.Socket, () => void]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', (s) => (s.pause(), r(s))));
  const outer = net.connect({ port, host: '127.0.0.1' }); // closes once it read the relay's FIN
  outer.on('error', () => {});
  const inner = await accepted;
  inner.on('error', () => {});
  return [outer, inner, () => server.close()];
}

/** An encoder codec of the addon, as the client's relay gets one. */
function encoderCodec(): object {
  const method = getAeadMethod('aes-256-gcm');
  const enc = new AeadEncoder(method, evpBytesToKey('pw', method.keySize));
  enc.encode(new Uint8Array(0)); // the salt "went out"
  return enc.nativeCodec!;
}

/** A relay between two fresh pairs with the given onFirst; returns the test's ends. */
async function relayWith(
  onFirst: (chunk: Buffer | null, shut: boolean) => unknown,
  onClose: (reason: number) => void,
): Promise<{ server: net.Socket; app: net.Socket; box: { relay?: object } }> {
  const [server, serverInner, closeA] = await pair();
  const [app, appInner, closeB] = await pair();
  const box: { relay?: object } = {};
  box.relay = fns!.relayPair(
    fdOf(serverInner),
    fdOf(appInner),
    null,
    encoderCodec(),
    [undefined, undefined, undefined],
    5000,
    (reason) => onClose(reason),
    false,
    onFirst as never,
  );
  for (const s of [serverInner, appInner])
    s.removeAllListeners()
      .on('error', () => {})
      .destroy();
  closeA();
  closeB();
  return { server, app, box };
}

const closedOf = (s: net.Socket): Promise<unknown> =>
  new Promise((r) => (s.destroyed ? r(undefined) : s.once('close', r)));

describe('native SOCKS5 front and relay: re-entrant and failing callbacks', { skip, timeout: 60_000 }, () => {
  // The thread's epoll set (native/thread_poll.cc) is made by the first relay and kept: make it
  // before a test counts descriptors.
  before(async () => {
    const { server, app } = await relayWith(
      () => undefined,
      () => {},
    );
    server.destroy();
    app.destroy();
    await waitFor(() => fns!.relayLive() === 0, { timeoutMs: 5000 });
  });

  it('relayClose inside onFirst: onClose once (reason 3), both sockets closed, nothing left', async () => {
    const before = fds();
    const reasons: number[] = [];
    const { server, app, box } = await relayWith(
      () => {
        fns!.relayClose(box.relay!);
        return new Uint8Array([1, 2, 3]); // ignored: the relay is gone
      },
      (r) => reasons.push(r),
    );
    server.resume();
    app.resume();
    server.write('the server answers');
    await Promise.all([closedOf(server), closedOf(app)]);
    assert.deepEqual(reasons, [3]);
    assert.equal(fns!.relayLive(), 0);
    await waitFor(() => fds() <= before, { timeoutMs: 5000 });
  });

  it('onFirst throwing ends the relay as an authentication failure (reason 4)', async () => {
    const reasons: number[] = [];
    const { server, app } = await relayWith(
      () => {
        throw new Error('does not open');
      },
      (r) => reasons.push(r),
    );
    server.resume();
    app.resume();
    server.write('garbage');
    await Promise.all([closedOf(server), closedOf(app)]);
    assert.deepEqual(reasons, [4]);
    assert.equal(fns!.relayLive(), 0);
  });

  it("onFirst gets null at the server's FIN, and the plaintext it returns reaches the application", async () => {
    const calls: Array<string | null> = [];
    const reasons: number[] = [];
    const { server, app } = await relayWith(
      (chunk) => {
        calls.push(chunk === null ? null : chunk.toString());
        return chunk === null ? undefined : Buffer.from(`<${chunk.toString()}>`);
      },
      (r) => reasons.push(r),
    );
    const got: Buffer[] = [];
    app.on('data', (b: Buffer) => got.push(b));
    server.resume();
    server.write('a');
    await waitFor(() => Buffer.concat(got).toString() === '<a>', { timeoutMs: 5000 });
    server.end();
    await waitFor(() => calls.length === 2, { timeoutMs: 5000 });
    assert.deepEqual(calls, ['a', null]);
    app.end();
    await Promise.all([closedOf(server), closedOf(app)]);
    assert.deepEqual(reasons, [0]);
  });

  it('socks5FrontClose inside onConn, with other connections in their handshake', async () => {
    const before = fds();
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    let calls = 0;
    const front: object = fns!.socks5Front(fdOf(srv), 50, 10_000, (fd) => {
      calls++;
      fns!.fdClose(fd);
      fns!.socks5FrontClose(front);
      fns!.socks5FrontClose(front); // twice: nothing
    });
    srv.close();
    const clients: net.Socket[] = [];
    const closed: Promise<unknown>[] = [];
    // Four wait after the greeting (in the front's handshake), then one completes a CONNECT.
    for (let i = 0; i < 5; i++) {
      const c = net.connect({ port, host: '127.0.0.1' });
      c.on('error', () => {});
      c.resume();
      closed.push(closedOf(c));
      clients.push(c);
      c.write(Buffer.from([5, 1, 0]));
    }
    await waitFor(() => fns!.socks5FrontLive(front) === 5, { timeoutMs: 5000 });
    clients[0]!.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 80, 0x41]));
    await Promise.all(closed);
    assert.equal(calls, 1);
    assert.equal(fns!.socks5FrontLive(front), 0);
    const refused = await new Promise<string>((r) => {
      const t = net.connect({ port, host: '127.0.0.1' });
      t.once('connect', () => (t.destroy(), r('connected')));
      t.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
    });
    assert.equal(refused, 'ECONNREFUSED', 'the listening socket is closed');
    await waitFor(() => fds() <= before, { timeoutMs: 5000 });
  });

  it('a handshake that never completes is closed at handshakeMs; a silent CONNECT is handed over after the wait', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const got: Array<{ kind: number; data: Buffer | undefined; ended: boolean; at: number }> = [];
    const t0 = Date.now();
    const front: object = fns!.socks5Front(fdOf(srv), 200, 300, (fd, kind, _addr, data, ended) => {
      got.push({ kind, data, ended, at: Date.now() - t0 });
      fns!.fdClose(fd);
    });
    srv.close();
    try {
      const slow = net.connect({ port, host: '127.0.0.1' });
      slow.on('error', () => {});
      slow.resume();
      slow.write(Buffer.from([5, 1])); // half a greeting, then nothing
      const silent = net.connect({ port, host: '127.0.0.1' });
      silent.on('error', () => {});
      silent.resume();
      silent.write(Buffer.from([5, 1, 0]));
      await sleep(20);
      silent.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
      await closedOf(slow);
      await waitFor(() => got.length === 1, { timeoutMs: 5000 });
      assert.equal(got[0]!.kind, 2);
      assert.equal(got[0]!.data, undefined, 'no first data: the destination speaks first');
      assert.equal(got[0]!.ended, false);
      assert.ok(got[0]!.at >= 200, `handed over after the 200 ms wait, not at ${got[0]!.at} ms`);
      silent.destroy();
      assert.equal(fns!.socks5FrontLive(front), 0);
    } finally {
      fns!.socks5FrontClose(front);
    }
  });
});
