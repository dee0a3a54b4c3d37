/**
 * UDP over WebSocket, our client and our server: SOCKS5 UDP ASSOCIATE in the client carried to
 * the web front's packet endpoint (`/SECRET/udp`) for both editions (SIP004, 2022, SIP023
 * multi-user), usage counted to the key byte for byte as the UDP relay counts it, an association
 * ended when its key is removed (another key's keeps working: the control), and replayed 2022
 * datagrams dropped on the same and on a new WebSocket (a fresh one answered: the control).
 */
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { createUdpAssociate } from '../../src/client/udp-associate.js';
import { toSocksAddress } from '../../src/protocol/socks5/address.js';
import type { RuntimeKey, UsageSink } from '../../src/shared/control.js';
import type { Dialer } from '../../src/transport/dialer.js';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';
import { UdpTunnelKey } from '../../src/transport/udp-tunnel.js';
import { packetUrlOf, WsUdpTunnel } from '../../src/transport/ws-udp-tunnel.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const b64 = (b: Buffer): string => b.toString('base64');
const ipsk = randomBytes(16);
const KEYS: Array<RuntimeKey & { label: string }> = [
  { label: 'SIP004 aes-256-gcm', id: 'old', method: 'aes-256-gcm', secret: 'ws udp password' },
  { label: '2022 aes-256', id: 'n256', method: '2022-blake3-aes-256-gcm', secret: b64(randomBytes(32)) },
  {
    label: '2022 aes-128, SIP023 multi-user',
    id: 'alice',
    method: '2022-blake3-aes-128-gcm',
    secret: `${b64(ipsk)}:${b64(randomBytes(16))}`,
  },
  {
    label: '2022 aes-128, SIP023 second user',
    id: 'bob',
    method: '2022-blake3-aes-128-gcm',
    secret: `${b64(ipsk)}:${b64(randomBytes(16))}`,
  },
];
const noDial: Dialer = { dial: () => Promise.reject(new Error('no TCP in this test')) };

