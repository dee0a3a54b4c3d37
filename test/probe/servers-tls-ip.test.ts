// `ladder probe --servers` with a web key at an IP address over TLS (what a server without a name
// prints: host=ADDRESS, no SNI), its certificate for that address trusted through the key's
// cert=: the tls step passes and the endpoint is reachable over WebSocket and HTTPUpgrade. Before,
// the probe's handshake checked the certificate against 'localhost' and reported
// ssl_invalid_hostname, "blocked at tls", for a front that works. Control: a certificate for
// another address is still invalid_hostname.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createTunnelDialer, endpointFromKey } from '../../src/client/index.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { checkServer, type ServerTarget } from '../../src/probe/servers.js';
import { startWsTestServer } from '../helpers/web-server.js';
import { makeCert, opensslSkip, tempDir } from '../web/fixtures.js';

const KEY = { id: 'k', method: 'aes-128-gcm', secret: 'probe-tls-ip' } as const;

test(
  'a TLS web key at 127.0.0.1: tls ok, reachable; a certificate for another address: invalid_hostname',
  { skip: opensslSkip() },
  async (t) => {
    const dir = tempDir('probe-tls-ip');
    t.after(() => dir.remove());
    const page = http.createServer((_req, res) => res.writeHead(204).end());
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
    t.after(() => page.close());
    const target = new URL(`http://127.0.0.1:${(page.address() as AddressInfo).port}/`);
    const check = async (certName: string, up: boolean): Promise<Array<[string, string | null]>> => {
      const cert = makeCert(dir.path, certName, `${certName}-${up}`);
      const srv = await startWsTestServer({
        keys: [KEY],
        front: { tls: { cert: cert.cert, key: cert.key } },
      });
      try {
        const key = formatSsUrl({
          method: KEY.method,
          password: KEY.secret,
          host: '127.0.0.1',
          port: srv.webPort,
          plugin: 'v2ray-plugin',
          pluginOptions: `mode=websocket;host=127.0.0.1;path=${srv.secretPath}${up ? '/up;v2ray-http-upgrade' : ''};tls;mux=0;cert=${cert.certPath}`,
        });
        const ep = endpointFromKey(key, 'local');
        const st: ServerTarget = {
          name: 'k',
          host: ep.host,
          port: ep.port,
          websocket: ep.websocket,
          dialer: (nextHop) => createTunnelDialer({ ...ep, nextHop }),
        };
        const c = await checkServer(st, { target, timeoutMs: 3000 });
        return c.steps.map((s) => [s.step, s.failure]);
      } finally {
        await srv.close();
      }
    };
    for (const up of [false, true])
      assert.deepEqual(
        await check('127.0.0.1', up),
        [
          ['tcp', null],
          ['tls', null],
          ['websocket', null],
          ['tunnel', null],
        ],
        `httpUpgrade ${up}`,
      );
    assert.deepEqual(await check('127.0.0.2', false), [
      ['tcp', null],
      ['tls', 'ssl_invalid_hostname'],
    ]);
  },
);
