// Interop over WebSocket + TLS with real peers, certificates from a test CA (its own root, trusted
// only where the test says so): ss-local + v2ray-plugin (`tls;host=cdn.test;cert=CA`, Mux.Cool by
// default and mux=0) → Ladder's web front with TLS; v2ray 4.34 (Shadowsocks + ws + tls, the CA as
// a "verify" certificate) → Ladder's web front; `ladder client` (CLI, wss, the CA through
// NODE_EXTRA_CA_CERTS) → ss-server + v2ray-plugin `server;tls`. All three SIP004 ciphers, 8 MiB
// each way for one, 1 MiB for the others. Negative controls: each client without the CA gets
// nothing through (the certificate is really checked, so the traffic really is TLS).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { freePort } from '../helpers/net.js';
import {
  METHODS,
  peerSkip,
  requirePeer,
  spawnPeer,
  startLadderClient,
  startSsLocal,
  startSsServer,
  type Method,
  type Peer,
} from '../helpers/peers.js';
import { echoVia } from '../helpers/transfer.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';
import { makeCa, opensslSkip, type TestCa } from '../web/fixtures.js';
import { useFixtures } from './matrix.js';
import { MiB, wsInteropSuite } from './ws-matrix.js';

const fx = useFixtures();
const HOST = 'cdn.test';
const dir = mkdtempSync(join(tmpdir(), 'ladder-ws-tls-'));
const noOpenssl = opensslSkip();
// Made at load (the suites below are declared with it); without openssl they skip (CI: fail).
const ca = (noOpenssl ? undefined : makeCa(dir, HOST)) as TestCa;
after(() => rmSync(dir, { recursive: true, force: true }));

const password = (): string => `tls-${randomBytes(6).toString('hex')}`;
const startTlsLadder = (method: Method, secret: string): Promise<WsTestServer> =>
  startWsTestServer({
    keys: [{ id: 'k', method, secret }],
    front: { tls: { cert: ca.cert, key: ca.key } },
  });

/**
 * The negative control: a client started by `start` without the CA gets no echo through within a
 * few seconds, and (when `srv` is Ladder) no WebSocket reaches the server.
 */
async function refusedWithout(
  start: () => Promise<Peer & { socksPort: number }>,
  srv?: WsTestServer,
): Promise<void> {
  const before = srv?.upgrades;
  const client = await start();
  try {
    const got = await echoVia(
      { proxyPort: client.socksPort },
      { host: '127.0.0.1', port: fx.echo.port },
      Buffer.from('x'),
      4000,
    ).then(
      (r) => r.bytes,
      () => 0,
    );
    assert.equal(got, 0, 'nothing gets through without trusting the CA');
    if (srv) assert.equal(srv.upgrades, before, 'no WebSocket reached the server');
  } finally {
    await client.stop();
  }
}

const sizeFor = (method: Method, big: Method): number => (method === big ? 8 * MiB : 1 * MiB);

for (const mux of [true, false]) {
  for (const method of METHODS) {
    const size = sizeFor(method, mux ? 'aes-256-gcm' : 'chacha20-ietf-poly1305');
    describe(
      `ss-local + v2ray-plugin (tls, ${mux ? 'mux default' : 'mux=0'}) → ladder web front (TLS), ${method}`,
      { skip: peerSkip('ss-local', 'ss-v2ray-plugin') || noOpenssl },
      () => {
        const secret = password();
        let srv: WsTestServer;
        const local = (trust: boolean): Promise<Peer & { socksPort: number }> =>
          startSsLocal({
            method,
            password: secret,
            serverPort: srv.webPort,
            extraArgs: [
              '--plugin',
              'ss-v2ray-plugin',
              '--plugin-opts',
              `tls;host=${HOST};path=${srv.secretPath}${trust ? `;cert=${ca.caPath}` : ''}${mux ? '' : ';mux=0'};loglevel=none`,
            ],
          });
        wsInteropSuite(fx, {
          size,
          async setup(peers) {
            srv = await startTlsLadder(method, secret);
            const l = await local(true);
            peers.push(l);
            return l.socksPort;
          },
          teardown: async () => srv?.close(),
        });
        if (method === 'aes-128-gcm')
          test('negative control: the plugin without the CA gets nothing through', async () => {
            await refusedWithout(() => local(false), srv);
          });
      },
    );
  }
}

