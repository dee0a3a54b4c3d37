// Peers end to end through Debian's nginx as the "CDN": nginx terminates TLS (a certificate from
// a test CA) and proxies WebSocket upgrades to Ladder's plain web front, connecting from
// 127.0.0.3, which the front trusts for X-Forwarded-For. ss-local + v2ray-plugin (tls, Mux.Cool
// by default and mux=0) and `ladder client` (CLI, wss, Mux.Cool and raw, a SIP004 and a 2022
// key, SOCKS5 UDP ASSOCIATE over the WebSocket packet endpoint) → nginx → Ladder. Hashes
// compared; the front saw each client as 127.0.0.1 (from nginx's header), never as nginx's
// 127.0.0.3. (The control for the trust rule — an untrusted nginx's header ignored — is in
// test/web/nginx-front.test.ts.)
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { assertUdpEchoes100 } from '../helpers/udp-echo-check.js';
import { peerSkip, startLadderClient, startSsLocal } from '../helpers/peers.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';
import {
  makeCa,
  nginxSkip,
  opensslSkip,
  startNginx,
  wsProxyLocation,
  type Nginx,
  type TestCa,
} from '../web/fixtures.js';
import { useFixtures } from './matrix.js';
import { MiB, wsInteropSuite } from './ws-matrix.js';

const fx = useFixtures();
const HOST = 'cdn.test';
const dir = mkdtempSync(join(tmpdir(), 'ladder-ws-nginx-'));
const missing = nginxSkip() || opensslSkip();
const ca = (missing ? undefined : makeCa(dir, HOST)) as TestCa;
after(() => rmSync(dir, { recursive: true, force: true }));

/** nginx on a free port: TLS with the test CA's certificate, every path proxied to `webPort`. */
function cdn(webPort: number): Promise<Nginx> {
  return startNginx(`
    listen 127.0.0.1:{{PORT}} ssl;
    ssl_certificate ${ca.certPath};
    ssl_certificate_key ${ca.keyPath};
    ${wsProxyLocation('/', `http://127.0.0.1:${webPort}`)}`);
}

interface Case {
  name: string;
  method: 'aes-256-gcm' | 'chacha20-ietf-poly1305' | '2022-blake3-aes-256-gcm';
  client: 'ss-local' | 'ladder';
  mux: boolean;
  size: number;
}

const CASES: Case[] = [
  {
    name: 'ss-local + v2ray-plugin (tls, mux default)',
    method: 'aes-256-gcm',
    client: 'ss-local',
    mux: true,
    size: 8 * MiB,
  },
  {
    name: 'ss-local + v2ray-plugin (tls, mux=0)',
    method: 'chacha20-ietf-poly1305',
    client: 'ss-local',
    mux: false,
    size: 1 * MiB,
  },
  {
    name: 'ladder client (wss, Mux.Cool)',
    method: '2022-blake3-aes-256-gcm',
    client: 'ladder',
    mux: true,
    size: 8 * MiB,
  },
  { name: 'ladder client (wss, raw)', method: 'aes-256-gcm', client: 'ladder', mux: false, size: 1 * MiB },
];

for (const c of CASES) {
  const skip = missing || (c.client === 'ss-local' ? peerSkip('ss-local', 'ss-v2ray-plugin') : false);
  describe(`${c.name} → nginx (TLS, WebSocket proxy) → ladder plain web front, ${c.method}`, { skip }, () => {
    const secret = c.method.startsWith('2022-')
      ? randomBytes(32).toString('base64')
      : `cdn-${randomBytes(6).toString('hex')}`;
    let srv: WsTestServer;
    const suite = wsInteropSuite(fx, {
      size: c.size,
      async setup(peers) {
        srv = await startWsTestServer({
          keys: [{ id: 'k', method: c.method, secret }],
          front: { trustProxy: ['127.0.0.3/32'] },
        });
        const nginx = await cdn(srv.webPort);
        peers.push(nginx);
        const opts = `tls;host=${HOST};path=${srv.secretPath}${c.mux ? '' : ';mux=0'}`;
        const client =
          c.client === 'ss-local'
            ? await startSsLocal({
                method: c.method as 'aes-256-gcm',
                password: secret,
                serverPort: nginx.port,
                extraArgs: [
                  '--plugin',
                  'ss-v2ray-plugin',
                  '--plugin-opts',
                  `${opts};cert=${ca.caPath};loglevel=none`,
                ],
              })
            : await startLadderClient({
                key: formatSsUrl({
                  method: c.method,
                  password: secret,
                  host: '127.0.0.1',
                  port: nginx.port,
                  plugin: 'v2ray-plugin',
                  pluginOptions: opts,
                }),
                extraArgs: ['--udp'],
                env: { NODE_EXTRA_CA_CERTS: ca.caPath },
              });
        peers.push(client);
        return client.socksPort;
      },
      teardown: async () => srv?.close(),
    });

    test('the front saw the client (from the trusted X-Forwarded-For), never nginx', () => {
      assert.ok(srv.clients.length > 0);
      assert.deepEqual([...new Set(srv.clients)], ['127.0.0.1']);
    });

    if (c.client === 'ladder')
      test('SOCKS5 UDP ASSOCIATE over the WebSocket packet endpoint through nginx: 100 datagrams echoed', async () => {
        await assertUdpEchoes100(suite.socksPort());
      });
  });
}
