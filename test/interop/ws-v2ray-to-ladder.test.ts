// Interop: v2ray 4.34 (Debian `v2ray`: SOCKS inbound, Shadowsocks outbound with the `ws` stream
// transport; with and without v2ray's own mux switch) → Ladder's WebSocket endpoint (stand-in web front), all
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

/**
 * One v2ray 4.34 peer (SOCKS inbound, the Shadowsocks `outbound` that `makeOutbound` builds for
 * the server) in front of a Ladder data plane with a stand-in web front; `size` bytes both ways
 * hashed, and 20 short connections in a row.
 */
function v2rayCase(
  name: string,
  method: string,
  size: number,
  makeOutbound: (srv: WsTestServer, password: string) => Record<string, unknown>,
): void {
  describe(name, { skip: peerSkip('v2ray') }, () => {
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
        outbounds: [makeOutbound(srv, password)],
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

for (const method of METHODS.filter((m) => m !== 'aes-192-gcm')) {
  const size = method === 'aes-128-gcm' ? 8 * MiB : 1 * MiB;
  v2rayCase(`v2ray 4.34 (shadowsocks + ws) → ladder WebSocket, ${method}`, method, size, (srv, password) => ({
    protocol: 'shadowsocks',
    settings: { servers: [{ address: '127.0.0.1', port: srv.webPort, method, password }] },
    // A query string on the path, as Xray-style links carry: the server ignores it.
    streamSettings: {
      network: 'ws',
      wsSettings: { path: `${srv.secretPath}/tcp?ed=2048`, headers: { Host: 'cdn.example.com' } },
    },
  }));
}

// v2ray's own `mux` switch (v2rayNG's "Mux" setting): the outbound asks for `v1.mux.cool` and the
// Shadowsocks stream carries Mux.Cool frames, each session naming its destination
// (src/server/inner-mux.ts). Over the WebSocket and over raw TCP. Without that handling the server
// resolves `v1.mux.cool`, fails, and these tests time out (checked: what a stranger saw with
// v2ray's mux on was an empty reply).
for (const transport of ['ws', 'tcp'] as const) {
  const method = 'aes-256-gcm';
  v2rayCase(
    `v2ray 4.34 with mux on (Mux.Cool inside Shadowsocks, ${transport}) → ladder`,
    method,
    8 * MiB,
    (srv, password) => ({
      protocol: 'shadowsocks',
      settings: {
        servers: [
          {
            address: '127.0.0.1',
            port: transport === 'ws' ? srv.webPort : srv.plane.address.port,
            method,
            password,
          },
        ],
      },
      mux: { enabled: true, concurrency: 8 },
      ...(transport === 'ws'
        ? { streamSettings: { network: 'ws', wsSettings: { path: `${srv.secretPath}/tcp` } } }
        : {}),
    }),
  );
}
