// Interop: `ladder client` (CLI) with a `plugin=v2ray-plugin` key → shadowsocks-libev's ss-server
// behind the v2ray-plugin SIP003 server (websocket). That server accepts only Mux.Cool, so this
// checks our client's Mux.Cool. All four SIP004 ciphers: 8 MiB each way for one, 1 MiB for the others.
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { METHODS, peerSkip, startLadderClient, startSsServer, type Peer } from '../helpers/peers.js';
import { useFixtures } from './matrix.js';
import { MiB, shortConnections, transferBothWays, waitUntilUsable } from './ws-matrix.js';

const fx = useFixtures();

for (const method of METHODS) {
  const size = method === 'aes-256-gcm' ? 8 * MiB : 1 * MiB;
  describe(
    `ladder client → ss-server + v2ray-plugin server (websocket, Mux.Cool), ${method}`,
    {
      skip: peerSkip('ss-server', 'ss-v2ray-plugin'),
    },
    () => {
      const password = `ws-${randomBytes(6).toString('hex')}`;
      const peers: Peer[] = [];
      let socksPort = 0;

      before(async () => {
        const server = await startSsServer({
          method,
          password,
          extraArgs: [
            '--plugin',
            'ss-v2ray-plugin',
            '--plugin-opts',
            'server;mode=websocket;path=/x;loglevel=none',
          ],
        });
        peers.push(server);
        const key = formatSsUrl({
          method,
          password,
          host: '127.0.0.1',
          port: server.port,
          plugin: 'v2ray-plugin',
          pluginOptions: 'mode=websocket;host=cdn.example.com;path=/x',
        });
        const client = await startLadderClient({ key });
        peers.push(client);
        socksPort = client.socksPort;
        await waitUntilUsable(socksPort, fx, peers);
      });
      after(async () => {
        await Promise.all(peers.map((p) => p.stop()));
      });

      test(`${size / MiB} MiB up and down arrive byte-identical`, async () => {
        await transferBothWays(socksPort, size, fx, peers);
      });

      test('20 short connections in a row', async () => {
        await shortConnections(socksPort, 20, fx, peers);
      });
    },
  );
}
