// `ladder probe --servers` with a ShadowTLS v3 key (plugin=shadow-tls): dns/tcp to the ShadowTLS
// port, then the tunnel through the ShadowTLS client (its handshake with the site and the tags
// show in the tunnel step). In process: a Node TLS 1.3 site with a lab certificate, Ladder's
// ShadowTLS listener, the data plane. The right password reaches the target; a wrong one is
// blocked at the tunnel step with the reason (negative control).
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { createTunnelDialer, endpointFromKey } from '../../src/client/index.js';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { checkServer, explain, maskedName, type ServerTarget } from '../../src/probe/servers.js';
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { silentLogger } from '../../src/shared/logger.js';
import { startTestServer, type TestDataPlane } from '../helpers/data-plane.js';
import { shadowTlsPortWithDeadSite } from '../helpers/shadowtls-dead-site.js';

const secret = 'stls-probe-secret';
const PASSWORD = 'stls-probe-password';
let plane: TestDataPlane;
let site: https.Server;
let web: http.Server;
let listener: ShadowTlsListener;
let target: URL;

before(async () => {
  web = http.createServer((_req, res) => res.writeHead(204).end());
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  target = new URL(`http://127.0.0.1:${(web.address() as AddressInfo).port}/generate_204`);
  const certs = await makeLabCertificates(['site.test']);
  site = https.createServer({ cert: certs.cert, key: certs.key, minVersion: 'TLSv1.3' }, (_req, res) =>
    res.end('site'),
  );
  await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
  plane = await startTestServer({ keys: [{ id: 'k', method: 'aes-256-gcm', secret }] });
  listener = await listenShadowTls({
    port: 0,
    host: '127.0.0.1',
    handshake: { host: '127.0.0.1', port: (site.address() as AddressInfo).port },
    passwords: [PASSWORD],
    idleMs: 10_000,
    logger: silentLogger,
    onStream: (stream, info) => plane.plane.server.handleStream(stream, info),
  });
});
after(async () => {
  await listener?.close();
  await plane?.close();
  site?.close();
  web?.close();
});

function stlsTarget(password: string, port = listener.address.port): ServerTarget {
  const opts = encodeURIComponent(`shadow-tls;host=site.test;password=${password};version=3`);
  const key = `ss://${Buffer.from(`aes-256-gcm:${secret}`).toString('base64url')}@127.0.0.1:${port}/?plugin=${opts}`;
  const ep = endpointFromKey(key, 'local');
  return {
    name: maskedName(ep),
    host: ep.host,
    port: ep.port,
    shadowTls: ep.shadowTls,
    dialer: (nextHop) => createTunnelDialer({ ...ep, nextHop }),
  };
}

test('the right ShadowTLS password: reachable through tcp and the tunnel; the name shows no password', async () => {
  const t = stlsTarget(PASSWORD);
  assert.equal(t.name, `shadowtls://127.0.0.1:${listener.address.port} aes-256-gcm`);
  const c = await checkServer(t, { target, timeoutMs: 5000 });
  assert.equal(c.transport, 'shadowtls');
  assert.deepEqual(
    c.steps.map((s) => [s.step, s.failure]),
    [
      ['tcp', null],
      ['tunnel', null],
    ],
  );
});

test('a wrong ShadowTLS password: blocked at the tunnel step, the listener relayed to the site', async () => {
  const relayed = listener.counts.relayed;
  const c = await checkServer(stlsTarget('wrong'), { target, timeoutMs: 5000 });
  assert.equal(c.blocking, 'tunnel');
  assert.ok(listener.counts.relayed > relayed);
});

test('a ShadowTLS port whose handshake site is unreachable: blocked at the tunnel, and the advice says so', async () => {
  const resetting = await shadowTlsPortWithDeadSite(PASSWORD);
  try {
    const c = await checkServer(stlsTarget(PASSWORD, resetting.address.port), { target, timeoutMs: 5000 });
    assert.equal(c.blocking, 'tunnel');
    assert.equal(c.steps.at(-1)?.failure, 'connection_reset');
    assert.match(
      explain(c),
      /^the ShadowTLS server reset the connection during the TLS handshake \(connection_reset\): most often it cannot reach its handshake site/,
    );
  } finally {
    await resetting.close();
  }
});
