/**
 * The prober's view of a ShadowTLS v3 port (src/lab/stls-replay.ts) with real parts: Ladder's
 * port (which remembers verified hellos) against the same port with no replay memory, and a
 * plain TLS site as the tell's negative control. A genuine session is Ladder's client dialling
 * through the tap (the path's capture).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { probeShadowTlsPort, startHelloTap } from '../../src/lab/stls-replay.js';
import { listenShadowTls } from '../../src/server/shadowtls/listener.js';
import { serveShadowTls } from '../../src/server/shadowtls/connection.js';
import { ShadowTlsPasswords } from '../../src/server/shadowtls/passwords.js';
import { createLogger } from '../../src/shared/logger.js';
import { dialShadowTls } from '../../src/transport/shadowtls-dialer.js';
import type { Endpoint } from '../../src/lab/censor.js';

const SNI = 'news.web.lab';
const PW = 'replay-test-password';

test("replay prober: Ladder's port answers a replayed genuine hello as the site does; without replay memory it is told (+4); the 4-byte tell shows on both, and not on a plain site", async () => {
  const certs = await makeLabCertificates([SNI]);
  const site = https.createServer({ cert: certs.cert, key: certs.key }, (_q, res) => res.end('site\n'));
  site.listen(0, '127.0.0.1');
  await once(site, 'listening');
  const siteAt: Endpoint = { host: '127.0.0.1', port: (site.address() as net.AddressInfo).port };
  const dialSite = () => net.connect({ host: siteAt.host, port: siteAt.port, allowHalfOpen: true });
  const port = await listenShadowTls({
    port: 0,
    host: '127.0.0.1',
    handshake: siteAt,
    passwords: [PW],
    idleMs: 10_000,
    logger: createLogger({ level: 'silent' }),
    onStream: (s) => s.destroy(),
  });
  // The control: the same connection code with no memory of verified hellos.
  const forgetfulPasswords = new ShadowTlsPasswords([PW]);
  const forgetful = net.createServer({ allowHalfOpen: true }, (c) =>
    serveShadowTls(c, {
      match: (record) => forgetfulPasswords.match(record, undefined),
      dialHandshake: dialSite,
      replayed: () => false,
      idleMs: 10_000,
      onOutcome: () => undefined,
      onStream: (s) => s.destroy(),
    }),
  );
  forgetful.listen(0, '127.0.0.1');
  await once(forgetful, 'listening');
  const closers: Array<() => Promise<unknown>> = [];
  try {
    /** One genuine session through a tap in front of `to`; what the tap saw. */
    const genuine = async (to: Endpoint, plain = false) => {
      const tap = await startHelloTap(to);
      closers.push(() => tap.close());
      if (plain) {
        const s = tls.connect({ ...tap.address, servername: SNI, ca: certs.ca });
        await once(s, 'secureConnect');
        s.destroy();
      } else {
        const s = await dialShadowTls({ ...tap.address, address: tap.address.host, sni: SNI, password: PW });
        s.destroy();
      }
      await new Promise((r) => setTimeout(r, 200));
      const g = tap.captured();
      assert.ok(g, 'the tap saw a ClientHello');
      return g;
    };
    const ladder = await probeShadowTlsPort(
      { host: '127.0.0.1', port: port.address.port },
      siteAt,
      await genuine({ host: '127.0.0.1', port: port.address.port }),
    );
    assert.equal(ladder.replay, 'same as the site', JSON.stringify(ladder));
    assert.equal(ladder.tell, 'records 4 bytes longer (ShadowTLS v3)', JSON.stringify(ladder));
    const fAt = { host: '127.0.0.1', port: (forgetful.address() as net.AddressInfo).port };
    const noMemory = await probeShadowTlsPort(fAt, siteAt, await genuine(fAt));
    assert.equal(noMemory.replay, 'differs from the site', JSON.stringify(noMemory));
    assert.ok(
      noMemory.replayDeltas.every((d) => d >= 2 && d <= 6),
      `tagged: ${noMemory.replayDeltas.join(',')}`,
    );
    const plain = await probeShadowTlsPort(siteAt, siteAt, await genuine(siteAt, true));
    assert.equal(plain.replay, 'same as the site');
    assert.equal(plain.tell, 'none', `a plain site: ${plain.tellDeltas.join(',')}`);
  } finally {
    for (const c of closers) await c();
    await port.close();
    forgetful.close();
    site.closeAllConnections();
    site.close();
  }
});
