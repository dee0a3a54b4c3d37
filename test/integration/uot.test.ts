/**
 * sing's UDP-over-TCP (mihomo's and sing-box's `udp-over-tcp`) on the server, end to end: a small
 * client in this file speaks UoT v2 (connect and non-connect) and v1 inside a real Shadowsocks
 * stream (SIP004 and 2022) to a Ladder data plane over raw TCP, over WebSocket and over a
 * Mux.Cool session on a WebSocket, to a real UDP echo on loopback. Also: the destination policy
 * (connect mode refused with a FIN, a datagram to a private address dropped), where replies may
 * come from (connect mode: the destination only; negative control: any host without it), usage
 * counted to the key, garbage framing refused, the idle timeout, and the negative control (the same stream on a
 * server with UoT off does not reach the echo).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import type { SocksAddress } from '../../src/protocol/socks5/address.js';
import {
  encodeUotDatagram,
  encodeUotRequest,
  UOT_MAGIC_V1,
  UOT_MAGIC_V2,
  UotReader,
  type UotVersion,
} from '../../src/protocol/uot.js';
import type { Lookup } from '../../src/server/destination.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { startDataPlane, type DataPlane } from '../../src/server/index.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import type { Dialer, NextHop } from '../../src/transport/dialer.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { Shadowsocks2022Dialer } from '../../src/transport/shadowsocks2022-dialer.js';
import { webSocketNextHop } from '../../src/transport/ws-dialer.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const SIP004: RuntimeKey = {
  id: 'k',
  method: 'aes-256-gcm',
  secret: `uot-${randomBytes(6).toString('hex')}`,
};
const KEY2022: RuntimeKey = {
  id: 'n',
  method: '2022-blake3-aes-256-gcm',
  secret: randomBytes(32).toString('base64'),
};
/** Names the data planes resolve: echo.test to loopback; nothing else (as .arpa names do not). */
const lookup: Lookup = (host) =>
  host === 'echo.test'
    ? Promise.resolve([{ address: '127.0.0.1', family: 4 }])
    : Promise.reject(new Error('NXDOMAIN'));

interface Echo {
  readonly port: number;
  /** Datagrams received so far. */
  readonly received: number;
  /** The port the last datagram came from (an association's UDP socket). */
  readonly lastFrom: number;
  close(): Promise<void>;
}