describe('UDP over WebSocket: ladder client SOCKS5 UDP ASSOCIATE → the web front', () => {
  let srv: WsTestServer;
  let echo: Awaited<ReturnType<typeof startUdpEcho>>;
  const usage = new Map<string, { up: number; down: number }>();
  const sink: UsageSink = {
    addBytes(id, up, down) {
      const u = usage.get(id) ?? { up: 0, down: 0 };
      usage.set(id, { up: u.up + up, down: u.down + down });
    },
  };
  const wsUrl = (): string => `ws://127.0.0.1:${srv.webPort}${srv.secretPath}`;

  before(async () => {
    echo = await startUdpEcho();
    srv = await startWsTestServer({ keys: KEYS, usage: sink, usageFlushMs: 100, front: {} });
    assert.deepEqual(srv.plane.server.rejectedKeys, []);
  });
  after(async () => {
    await srv.close();
    await echo.close();
  });

  for (const k of KEYS.slice(0, 3)) {
    it(`${k.label}: 200 DNS-sized and 200 1,400-byte datagrams echoed through SOCKS5, none corrupted`, async () => {
      const udpAssociate = createUdpAssociate({
        server: {
          host: '127.0.0.1',
          port: srv.webPort,
          method: k.method,
          password: k.secret,
          websocket: { url: wsUrl(), host: 'cdn.example.com' },
        },
      });
      const client: LocalClient = await startClient({ dialer: noDial, socks: '127.0.0.1:0', udpAssociate });
      const before = srv.upgrades;
      try {
        const assoc = await socks5UdpAssociate(client.socksAddress!.port);
        try {
          const target = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };
          for (const size of [64, 1400]) {
            const r = await udpEchoRun(assoc, target, 200, size);
            assert.equal(r.corrupted, 0, `${size}: corrupted`);
            assert.ok(r.received >= 197, `${size}: ${r.received}/200 delivered`);
          }
        } finally {
          assoc.close();
        }
        assert.equal(srv.upgrades - before, 1, 'one WebSocket for the association');
      } finally {
        udpAssociate.closeAll();
        await client.close();
      }
    });
  }

  it('usage is counted to the key: every sealed byte each way (SIP004: salt, address, payload, tag)', async () => {
    const k = KEYS[0]!;
    srv.plane.server.flushUsage();
    const start = { ...(usage.get(k.id) ?? { up: 0, down: 0 }) };
    const t = await WsUdpTunnel.open({ url: wsUrl() }, new UdpTunnelKey(k.method, k.secret));
    const n = 20;
    const size = 100;
    try {
      for (let i = 0; i < n; i++) {
        const got = new Promise<Buffer>((resolve) => (t.onMessage = (_f, p) => resolve(p)));
        const body = randomBytes(size);
        t.send(toSocksAddress('127.0.0.1', echo.port), body);
        assert.ok((await got).equals(body));
      }
    } finally {
      t.close();
    }
    // aes-256-gcm: 32-byte salt, 7-byte IPv4 address, payload, 16-byte tag, each way.
    const sealed = 32 + 7 + size + 16;
    await waitFor(() => (usage.get(k.id)?.down ?? 0) - start.down >= n * sealed, { timeoutMs: 5000 });
    const end = usage.get(k.id)!;
    assert.equal(end.up - start.up, n * sealed, 'up');
    assert.equal(end.down - start.down, n * sealed, 'down');
  });

  it('an association ends when its key is removed; another key keeps working (the control)', async () => {
    const [alice, bob] = [KEYS[2]!, KEYS[3]!];
    const open = async (
      k: RuntimeKey,
    ): Promise<{ t: WsUdpTunnel; closed: Promise<void>; ping(): Promise<boolean> }> => {
      const t = await WsUdpTunnel.open({ url: wsUrl() }, new UdpTunnelKey(k.method, k.secret));
      const closed = new Promise<void>((resolve) => (t.onClose = resolve));
      const ping = async (): Promise<boolean> => {
        const got = new Promise<boolean>((resolve) => {
          t.onMessage = () => resolve(true);
          setTimeout(() => resolve(false), 1500).unref();
        });
        t.send(toSocksAddress('127.0.0.1', echo.port), Buffer.from('ping'));
        return got;
      };
      return { t, closed, ping };
    };
    const a = await open(alice);
    const b = await open(bob);
    try {
      assert.equal(await a.ping(), true, 'alice before');
      assert.equal(await b.ping(), true, 'bob before');
      srv.plane.server.setKeys(KEYS.filter((k) => k.id !== alice.id));
      const ended = await Promise.race([a.closed.then(() => true), sleep(5000).then(() => false)]);
      assert.equal(ended, true, "the server ends alice's WebSocket");
      assert.equal(await a.ping(), false, 'alice after removal');
      assert.equal(await b.ping(), true, 'bob after alice was removed');
    } finally {
      srv.plane.server.setKeys(KEYS);
      a.t.close();
      b.t.close();
    }
  });

  it('a replayed 2022 datagram gets nothing, on the same and on a new WebSocket; a fresh one is answered', async () => {
    const k = KEYS[1]!;
    const codec = new UdpTunnelKey(k.method, k.secret).codec();
    const dest = toSocksAddress('127.0.0.1', echo.port);
    const captured = codec.seal(dest, Buffer.from('once'), Date.now());
    const dial = async (): Promise<{ ws: WebSocket; replies: Buffer[] }> => {
      const ws = new WebSocket(packetUrlOf(wsUrl()), { perMessageDeflate: false });
      const replies: Buffer[] = [];
      ws.on('message', (d: Buffer) => replies.push(d));
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      return { ws, replies };
    };
    const one = await dial();
    const two = await dial();
    try {
      one.ws.send(captured);
      one.ws.send(captured);
      await waitFor(() => one.replies.length >= 1);
      two.ws.send(captured); // the capture on a new association
      two.ws.send(codec.seal(dest, Buffer.from('fresh'), Date.now())); // the control
      await waitFor(() => two.replies.length >= 1);
      await sleep(300);
      assert.equal(one.replies.length, 1, 'the first copy only');
      assert.deepEqual(
        two.replies.map((r) => codec.open(r, Date.now()).payload.toString()),
        ['fresh'],
      );
    } finally {
      one.ws.terminate();
      two.ws.terminate();
    }
  });
});
