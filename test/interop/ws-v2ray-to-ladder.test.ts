// Interop: v2ray 4.34 (Debian `v2ray`: SOCKS inbound, Shadowsocks outbound with the `ws` stream
// transport, which is raw: no Mux.Cool) → Ladder's WebSocket endpoint (stand-in web front), all
// SIP004 ciphers v2ray has (not aes-192-gcm): 8 MiB each way for one, 1 MiB for the others.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/net.js';
import { METHODS, peerSkip, requirePeer, spawnPeer, type Peer } from '../helpers/peers.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';
import { useFixtures } from './matrix.js';
import { MiB, shortConnections, transferBothWays, waitUntilUsable } from './ws-matrix.js';

const fx = useFixtures();

for (const method of METHODS.filter((m) => m !== 'aes-192-gcm')) {
  const size = method === 'aes-128-gcm' ? 8 * MiB : 1 * MiB;
  describe(`v2ray 4.34 (shadowsocks + ws) → ladder WebSocket, ${method}`, { skip: peerSkip('v2ray') }, () => {
    const password = `ws-${randomBytes(6).toString('hex')}`;
    const peers: Peer[] = [];
    let srv: WsTestServer;
    let socksPort = 0;
    let dir = '';

    before(async () => {
      srv = await startWsTestServer({ keys: [{ id: 'k', method, secret: password }] });
      socksPort = await freePort();
      dir = mkdtempSync(join(tmpdir(), 'ladder-v2ray-'));
      const config = {
        log: { loglevel: 'warning', access: 'none' },
        inbounds: [
          {
            listen: '127.0.0.1',
            port: socksPort,
            protocol: 'socks',
            settings: { auth: 'noauth', udp: false },
          },
        ],
        outbounds: [
          {
            protocol: 'shadowsocks',
            settings: { servers: [{ address: '127.0.0.1', port: srv.webPort, method, password }] },
            // A query string on the path, as Xray-style links carry: the server ignores it.
            streamSettings: {
              network: 'ws',
              wsSettings: { path: `${srv.secretPath}/tcp?ed=2048`, headers: { Host: 'cdn.example.com' } },
            },
          },
        ],
      };
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify(config));
      peers.push(await spawnPeer('v2ray', requirePeer('v2ray'), ['-config', file], { waitPort: socksPort }));
      await waitUntilUsable(socksPort, fx, peers);
    });
    after(async () => {
      await Promise.all(peers.map((p) => p.stop()));
      await srv?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test(`${size / MiB} MiB up and down arrive byte-identical`, async () => {
      await transferBothWays(socksPort, size, fx, peers);
    });

    test('20 short connections in a row', async () => {
      await shortConnections(socksPort, 20, fx, peers);
    });
  });
}