/** A UDP echo on 127.0.0.1 that counts what it receives. */
async function startCountingEcho(): Promise<Echo> {
  const s = dgram.createSocket('udp4');
  let received = 0;
  let lastFrom = 0;
  s.on('message', (msg, r) => {
    received++;
    lastFrom = r.port;
    s.send(msg, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return {
    port: s.address().port,
    get received() {
      return received;
    },
    get lastFrom() {
      return lastFrom;
    },
    close: () => new Promise((r) => s.close(() => r())),
  };
}

interface UotClient {
  send(bytes: Buffer): void;
  /** Plaintext the server sent so far. */
  received(): Buffer;
  /** Resolves when the server ended or closed the stream. */
  readonly ended: Promise<'fin' | 'close'>;
  destroy(): void;
}

/** A Shadowsocks stream to the UoT magic name of `version`; dialled with the first send. */
function openUot(dialer: Dialer, version: UotVersion): UotClient {
  const dest: SocksAddress = { type: 'domain', host: version === 2 ? UOT_MAGIC_V2 : UOT_MAGIC_V1, port: 0 };
  const s = new DialerStream(dialer, dest);
  const got: Buffer[] = [];
  s.on('data', (b: Buffer) => got.push(b));
  s.on('error', () => undefined);
  const ended = new Promise<'fin' | 'close'>((resolve) => {
    s.once('end', () => resolve('fin'));
    s.once('close', () => resolve('close'));
  });
  return {
    send: (b) => s.write(b),
    received: () => Buffer.concat(got),
    ended,
    destroy: () => s.destroy(),
  };
}

/** Bare (connect-mode) reply frames, parsed by hand: u16 length | payload. */
function bareFrames(buf: Buffer): string[] {
  const out: string[] = [];
  for (let off = 0; off + 2 <= buf.length;) {
    const n = buf.readUInt16BE(off);
    if (off + 2 + n > buf.length) break;
    out.push(buf.toString('utf8', off + 2, off + 2 + n));
    off += 2 + n;
  }
  return out;
}

/** Addressed reply frames (non-connect and v1): "host:port payload". */
function addressedFrames(buf: Buffer): string[] {
  return new UotReader(1)
    .push(buf)
    .map((d) => `${d.address!.host}:${d.address!.port} ${d.payload.toString()}`);
}

const loop = (port: number): SocksAddress => ({ type: 'ipv4', host: '127.0.0.1', port });

/** A v2 connect-mode request to `destination` with its first (bare) datagram. */
const connectFirst = (destination: SocksAddress, payload: Buffer): Buffer =>
  Buffer.concat([encodeUotRequest({ connect: true, destination }), encodeUotDatagram(undefined, payload)]);

let srv: WsTestServer;
let echo: Echo;
const closed: ConnectionClosedEvent[] = [];
const usage = new Map<string, { up: number; down: number }>();

before(async () => {
  echo = await startCountingEcho();
  srv = await startWsTestServer({
    keys: [SIP004, KEY2022],
    lookup,
    usageFlushMs: 50,
    usage: {
      addBytes: (id, up, down) => {
        const u = usage.get(id) ?? { up: 0, down: 0 };
        usage.set(id, { up: u.up + up, down: u.down + down });
      },
    },
    hooks: { onConnectionClosed: (e) => closed.push(e) },
  });
});
after(async () => {
  await srv.close();
  await echo.close();
});

const sip004 = (nextHop?: NextHop): Dialer =>
  new ShadowsocksDialer({
    host: '127.0.0.1',
    port: nextHop ? srv.webPort : srv.plane.address.port,
    method: SIP004.method,
    password: SIP004.secret,
    ...(nextHop ? { nextHop } : {}),
  });

const hops: { name: string; hop: () => NextHop | undefined }[] = [
  { name: 'raw TCP', hop: () => undefined },
  {
    name: 'WebSocket',
    hop: () => webSocketNextHop({ url: `ws://127.0.0.1:${srv.webPort}${srv.secretPath}/tcp` }),
  },
  {
    name: 'WebSocket + Mux.Cool',
    hop: () => webSocketNextHop({ url: `ws://127.0.0.1:${srv.webPort}${srv.secretPath}/tcp`, mux: true }),
  },
];

describe('UoT v2 connect mode', () => {
  for (const { name, hop } of hops) {
    it(`echoes bare datagrams over ${name}`, async () => {
      const h = hop();
      const c = openUot(sip004(h), 2);
      c.send(connectFirst(loop(echo.port), Buffer.from('one')));
      c.send(
        Buffer.concat([
          encodeUotDatagram(undefined, Buffer.from('two')),
          encodeUotDatagram(undefined, Buffer.alloc(0)),
        ]),
      );
      await waitFor(() => bareFrames(c.received()).length === 3, {
        message: () => `${bareFrames(c.received())}`,
      });
      assert.deepEqual(bareFrames(c.received()).sort(), ['', 'one', 'two']);
      c.destroy();
      (h as { close?: () => void } | undefined)?.close?.();
    });
  }

  it('a 2022 key works the same (the response header rides on the first reply)', async () => {
    const c = openUot(
      new Shadowsocks2022Dialer({
        host: '127.0.0.1',
        port: srv.plane.address.port,
        method: KEY2022.method,
        password: KEY2022.secret,
      }),
      2,
    );
    c.send(
      Buffer.concat([
        encodeUotRequest({
          connect: true,
          destination: { type: 'domain', host: 'echo.test', port: echo.port },
        }),
        encodeUotDatagram(undefined, Buffer.from('2022')),
      ]),
    );
    await waitFor(() => bareFrames(c.received()).length === 1);
    assert.deepEqual(bareFrames(c.received()), ['2022']);
    c.destroy();
  });
});

/** Send `text` to 127.0.0.1:`port` from a fresh UDP socket; resolves with that socket's port. */
async function inject(port: number, text: string): Promise<number> {
  const s = dgram.createSocket('udp4');
  try {
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    await new Promise<void>((r, j) => s.send(Buffer.from(text), port, '127.0.0.1', (e) => (e ? j(e) : r())));
    return s.address().port;
  } finally {
    s.close();
  }
}

describe('where replies may come from', () => {
  it("connect mode: a datagram from another host to the association's port is not relayed", async () => {
    const c = openUot(sip004(), 2);
    c.send(connectFirst(loop(echo.port), Buffer.from('one')));
    await waitFor(() => bareFrames(c.received()).length === 1);
    await inject(echo.lastFrom, 'injected');
    await sleep(100);
    // A later genuine reply arrives; the injected datagram (sent before it) never does.
    c.send(encodeUotDatagram(undefined, Buffer.from('two')));
    await waitFor(() => bareFrames(c.received()).length >= 2);
    await sleep(100);
    assert.deepEqual(bareFrames(c.received()), ['one', 'two']);
    c.destroy();
  });

  it('negative control: without connect mode a datagram from any host is relayed, with its address', async () => {
    const c = openUot(sip004(), 2);
    c.send(
      Buffer.concat([
        encodeUotRequest({ connect: false, destination: loop(echo.port) }),
        encodeUotDatagram(loop(echo.port), Buffer.from('one')),
      ]),
    );
    await waitFor(() => addressedFrames(c.received()).length === 1);
    const from = await inject(echo.lastFrom, 'other');
    await waitFor(() => addressedFrames(c.received()).length === 2);
    assert.deepEqual(addressedFrames(c.received()), [
      `127.0.0.1:${echo.port} one`,
      `127.0.0.1:${from} other`,
    ]);
    c.destroy();
  });

  it('connect mode to port 0 is refused with a FIN (ERR_CONNECT), as a failed dial', async () => {
    const before = closed.filter((e) => e.status === 'ERR_CONNECT').length;
    const c = openUot(sip004(), 2);
    c.send(connectFirst(loop(0), Buffer.from('no')));
    // Before the fix the association stayed open (every datagram silently dropped) until idle.
    assert.equal(await Promise.race([c.ended, sleep(3000).then(() => 'open' as const)]), 'fin');
    assert.equal(c.received().length, 0);
    await waitFor(() => closed.filter((e) => e.status === 'ERR_CONNECT').length === before + 1);
  });
});

describe('UoT with an address in every datagram', () => {
  for (const { name, hop } of hops) {
    for (const version of [2, 1] as const) {
      it(`v${version} over ${name}: each datagram to its address, replies from theirs`, async () => {
        const h = hop();
        const c = openUot(sip004(h), version);
        const head =
          version === 2
            ? encodeUotRequest({ connect: false, destination: loop(echo.port) })
            : Buffer.alloc(0);
        c.send(Buffer.concat([head, encodeUotDatagram(loop(echo.port), Buffer.from('by ip'))]));
        c.send(
          encodeUotDatagram({ type: 'domain', host: 'echo.test', port: echo.port }, Buffer.from('by name')),
        );
        await waitFor(() => addressedFrames(c.received()).length === 2);
        assert.deepEqual(addressedFrames(c.received()).sort(), [
          `127.0.0.1:${echo.port} by ip`,
          `127.0.0.1:${echo.port} by name`,
        ]);
        c.destroy();
        (h as { close?: () => void } | undefined)?.close?.();
      });
    }
  }
});

it('usage is counted to the key, both ways', async () => {
  srv.plane.server.flushUsage();
  const before = usage.get('k') ?? { up: 0, down: 0 };
  const c = openUot(sip004(), 2);
  c.send(connectFirst(loop(echo.port), Buffer.alloc(3000, 1)));
  await waitFor(() => c.received().length >= 3002);
  c.destroy();
  await waitFor(() => {
    srv.plane.server.flushUsage();
    const u = usage.get('k') ?? { up: 0, down: 0 };
    return u.up - before.up > 3000 && u.down - before.down > 3000;
  });
});

it('garbage framing ends the stream (FIN) with ERR_ADDRESS; no datagram leaves', async () => {
  const sent = echo.received;
  const c = openUot(sip004(), 1);
  c.send(Buffer.concat([Buffer.from('07', 'hex'), encodeUotDatagram(loop(echo.port), Buffer.from('x'))]));
  assert.equal(await c.ended, 'fin');
  await waitFor(() => closed.some((e) => e.keyId === 'k' && e.status === 'ERR_ADDRESS'));
  assert.equal(c.received().length, 0);
  assert.equal(echo.received, sent);
});

describe('destination policy (private destinations not allowed)', () => {
  let strict: DataPlane;
  const strictClosed: ConnectionClosedEvent[] = [];
  before(async () => {
    strict = await startDataPlane({
      keys: [SIP004],
      port: 0,
      host: '127.0.0.1',
      lookup,
      udpOverTcp: true,
      hooks: { onConnectionClosed: (e) => strictClosed.push(e) },
    });
  });
  after(() => strict.close());
  const dialer = (): Dialer =>
    new ShadowsocksDialer({
      host: '127.0.0.1',
      port: strict.address.port,
      method: SIP004.method,
      password: SIP004.secret,
    });

  it('connect mode to loopback is refused with a FIN (ERR_FORBIDDEN), a name to loopback too', async () => {
    const sent = echo.received;
    for (const destination of [
      loop(echo.port),
      { type: 'domain', host: 'echo.test', port: echo.port } as const,
    ]) {
      const c = openUot(dialer(), 2);
      c.send(connectFirst(destination, Buffer.from('no')));
      assert.equal(await c.ended, 'fin');
      assert.equal(c.received().length, 0);
    }
    await waitFor(() => strictClosed.filter((e) => e.status === 'ERR_FORBIDDEN').length === 2);
    assert.equal(echo.received, sent);
  });

  it('a datagram to loopback is dropped; the association stays open', async () => {
    const sent = echo.received;
    const c = openUot(dialer(), 1);
    c.send(encodeUotDatagram(loop(echo.port), Buffer.from('no')));
    c.send(encodeUotDatagram({ type: 'domain', host: 'echo.test', port: echo.port }, Buffer.from('no')));
    const ended = await Promise.race([c.ended, sleep(400).then(() => 'open' as const)]);
    assert.equal(ended, 'open');
    assert.equal(echo.received, sent);
    assert.equal(c.received().length, 0);
    c.destroy();
  });
});

it('negative control: with UoT off (the default without UDP) the magic name is an ordinary (unresolvable) target', async () => {
  const offClosed: ConnectionClosedEvent[] = [];
  const off = await startDataPlane({
    keys: [SIP004],
    port: 0,
    host: '127.0.0.1',
    lookup,
    allowPrivateDestinations: true,
    // No `udp`, so UoT is off by default (it relays UDP, and the operator turned UDP off).
    hooks: { onConnectionClosed: (e) => offClosed.push(e) },
  });
  try {
    const sent = echo.received;
    const c = openUot(
      new ShadowsocksDialer({
        host: '127.0.0.1',
        port: off.address.port,
        method: SIP004.method,
        password: SIP004.secret,
      }),
      2,
    );
    c.send(connectFirst(loop(echo.port), Buffer.from('x')));
    assert.equal(await c.ended, 'fin');
    await waitFor(() => offClosed.length === 1);
    assert.equal(offClosed[0]!.status, 'ERR_RESOLVE');
    assert.equal(c.received().length, 0);
    assert.equal(echo.received, sent);
  } finally {
    await off.close();
  }
});

it('an idle association ends with a FIN; the key being removed ends one at once', async () => {
  const short = await startDataPlane({
    keys: [SIP004, KEY2022],
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    timeouts: { idleMs: 600 },
    udp: true, // UoT's default follows the UDP relay: on here
  });
  try {
    const dial = (): Dialer =>
      new ShadowsocksDialer({
        host: '127.0.0.1',
        port: short.address.port,
        method: SIP004.method,
        password: SIP004.secret,
      });
    const c = openUot(dial(), 2);
    c.send(connectFirst(loop(echo.port), Buffer.from('hi')));
    await waitFor(() => bareFrames(c.received()).length === 1);
    const t0 = Date.now();
    assert.equal(await c.ended, 'fin');
    assert.ok(Date.now() - t0 >= 300, 'ended by the idle timeout, not at once');

    const d = openUot(dial(), 2);
    d.send(connectFirst(loop(echo.port), Buffer.from('hi')));
    await waitFor(() => bareFrames(d.received()).length === 1);
    short.server.setKeys([KEY2022]);
    // The operator's close destroys the stream (the kernel sends FIN); it does not wait for idle.
    assert.notEqual(await Promise.race([d.ended, sleep(300).then(() => 'open' as const)]), 'open');
  } finally {
    await short.close();
  }
});

it('datagrams waiting on a slow lookup are bounded (64 kept, the rest dropped, none held forever)', async () => {
  // A name whose lookup we hold open: before the bound every datagram to it queued behind the
  // lookup without limit (the stream is not paused for them). Negative control: before the fix
  // all 150 reached the echo once the lookup answered.
  let answer: (() => void) | undefined;
  const gated = new Promise<void>((r) => (answer = r));
  let lookups = 0;
  const slowPlane = await startDataPlane({
    keys: [SIP004],
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    udpOverTcp: true,
    lookup: async (host) => {
      lookups++;
      await gated;
      return host === 'slow.test' ? [{ address: '127.0.0.1', family: 4 }] : [];
    },
  });
  try {
    const c = openUot(
      new ShadowsocksDialer({
        host: '127.0.0.1',
        port: slowPlane.address.port,
        method: SIP004.method,
        password: SIP004.secret,
      }),
      1,
    );
    const to: SocksAddress = { type: 'domain', host: 'slow.test', port: echo.port };
    const sent = echo.received;
    c.send(Buffer.concat(Array.from({ length: 150 }, (_, i) => encodeUotDatagram(to, Buffer.from(`d${i}`)))));
    await waitFor(() => lookups === 1);
    await sleep(300); // the server has read all 150 by now (one small write)
    answer!();
    await waitFor(() => echo.received - sent >= 1);
    await sleep(300);
    const got = echo.received - sent;
    assert.ok(got <= 64, `${got} datagrams waited on the lookup`);
    // The name is cached now: later datagrams go at once.
    c.send(encodeUotDatagram(to, Buffer.from('later')));
    await waitFor(() => echo.received - sent === got + 1);
    c.destroy();
  } finally {
    await slowPlane.close();
  }
});
