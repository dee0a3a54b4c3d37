// HTTPUpgrade (Xray/sing-box "httpupgrade", mihomo's v2ray-plugin `v2ray-http-upgrade`) end to
// end: `ladder client` (CLI, from a SIP002 key with `v2ray-http-upgrade` and path /SECRET/up) →
// Ladder's web front, plain and TLS (a test CA trusted through the key's cert=), a SIP004 and a
// 2022 key, Mux.Cool (the default) and raw (mux=0), fast-open (the request with the first
// bytes, not waiting for the 101) and not; and through Debian's nginx as the "CDN"
// (TLS there, `proxy_set_header Upgrade/Connection` as for WebSocket) to the plain front. 8 MiB
// each way with sha256 compared, short connections, and the front's record that each stream
// came in at /SECRET/up (HTTPUpgrade), never at a WebSocket path; `--udp` (SOCKS5 UDP
// ASSOCIATE) rides inside those streams as UDP-over-TCP v2, directly and through nginx.
//
// No Debian peer speaks HTTPUpgrade (Debian's v2ray is 4.34, from before the transport; there is
// no Xray, sing-box or mihomo package): what those clients send is replayed byte for byte in
// test/web/httpupgrade.test.ts instead.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { assertUdpEchoes100 } from '../helpers/udp-echo-check.js';
import { startLadderClient } from '../helpers/peers.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';
import { makeCa, nginxSkip, opensslSkip, startNginx, wsProxyLocation, type TestCa } from '../web/fixtures.js';
import { useFixtures } from './matrix.js';
import { MiB, wsInteropSuite } from './ws-matrix.js';

const fx = useFixtures();
const HOST = 'cdn.test';
const dir = mkdtempSync(join(tmpdir(), 'ladder-httpupgrade-'));
const noOpenssl = opensslSkip();
const ca = (noOpenssl ? undefined : makeCa(dir, HOST)) as TestCa;
after(() => rmSync(dir, { recursive: true, force: true }));

type Method = 'aes-256-gcm' | '2022-blake3-aes-256-gcm';
interface Case {
  via: 'direct' | 'nginx';
  tls: boolean;
  method: Method;
  mux: boolean;
  size: number;
  /** mihomo's v2ray-http-upgrade-fast-open: the request goes with the first bytes. */
  fastOpen?: boolean;
  /** `--udp`: SOCKS5 UDP ASSOCIATE, carried inside the streams as UDP-over-TCP v2. */
  udp?: boolean;
}

const CASES: Case[] = [
  { via: 'direct', tls: false, method: 'aes-256-gcm', mux: true, size: 8 * MiB, udp: true },
  { via: 'direct', tls: false, method: '2022-blake3-aes-256-gcm', mux: false, size: 8 * MiB },
  { via: 'direct', tls: true, method: '2022-blake3-aes-256-gcm', mux: true, size: 8 * MiB },
  { via: 'direct', tls: true, method: 'aes-256-gcm', mux: false, size: 8 * MiB },
  { via: 'nginx', tls: true, method: 'aes-256-gcm', mux: true, size: 8 * MiB },
  { via: 'nginx', tls: true, method: '2022-blake3-aes-256-gcm', mux: false, size: 1 * MiB, udp: true },
  { via: 'direct', tls: false, method: 'aes-256-gcm', mux: false, size: 1 * MiB, fastOpen: true },
  { via: 'direct', tls: true, method: '2022-blake3-aes-256-gcm', mux: true, size: 1 * MiB, fastOpen: true },
  { via: 'nginx', tls: true, method: 'aes-256-gcm', mux: false, size: 1 * MiB, fastOpen: true },
];

const secretFor = (m: Method): string =>
  m.startsWith('2022-') ? randomBytes(32).toString('base64') : `up-${randomBytes(6).toString('hex')}`;

for (const c of CASES) {
  const skip = (c.tls && noOpenssl) || (c.via === 'nginx' && (nginxSkip() || noOpenssl));
  const what = `${c.tls ? 'TLS' : 'plain'}, ${c.mux ? 'Mux.Cool' : 'raw'}${c.fastOpen ? ', fast-open' : ''}, ${c.method}`;
  const where =
    c.via === 'nginx' ? 'nginx (TLS, WebSocket proxy config) → ladder plain web front' : 'ladder web front';
  describe(`ladder client (HTTPUpgrade, ${what}) → ${where}`, { skip }, () => {
    const secret = secretFor(c.method);
    let srv: WsTestServer;
    const suite = wsInteropSuite(fx, {
      size: c.size,
      async setup(peers) {
        srv = await startWsTestServer({
          keys: [{ id: 'k', method: c.method, secret }],
          front: {
            ...(c.tls && c.via === 'direct' ? { tls: { cert: ca.cert, key: ca.key } } : {}),
            ...(c.via === 'nginx' ? { trustProxy: ['127.0.0.3/32'] } : {}),
          },
        });
        let port = srv.webPort;
        if (c.via === 'nginx') {
          const nginx = await startNginx(`
            listen 127.0.0.1:{{PORT}} ssl;
            ssl_certificate ${ca.certPath};
            ssl_certificate_key ${ca.keyPath};
            ${wsProxyLocation('/', `http://127.0.0.1:${srv.webPort}`)}`);
          peers.push(nginx);
          port = nginx.port;
        }
        const opts = [
          'mode=websocket',
          `host=${HOST}`,
          `path=${srv.secretPath}/up`,
          'v2ray-http-upgrade',
          ...(c.fastOpen ? ['v2ray-http-upgrade-fast-open'] : []),
          ...(c.tls ? ['tls', `cert=${ca.caPath}`] : []),
          ...(c.mux ? [] : ['mux=0']),
        ].join(';');
        const client = await startLadderClient({
          key: formatSsUrl({
            method: c.method,
            password: secret,
            host: '127.0.0.1',
            port,
            plugin: 'v2ray-plugin',
            pluginOptions: opts,
          }),
          ...(c.udp ? { extraArgs: ['--udp'] } : {}),
        });
        peers.push(client);
        return client.socksPort;
      },
      teardown: async () => srv?.close(),
    });

    test('every stream came in over HTTPUpgrade at /SECRET/up', () => {
      assert.ok(srv.paths.length > 0, 'the front took upgrades');
      assert.deepEqual([...new Set(srv.paths)], [`${srv.secretPath}/up`]);
      if (c.mux) assert.ok(srv.paths.length <= 3, `Mux.Cool shares carriers (${srv.paths.length} upgrades)`);
    });

    if (c.udp)
      test('SOCKS5 UDP ASSOCIATE inside the HTTPUpgrade streams (UDP-over-TCP v2): 100 datagrams echoed', async () => {
        await assertUdpEchoes100(suite.socksPort());
        assert.deepEqual(
          [...new Set(srv.paths)],
          [`${srv.secretPath}/up`],
          'no WebSocket packet endpoint used',
        );
      });

    if (c.via === 'nginx')
      test('the front saw the client (from the trusted X-Forwarded-For), never nginx', () => {
        assert.deepEqual([...new Set(srv.clients)], ['127.0.0.1']);
      });
  });
}