// v2ray 4.34 has no aes-192-gcm.
for (const method of METHODS.filter((m) => m !== 'aes-192-gcm')) {
  const size = sizeFor(method, 'aes-128-gcm');
  describe(
    `v2ray 4.34 (shadowsocks + ws + tls) → ladder web front (TLS), ${method}`,
    { skip: peerSkip('v2ray') || noOpenssl },
    () => {
      const secret = password();
      let srv: WsTestServer;

      const startV2ray = async (trust: boolean): Promise<Peer & { socksPort: number }> => {
        const port = await freePort();
        const config = {
          log: { loglevel: 'warning', access: 'none' },
          inbounds: [
            { listen: '127.0.0.1', port, protocol: 'socks', settings: { auth: 'noauth', udp: false } },
          ],
          outbounds: [
            {
              protocol: 'shadowsocks',
              settings: { servers: [{ address: '127.0.0.1', port: srv.webPort, method, password: secret }] },
              streamSettings: {
                network: 'ws',
                security: 'tls',
                tlsSettings: {
                  serverName: HOST,
                  ...(trust ? { certificates: [{ usage: 'verify', certificateFile: ca.caPath }] } : {}),
                },
                wsSettings: { path: `${srv.secretPath}/tcp`, headers: { Host: HOST } },
              },
            },
          ],
        };
        const file = join(dir, `v2ray-${method}-${trust}.json`);
        writeFileSync(file, JSON.stringify(config));
        const p = await spawnPeer('v2ray', requirePeer('v2ray'), ['-config', file], { waitPort: port });
        return Object.assign(p, { socksPort: port });
      };

      wsInteropSuite(fx, {
        size,
        async setup(peers) {
          srv = await startTlsLadder(method, secret);
          const v = await startV2ray(true);
          peers.push(v);
          return v.socksPort;
        },
        teardown: async () => srv?.close(),
      });
      if (method === 'aes-128-gcm')
        test('negative control: v2ray without the CA gets nothing through', async () => {
          await refusedWithout(() => startV2ray(false), srv);
        });
    },
  );
}

for (const method of METHODS) {
  const size = sizeFor(method, 'chacha20-ietf-poly1305');
  describe(
    `ladder client (wss) → ss-server + v2ray-plugin server (tls), ${method}`,
    { skip: peerSkip('ss-server', 'ss-v2ray-plugin') || noOpenssl },
    () => {
      const secret = password();
      let key = '';
      wsInteropSuite(fx, {
        size,
        async setup(peers) {
          const server = await startSsServer({
            method,
            password: secret,
            extraArgs: [
              '--plugin',
              'ss-v2ray-plugin',
              '--plugin-opts',
              `server;tls;host=${HOST};cert=${ca.certPath};key=${ca.keyPath};path=/x;loglevel=none`,
            ],
          });
          peers.push(server);
          key = formatSsUrl({
            method,
            password: secret,
            host: '127.0.0.1',
            port: server.port,
            plugin: 'v2ray-plugin',
            pluginOptions: `tls;host=${HOST};path=/x`,
          });
          const client = await startLadderClient({ key, env: { NODE_EXTRA_CA_CERTS: ca.caPath } });
          peers.push(client);
          return client.socksPort;
        },
      });
      if (method === 'aes-128-gcm')
        test('negative control: ladder client without the CA gets nothing through', async () => {
          await refusedWithout(() => startLadderClient({ key }));
        });
    },
  );
}
