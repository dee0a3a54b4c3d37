/**
 * UDP relay, both editions, our server and our client: SOCKS5 UDP ASSOCIATE through the
 * client's udp-associate handler, the server's NAT table (idle expiry, bounded size), and the
 * silent drop of garbage, replayed SIP022 packets and stale timestamps.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { createUdpAssociate } from '../../src/client/udp-associate.js';
import { Udp2022ClientSession } from '../../src/protocol/shadowsocks/udp2022.js';
import { getAead2022Method } from '../../src/protocol/shadowsocks/methods2022.js';
import { startDataPlane, type DataPlane } from '../../src/server/index.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';
import { UdpTunnel } from '../../src/transport/udp-tunnel.js';
import { BatchUdpSocket } from '../../src/transport/batch-udp.js';
import { nativeLoadError, setNativeEnabled } from '../../src/protocol/shadowsocks/native.js';
import type { Dialer } from '../../src/transport/dialer.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { startTestServer, type TestDataPlane } from '../helpers/data-plane.js';
import { waitFor } from '../helpers/wait.js';

const b64 = (b: Buffer): string => b.toString('base64');
const ipsk = randomBytes(32);
const KEYS: Array<RuntimeKey & { label: string }> = [
  { label: 'SIP004 aes-256-gcm', id: 'old', method: 'aes-256-gcm', secret: 'udp password' },
  { label: 'SIP004 chacha20', id: 'old-cc', method: 'chacha20-ietf-poly1305', secret: 'udp password 2' },
  { label: '2022 aes-128', id: 'n128', method: '2022-blake3-aes-128-gcm', secret: b64(randomBytes(16)) },
  {
    label: '2022 aes-256 with identity',
    id: 'user',
    method: '2022-blake3-aes-256-gcm',
    secret: `${b64(ipsk)}:${b64(randomBytes(32))}`,
  },
  {
    label: '2022 chacha20',
    id: 'ncc',
    method: '2022-blake3-chacha20-poly1305',
    secret: b64(randomBytes(32)),
  },
];

const noDial: Dialer = {
  dial: () => Promise.reject(new Error('no TCP in this test')),
};

async function withClient<T>(
  plane: DataPlane,
  k: RuntimeKey,
  fn: (socksPort: number) => Promise<T>,
): Promise<T> {
  const udpAssociate = createUdpAssociate({
    server: { host: '127.0.0.1', port: plane.address.port, method: k.method, password: k.secret },
  });
  const client: LocalClient = await startClient({ dialer: noDial, socks: '127.0.0.1:0', udpAssociate });
  try {
    return await fn(client.socksAddress!.port);
  } finally {
    udpAssociate.closeAll();
    await client.close();
  }
}

// Both socket paths of the relay: the addon's batched sockets (recvmmsg) where they exist, and
// node:dgram (what runs without the addon, forced here by turning the addon off).
for (const path of ['batched', 'dgram'] as const)
  describe(`UDP relay through SOCKS5 UDP ASSOCIATE, every edition on one port (${path} sockets)`, () => {
    let server: TestDataPlane;
    let echo: TestDataPlane['echo'];
    let plane: DataPlane;
    before(async () => {
      if (path === 'dgram') setNativeEnabled(false);
      server = await startTestServer({ keys: KEYS, udp: true });
      ({ echo, plane } = server);
      assert.deepEqual(plane.server.rejectedKeys, []);
    });
    after(async () => {
      await server.close();
      setNativeEnabled(true);
    });

    it(`the relay runs on ${path} sockets`, (t) => {
      const what = `batched UDP sockets unavailable (${nativeLoadError() ?? 'addon not built, or not Linux'})`;
      if (path === 'batched' && !requireOrSkip(t, BatchUdpSocket.available(), what)) return;
      assert.equal(plane.server.udp!.batched, path === 'batched');
    });

    for (const k of KEYS) {
      it(`${k.label}: 300 DNS-sized and 300 1,400-byte datagrams echoed, none corrupted`, async () => {
        await withClient(plane, k, async (socksPort) => {
          const assoc = await socks5UdpAssociate(socksPort);
          try {
            const target = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };
            for (const size of [64, 1400]) {
              const r = await udpEchoRun(assoc, target, 300, size);
              assert.equal(r.corrupted, 0, `${size}: corrupted`);
              assert.ok(r.received >= 297, `${size}: ${r.received}/300 delivered`);
            }
          } finally {
            assoc.close();
          }
        });
      });
    }

    it('a domain destination is resolved at the server', async () => {
      const k = KEYS[2]!;
      const t = await UdpTunnel.open({
        host: '127.0.0.1',
        port: plane.address.port,
        method: k.method,
        password: k.secret,
      });
      try {
        const got = new Promise<Buffer>((resolve) => (t.onMessage = (_f, p) => resolve(p)));
        t.send({ type: 'domain', host: 'localhost', port: echo.port }, Buffer.from('by name'));
        assert.equal((await got).toString(), 'by name');
      } finally {
        t.close();
      }
    });
  });

describe('UDP relay refusals are silent drops', () => {
  let echo: Awaited<ReturnType<typeof startUdpEcho>>;
  let plane: DataPlane;
  let probe: dgram.Socket;
  let replies: Buffer[];
  const method = getAead2022Method('2022-blake3-aes-128-gcm');
  const key = randomBytes(16);
  before(async () => {
    echo = await startUdpEcho();
    plane = await startDataPlane({
      keys: [
        { id: 'k', method: method.name, secret: b64(key) },
        { id: 'old', method: 'aes-128-gcm', secret: 'pw' },
      ],
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
      udp: { idleMs: 400, maxSessions: 3 },
    });
    probe = dgram.createSocket('udp4');
    replies = [];
    probe.on('message', (m) => replies.push(m));
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', () => resolve()));
  });
  after(async () => {
    probe.close();
    await plane.close();
    await echo.close();
  });

  const send = (b: Buffer): void => probe.send(b, plane.address.port, '127.0.0.1');
  const settle = (ms = 300): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const target = (): { type: 'ipv4'; host: string; port: number } => ({
    type: 'ipv4',
    host: '127.0.0.1',
    port: echo.port,
  });

  it('garbage of many lengths: no reply at all', async () => {
    const before = plane.server.udp!.dropped;
    for (const n of [0, 1, 16, 31, 32, 43, 100, 1400]) send(randomBytes(n));
    await settle();
    assert.equal(replies.length, 0);
    assert.ok(plane.server.udp!.dropped >= before + 7);
  });

  it('a replayed 2022 packet is dropped (one reply for two identical datagrams), a new packet ID passes', async () => {
    replies.length = 0;
    const s = new Udp2022ClientSession(method, key);
    const p0 = s.seal(target(), Buffer.from('once'), Date.now());
    send(p0);
    await settle();
    send(p0);
    await settle();
    assert.equal(replies.length, 1);
    assert.equal(s.open(replies[0]!, Date.now()).payload.toString(), 'once');
    send(s.seal(target(), Buffer.from('twice'), Date.now()));
    await settle();
    assert.equal(replies.length, 2);
  });

  it('a 2022 packet with a timestamp 31 s off is dropped', async () => {
    replies.length = 0;
    // Whole seconds on the wire: start early in a second so "31 s" cannot round to 30.
    await waitFor(() => Date.now() % 1000 <= 300, { timeoutMs: 2000, message: 'the start of a second' });
    const s = new Udp2022ClientSession(method, key);
    send(s.seal(target(), Buffer.from('late'), Date.now() - 31_000));
    send(s.seal(target(), Buffer.from('early'), Date.now() + 31_000));
    await settle();
    assert.deepEqual(
      replies.map((r) => s.open(r, Date.now()).payload.toString()),
      [],
    );
  });

  it('the NAT table is bounded and sessions expire when idle', async () => {
    const udp = plane.server.udp!;
    for (let i = 0; i < 6; i++) {
      const s = new Udp2022ClientSession(method, key);
      send(s.seal(target(), Buffer.from(`s${i}`), Date.now()));
    }
    await settle(150);
    assert.ok(udp.sessionCount <= 3, `sessions ${udp.sessionCount}`);
    assert.ok(udp.sessionCount >= 1);
    await waitFor(() => udp.sessionCount === 0, {
      timeoutMs: 5_000,
      intervalMs: 100,
      message: 'idle sessions expired',
    });
    assert.equal(udp.sessionCount, 0);
  });

  it('private destinations are dropped unless allowed', async () => {
    const strict = await startDataPlane({
      keys: [{ id: 'k', method: method.name, secret: b64(key) }],
      port: 0,
      host: '127.0.0.1',
      udp: true,
    });
    try {
      replies.length = 0;
      const s = new Udp2022ClientSession(method, key);
      probe.send(s.seal(target(), Buffer.from('x'), Date.now()), strict.address.port, '127.0.0.1');
      await settle();
      assert.equal(replies.length, 0);
      assert.equal(strict.server.udp!.dropped, 1);
    } finally {
      await strict.close();
    }
  });
});
