/**
 * `--servers` in the censor lab (lab-det): one server with a raw Shadowsocks port and a web front
 * (ws://) on the same emulated address, and a second server's raw port. With the first server's
 * Shadowsocks port null-routed by C1, the self-check tells the null-routed endpoint (blocked) from
 * the reachable one and from the one reachable only over the web front. Negative control: the
 * same world without the null route has all three reachable.
 * In the lab a null route accepts the TCP handshake (a user-space forwarder cannot drop the
 * SYN-ACK), so it reads "blocked at tunnel" with a timeout; on a real network the tcp step times out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTunnelDialer, endpointFromKey } from '../../src/client/index.js';
import { checkServers, type ServerTarget } from '../../src/probe/servers.js';
import { ssUrl } from '../helpers/peers.js';
import { startWsTestServer } from '../helpers/web-server.js';
import { startWorld } from '../lab/helpers.js';

const METHOD = 'chacha20-ietf-poly1305';
const SECRET = 'servers-lab-secret';

async function run(nullRoute: boolean): Promise<Array<[string, string | false]>> {
  const world = await startWorld('lab-det');
  const web = http.createServer((_q, r) => r.writeHead(204).end());
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const a = await startWsTestServer({
    keys: [{ id: 'k', method: METHOD, secret: SECRET }],
    secretPath: '/front',
  });
  const b = await startWsTestServer({ keys: [{ id: 'k', method: METHOD, secret: SECRET }] });
  try {
    const raw = await world.addRemoteHost(
      { host: '127.0.0.1', port: a.plane.address.port },
      { logicalPort: 8388 },
    );
    const front = await world.addRemoteHost(
      { host: '127.0.0.1', port: a.webPort },
      { ip: raw.logical.host, logicalPort: 80 },
    );
    const other = await world.addRemoteHost(
      { host: '127.0.0.1', port: b.plane.address.port },
      { logicalPort: 8388 },
    );
    if (nullRoute) world.censor.blockEndpoint(raw.logical.host, raw.logical.port, 'test: null route');
    const pw = Buffer.from(`${METHOD}:${SECRET}`).toString('base64url');
    const keys: Array<[string, string]> = [
      ['raw, null-routed', ssUrl(METHOD, SECRET, raw.tcp.host, raw.tcp.port)],
      [
        'web front, same address',
        `ss://${pw}@${front.tcp.host}:${front.tcp.port}?plugin=${encodeURIComponent('v2ray-plugin;mux=0;path=/front')}`,
      ],
      ['raw, other server', ssUrl(METHOD, SECRET, other.tcp.host, other.tcp.port)],
    ];
    const targets = keys.map(([name, key]): ServerTarget => {
      const ep = endpointFromKey(key, 'local');
      return {
        name,
        host: ep.host,
        port: ep.port,
        websocket: ep.websocket,
        dialer: (nextHop) => createTunnelDialer({ ...ep, nextHop }),
      };
    });
    const checks = await checkServers(targets, {
      target: new URL(`http://127.0.0.1:${(web.address() as AddressInfo).port}/`),
      timeoutMs: 1500,
    });
    if (nullRoute)
      assert.ok(
        world.log.filter({ behaviour: 'C1' }).some((d) => d.rule === 'null-route'),
        'C1 acted',
      );
    return checks.map((c) => [c.name, c.blocking]);
  } finally {
    await a.close();
    await b.close();
    web.close();
    await world.stop();
  }
}

test('lab: a null-routed endpoint, a reachable one, and one reachable only over the web front', async () => {
  assert.deepEqual(await run(true), [
    ['raw, null-routed', 'tunnel'],
    ['web front, same address', false],
    ['raw, other server', false],
  ]);
});

test('lab negative control: without the null route all three are reachable', async () => {
  assert.deepEqual(await run(false), [
    ['raw, null-routed', false],
    ['web front, same address', false],
    ['raw, other server', false],
  ]);
});
