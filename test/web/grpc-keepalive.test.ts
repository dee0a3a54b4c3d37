// gRPC keepalive (src/transport/grpc-dialer.ts, as grpc-go's client keepalive): the client PINGs
// a connection that carries calls every period, the web front answers and the idle tunnel on it
// goes on working; a connection whose PINGs go unanswered (a path that silently drops it) is
// destroyed and the next tunnel gets a new connection instead of waiting on the dead one; a
// connection without calls is closed, not pinged. Through a TCP forwarder that counts the HTTP/2
// PING frames each way and can black-hole the connections it carries. h2c, as nginx's grpc_pass.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { Duplex } from 'node:stream';
import { grpcServiceName } from '../../src/server/web/grpc.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { grpcNextHop } from '../../src/transport/grpc-dialer.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const KEY = { id: 'k', method: 'aes-128-gcm', secret: `ka-${randomBytes(6).toString('hex')}` };
const PERIOD_MS = 300;
const TIMEOUT_MS = 600;
let srv: WsTestServer;
let echo: TestServer;

/**
 * Counts PING frames (type 6) each way; `blackhole()` drops every byte of the open connections;
 * while `holdAcks` is set the server's PING ACKs are held back (the frames after them go on).
 */
interface Forwarder {
  port: number;
  pings: { sent: number; acked: number; delivered: number };
  connections: number;
  holdAcks: boolean;
  blackhole(): void;
  /** Delivers the PING ACKs held back. */
  releaseAcks(): void;
  close(): void;
}

/** Whole HTTP/2 frames out of a byte stream, after `skip` bytes (the client preface). */
function frames(skip: number, onFrame: (frame: Buffer) => void): (b: Buffer) => void {
  let buf = Buffer.alloc(0);
  let toSkip = skip;
  return (b) => {
    buf = Buffer.concat([buf, b]);
    if (toSkip > 0) {
      const n = Math.min(toSkip, buf.length);
      buf = buf.subarray(n);
      toSkip -= n;
    }
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      onFrame(buf.subarray(0, 9 + len));
      buf = buf.subarray(9 + len);
    }
  };
}

const isPing = (frame: Buffer): boolean => frame[3] === 6;
const isAck = (frame: Buffer): boolean => (frame[4]! & 1) === 1;

