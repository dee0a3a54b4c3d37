/**
 * The native accept's close after a failed dial (review of native/tcp_accept.cc and
 * src/transport/native-stream.ts): an authenticated client whose destination cannot be reached
 * gets a FIN, and what it sent while the server was dialling is read (and counted) first, so the
 * close is not an RST. The JS listener is the control: both paths must behave the same.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Lookup } from '../../src/server/destination.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { nativeAccept, nativeAcceptLive } from '../../src/transport/native-stream.js';
import { skipUnless } from '../helpers/prereq.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { sleep, waitFor } from '../helpers/wait.js';

const NEED = 'the native addon with acceptListen and relayPair (Linux; npm run build:native)';
const available = nativeAccept() !== undefined && nativeRelay() !== undefined;
const KEY = { id: 'k1', method: 'aes-256-gcm', secret: 'native-accept-close-pw' };

/**
 * The kernel's TCP state ('08' CLOSE_WAIT) of the IPv4 connection from `localPort` to
 * `remotePort`, or 'gone'. Both ports: a connection another test left in TIME_WAIT may hold the
 * same local port towards another peer.
 */
function tcpState(localPort: number, remotePort: number): string {
  const hex = (p: number): string => `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(hex(localPort)) && f[2]?.endsWith(hex(remotePort))) return f[3]!;
  }
  return 'gone';
}

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

describe('native accept: close after a failed dial', { skip: skipUnless(available, NEED) }, () => {
  for (const native of [true, false]) {
    const which = native ? 'native accept' : 'JS listener';
    it(`${which}: bytes sent while dialling are read and counted, then FIN without RST`, async () => {
      let release: (() => void) | undefined;
      const lookup: Lookup = async () => {
        await new Promise<void>((r) => (release = r));
        return [{ address: '127.0.0.1', family: 4 }];
      };
      const closed: ConnectionClosedEvent[] = [];
      const server = new ShadowsocksServer({
        keys: [KEY],
        allowPrivateDestinations: true,
        nativeRelay: true,
        nativeAccept: native,
        lookup,
        timeouts: { idleMs: 5000 },
        hooks: { onConnectionClosed: (e) => closed.push(e) },
      });
      const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
      try {
        const t = await openTestTunnel({
          port,
          method: KEY.method,
          password: KEY.secret,
          target: { host: 'refused.example', port: await closedPort() },
          initial: Buffer.from('x'),
        });
        t.socket.removeAllListeners('end'); // stay in CLOSE_WAIT: the test client would answer the FIN
        const fin = new Promise((r) => t.socket.once('end', r));
        await waitFor(() => release !== undefined, { timeoutMs: 2000 });
        assert.equal(nativeAcceptLive(), native ? 1 : 0, 'paused while dialling, held natively');
        t.send(Buffer.from('sent while the server dials'));
        await sleep(50); // in the server's receive buffer, unread (paused)
        release!();
        await fin;
        await sleep(100); // an RST after the FIN would have come by now
        assert.equal(
          tcpState(t.socket.localPort!, port),
          '08',
          'CLOSE_WAIT: the server closed with a FIN, no RST',
        );
        await waitFor(() => closed.length === 1, { timeoutMs: 2000 });
        const sent = t.sentWire.reduce((n, b) => n + b.length, 0);
        assert.equal(closed[0]!.status, 'ERR_CONNECT');
        assert.equal(closed[0]!.bytesUp, sent, 'every byte the client sent was read');
        t.destroy();
        assert.equal(nativeAcceptLive(), 0);
      } finally {
        await server.close();
      }
    });
  }
});
