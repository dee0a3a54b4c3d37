/**
 * SIP004 UDP interop with shadowsocks-libev, both directions:
 *  - our client's SOCKS5 UDP ASSOCIATE -> ss-server -u -> UDP echo
 *  - ss-local -u (SOCKS5 UDP ASSOCIATE) -> our server's UDP relay -> UDP echo
 * DNS-sized (64 B) and 1,400-byte datagrams, many of each, every reply checked byte for byte.
 * Skips loudly without the binaries; fails under CI=true.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startClient } from '../../src/client/index.js';
import { createUdpAssociate } from '../../src/client/udp-associate.js';
import { startDataPlane } from '../../src/server/index.js';
import type { Dialer } from '../../src/transport/dialer.js';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';
import { METHODS, peerSkip, startSsLocal, startSsServer } from '../helpers/peers.js';

const COUNT = 1000;
const SIZES = [64, 1400] as const;
const noDial: Dialer = { dial: () => Promise.reject(new Error('no TCP in this test')) };

let echo: Awaited<ReturnType<typeof startUdpEcho>>;
before(async () => {
  echo = await startUdpEcho();
});
after(async () => {
  await echo?.close();
});
const target = (): { type: 'ipv4'; host: string; port: number } => ({
  type: 'ipv4',
  host: '127.0.0.1',
  port: echo.port,
});

async function exchange(socksPort: number, label: string): Promise<void> {
  const assoc = await socks5UdpAssociate(socksPort);
  try {
    for (const size of SIZES) {
      const r = await udpEchoRun(assoc, target(), COUNT, size);
      console.log(
        `# ${label} ${size} B: sent ${r.sent}, received ${r.received}, corrupted ${r.corrupted}, ${r.elapsedMs} ms`,
      );
      assert.equal(r.corrupted, 0, `${label} ${size} B: corrupted replies`);
      assert.ok(r.received >= COUNT * 0.99, `${label} ${size} B: ${r.received}/${COUNT} delivered`);
    }
  } finally {
    assoc.close();
  }
}

describe('Ladder client UDP ASSOCIATE -> ss-server -u', { skip: peerSkip('ss-server') }, () => {
  for (const method of METHODS) {
    it(`${method}: ${COUNT} x 64 B and ${COUNT} x 1,400 B echoed, none corrupted`, async () => {
      const password = `udp-interop-${method}`;
      const ss = await startSsServer({ method, password, extraArgs: ['-u'] });
      const udpAssociate = createUdpAssociate({
        server: { host: '127.0.0.1', port: ss.port, method, password },
      });
      const client = await startClient({ dialer: noDial, socks: '127.0.0.1:0', udpAssociate });
      try {
        await exchange(client.socksAddress!.port, `ladder->ss-server ${method}`);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- ss-server output ---\n${ss.output()}`, {
          cause: err,
        });
      } finally {
        udpAssociate.closeAll();
        await client.close();
        await ss.stop();
      }
    });
  }
});

describe(
  'negative control: a wrong password gets nothing through ss-server -u',
  { skip: peerSkip('ss-server') },
  () => {
    it('aes-256-gcm with the wrong password: no datagram comes back', async () => {
      const ss = await startSsServer({ method: 'aes-256-gcm', password: 'right', extraArgs: ['-u'] });
      const udpAssociate = createUdpAssociate({
        server: { host: '127.0.0.1', port: ss.port, method: 'aes-256-gcm', password: 'wrong' },
      });
      const client = await startClient({ dialer: noDial, socks: '127.0.0.1:0', udpAssociate });
      const assoc = await socks5UdpAssociate(client.socksAddress!.port);
      try {
        const r = await udpEchoRun(assoc, target(), 20, 64, { lossTimeoutMs: 300, deadlineMs: 3_000 });
        assert.equal(r.received, 0);
      } finally {
        assoc.close();
        udpAssociate.closeAll();
        await client.close();
        await ss.stop();
      }
    });
  },
);

describe('ss-local -u -> Ladder server UDP relay', { skip: peerSkip('ss-local') }, () => {
  for (const method of METHODS) {
    it(`${method}: ${COUNT} x 64 B and ${COUNT} x 1,400 B echoed, none corrupted`, async () => {
      const password = `udp-interop-${method}`;
      const plane = await startDataPlane({
        keys: [{ id: 'k', method, secret: password }],
        port: 0,
        host: '127.0.0.1',
        allowPrivateDestinations: true,
        udp: true,
      });
      const local = await startSsLocal({
        method,
        password,
        serverPort: plane.address.port,
        extraArgs: ['-u'],
      });
      try {
        await exchange(local.socksPort, `ss-local->ladder ${method}`);
        assert.ok(plane.server.udp!.sessionCount >= 1);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- ss-local output ---\n${local.output()}`, {
          cause: err,
        });
      } finally {
        await local.stop();
        await plane.close();
      }
    });
  }
});
