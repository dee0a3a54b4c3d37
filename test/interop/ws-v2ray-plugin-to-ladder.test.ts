// Interop: shadowsocks-libev's ss-local with the v2ray-plugin SIP003 plugin (websocket mode, Mux.Cool
// by default and raw with mux=0) → Ladder's WebSocket endpoints (stand-in web front), all three
// SIP004 ciphers: 8 MiB each way for one, 1 MiB for the others.
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { METHODS, peerSkip, startSsLocal, type Peer } from '../helpers/peers.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';
import { useFixtures } from './matrix.js';
import { MiB, shortConnections, transferBothWays, waitUntilUsable } from './ws-matrix.js';

const fx = useFixtures();

for (const mux of [true, false]) {
  for (const method of METHODS) {
    const size = (mux ? method === 'chacha20-ietf-poly1305' : method === 'aes-256-gcm') ? 8 * MiB : 1 * MiB;
    describe(
      `ss-local + v2ray-plugin (${mux ? 'mux default' : 'mux=0'}) → ladder WebSocket, ${method}`,
      {
        skip: peerSkip('ss-local', 'ss-v2ray-plugin'),
      },
      () => {
        const password = `ws-${randomBytes(6).toString('hex')}`;
        const peers: Peer[] = [];
        let srv: WsTestServer;
        let socksPort = 0;

        before(async () => {
          srv = await startWsTestServer({ keys: [{ id: 'k', method, secret: password }] });
          const opts = `mode=websocket;host=cdn.example.com;path=${srv.secretPath}${mux ? '' : ';mux=0'}`;
          const local = await startSsLocal({
            method,
            password,
            serverPort: srv.webPort,
            extraArgs: ['--plugin', 'ss-v2ray-plugin', '--plugin-opts', opts],
          });
          peers.push(local);
          socksPort = local.socksPort;
          await waitUntilUsable(socksPort, fx, peers);
        });
        after(async () => {
          await Promise.all(peers.map((p) => p.stop()));
          await srv?.close();
        });

        test(`${size / MiB} MiB up and down arrive byte-identical`, async () => {
          await transferBothWays(socksPort, size, fx, peers);
        });

        test('20 short connections in a row', async () => {
          const before = srv.upgrades;
          await shortConnections(socksPort, 20, fx, peers);
          // With Mux.Cool the plugin reuses its WebSocket; without, one WebSocket per connection.
          if (mux)
            assert.ok(srv.upgrades - before < 5, `${srv.upgrades - before} WebSockets for 20 connections`);
          else assert.equal(srv.upgrades - before, 20);
        });
      },
    );
  }
}