async function forwarder(to: number): Promise<Forwarder> {
  const live = new Set<{ dead: boolean }>();
  const held: (() => void)[] = [];
  const f: Forwarder = {
    port: 0,
    pings: { sent: 0, acked: 0, delivered: 0 },
    connections: 0,
    holdAcks: false,
    blackhole: () => {
      for (const c of live) c.dead = true;
    },
    releaseAcks: () => {
      f.holdAcks = false;
      for (const deliver of held.splice(0)) deliver();
    },
    close: () => server.close(),
  };
  const server = net.createServer((c) => {
    f.connections++;
    const state = { dead: false };
    live.add(state);
    const u = net.connect(to, '127.0.0.1');
    const up = frames(24, (frame) => isPing(frame) && !isAck(frame) && f.pings.sent++);
    const down = frames(0, (frame) => {
      if (!isPing(frame) || !isAck(frame)) return void c.write(frame);
      f.pings.acked++;
      const deliver = (): void => {
        f.pings.delivered++;
        if (!state.dead) c.write(frame);
      };
      if (f.holdAcks) held.push(deliver);
      else deliver();
    });
    c.on('data', (b: Buffer) => state.dead || (up(b), u.write(b)));
    u.on('data', (b: Buffer) => state.dead || down(Buffer.from(b)));
    for (const [a, b] of [
      [c, u],
      [u, c],
    ] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  f.port = (server.address() as AddressInfo).port;
  return f;
}

before(async () => {
  srv = await startWsTestServer({ keys: [KEY], front: { grpc: true } });
  echo = await startEcho();
});
after(async () => {
  await srv?.close();
  await echo?.close();
});

function hopVia(port: number, keepaliveMs: number): ReturnType<typeof grpcNextHop> {
  return grpcNextHop({
    address: '127.0.0.1',
    port,
    tls: false,
    serviceName: grpcServiceName(srv.secretPath),
    keepaliveMs,
    keepaliveTimeoutMs: TIMEOUT_MS,
  });
}

function tunnel(hop: ReturnType<typeof grpcNextHop>): Duplex {
  const dialer = new ShadowsocksDialer({
    host: '127.0.0.1',
    port: 1,
    method: KEY.method,
    password: KEY.secret,
    nextHop: hop,
  });
  const s = new DialerStream(dialer, { type: 'ipv4', host: '127.0.0.1', port: echo.port });
  s.on('error', () => {});
  return s;
}

async function echoed(s: Duplex, text: string, timeoutMs = 3000): Promise<void> {
  const got = new Promise<string>((resolve) => s.once('data', (b: Buffer) => resolve(b.toString())));
  s.write(text);
  const r = await Promise.race([got, sleep(timeoutMs).then(() => 'no answer')]);
  assert.equal(r, text);
}

test('an idle tunnel: PINGs every period, answered, and the tunnel still works; no PING once no call is open', async () => {
  const f = await forwarder(srv.webPort);
  const hop = hopVia(f.port, PERIOD_MS);
  try {
    const s = tunnel(hop);
    await echoed(s, 'first');
    await sleep(PERIOD_MS * 4 + 100);
    assert.ok(f.pings.sent >= 3, `PINGs sent: ${f.pings.sent}`);
    assert.ok(f.pings.acked >= f.pings.sent - 1, `PINGs answered: ${f.pings.acked} of ${f.pings.sent}`);
    await echoed(s, 'after idle');
    s.destroy();
    await waitFor(() => hop.pool.sessions === 0, { timeoutMs: PERIOD_MS * 6 });
    const sent = f.pings.sent;
    await sleep(PERIOD_MS * 2);
    assert.equal(f.pings.sent, sent, 'a connection without calls is closed, not pinged');
    assert.equal(f.connections, 1);
  } finally {
    hop.close();
    f.close();
  }
});

test('a black-holed connection is found dead by its PINGs and the next tunnel gets a new one', async () => {
  const f = await forwarder(srv.webPort);
  const hop = hopVia(f.port, PERIOD_MS);
  try {
    const s = tunnel(hop);
    await echoed(s, 'before');
    f.blackhole(); // the path drops everything, without a FIN or a reset
    const closed = new Promise((r) => s.once('close', r));
    await Promise.race([closed, sleep(PERIOD_MS + TIMEOUT_MS + 2000)]);
    assert.equal(s.destroyed, true, 'the tunnel on the dead connection ended');
    const t = tunnel(hop);
    await echoed(t, 'on a new connection');
    assert.equal(f.connections, 2);
    t.destroy();
  } finally {
    hop.close();
    f.close();
  }
});

test('a PING ACK held back past the timeout while DATA comes in: the connection lives, and no PING goes out while it reads', async () => {
  const f = await forwarder(srv.webPort);
  const hop = hopVia(f.port, PERIOD_MS);
  try {
    const s = tunnel(hop);
    await echoed(s, 'first');
    f.holdAcks = true; // as an ACK queued behind megabytes of DATA on a slow downlink
    await waitFor(() => f.pings.sent === 1, { timeoutMs: PERIOD_MS * 4 });
    const until = Date.now() + TIMEOUT_MS * 3;
    for (let i = 0; Date.now() < until; i++) {
      assert.equal(s.destroyed, false, `the tunnel ended ${i} answers after the PING`);
      await echoed(s, `during ${i}`, 1000);
      await sleep(40);
    }
    assert.equal(f.pings.acked, 1, 'the front answered the PING');
    assert.equal(f.pings.delivered, 0, 'its ACK was held back past the timeout');
    assert.equal(f.pings.sent, 1, 'no PING while the connection reads');
    f.releaseAcks();
    await echoed(s, 'after');
    assert.equal(f.connections, 1);
    s.destroy();
  } finally {
    hop.close();
    f.close();
  }
});

test('a connection whose PING ACK is held back and that reads nothing else is dead', async () => {
  const f = await forwarder(srv.webPort);
  const hop = hopVia(f.port, PERIOD_MS);
  try {
    const s = tunnel(hop);
    await echoed(s, 'before');
    f.holdAcks = true;
    const closed = new Promise((r) => s.once('close', r));
    await Promise.race([closed, sleep(PERIOD_MS * 2 + TIMEOUT_MS + 2000)]);
    assert.equal(s.destroyed, true, 'the tunnel on the silent connection ended');
    assert.equal(f.pings.delivered, 0);
  } finally {
    hop.close();
    f.close();
  }
});
