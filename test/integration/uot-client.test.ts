/**
 * `ladder client` carrying SOCKS5 UDP ASSOCIATE as UDP-over-TCP (a key with `uot=1|2`) to a server
 * whose web front has no packet endpoint (`/SECRET/udp` off): inside the key's own tunnel stream,
 * over raw TCP, WebSocket and Mux.Cool, SIP004 and 2022, to a real UDP echo. The negative control:
 * the same web key without `uot=` goes to the packet endpoint, which is not there, and gets nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startClient } from '../../src/client/index.js';
import { createTunnelDialer } from '../../src/client/index.js';
import { endpointFromKey } from '../../src/client/key.js';
import { createUdpAssociate } from '../../src/client/udp-associate.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import type { Dialer } from '../../src/transport/dialer.js';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const SIP004: RuntimeKey = {
  id: 'k',
  method: 'chacha20-ietf-poly1305',
  secret: `uotc-${randomBytes(6).toString('hex')}`,
};
const KEY2022: RuntimeKey = {
  id: 'n',
  method: '2022-blake3-aes-128-gcm',
  secret: randomBytes(16).toString('base64'),
};
const noDial: Dialer = { dial: () => Promise.reject(new Error('no TCP in this test')) };

describe('SOCKS5 UDP ASSOCIATE as UDP-over-TCP (no packet endpoint on the server)', () => {
  let srv: WsTestServer;
  let echo: Awaited<ReturnType<typeof startUdpEcho>>;
  before(async () => {
    echo = await startUdpEcho();
    srv = await startWsTestServer({ keys: [SIP004, KEY2022], udp: false });
  });
  after(async () => {
    await srv.close();
    await echo.close();
  });

  /** An ss:// key for `k`: raw to the data plane's port, or v2ray-plugin to the web front. */
  const keyUrl = (k: RuntimeKey, via: 'raw' | 'ws' | 'mux', uot: 1 | 2 | undefined): string =>
    formatSsUrl({
      method: k.method,
      password: k.secret,
      host: '127.0.0.1',
      port: via === 'raw' ? srv.plane.address.port : srv.webPort,
      ...(via === 'raw'
        ? {}
        : {
            plugin: 'v2ray-plugin',
            pluginOptions: `mode=websocket;host=cdn.example.com;path=${srv.secretPath};mux=${via === 'mux' ? 1 : 0}`,
          }),
      ...(uot ? { uot } : {}),
    });

  /** 40 datagrams of `size` through a SOCKS5 association of a client with `key`. */
  async function run(key: string, size: number): Promise<{ received: number; corrupted: number }> {
    const ep = endpointFromKey(key, 'local');
    const udpAssociate = createUdpAssociate({
      server: {
        host: ep.host,
        port: ep.port,
        method: ep.method,
        password: ep.password,
        websocket: ep.websocket,
        ...(ep.udpOverTcp ? { udpOverTcp: { dialer: createTunnelDialer(ep), version: ep.udpOverTcp } } : {}),
      },
    });
    const client = await startClient({ dialer: noDial, socks: '127.0.0.1:0', udpAssociate });
    try {
      let assoc;
      try {
        assoc = await socks5UdpAssociate(client.socksAddress!.port, '127.0.0.1', 3000);
      } catch {
        return { received: 0, corrupted: 0 }; // refused by the client: nothing got through
      }
      try {
        return await udpEchoRun(assoc, { type: 'ipv4', host: '127.0.0.1', port: echo.port }, 40, size, {
          lossTimeoutMs: 1000,
          deadlineMs: 10_000,
        });
      } finally {
        assoc.close();
      }
    } finally {
      udpAssociate.closeAll();
      await client.close();
    }
  }

  const cases: { k: RuntimeKey; via: 'raw' | 'ws' | 'mux'; uot: 1 | 2 }[] = [
    { k: SIP004, via: 'raw', uot: 2 },
    { k: SIP004, via: 'ws', uot: 2 },
    { k: SIP004, via: 'mux', uot: 2 },
    { k: SIP004, via: 'mux', uot: 1 },
    { k: KEY2022, via: 'mux', uot: 2 },
  ];
  for (const { k, via, uot } of cases) {
    it(`${k.method} over ${via}, uot=${uot}: DNS-sized and 1,400-byte datagrams echoed, none corrupted`, async () => {
      for (const size of [64, 1400]) {
        const r = await run(keyUrl(k, via, uot), size);
        assert.equal(r.corrupted, 0, `${size}: corrupted`);
        // Inside a TCP stream nothing is lost on loopback.
        assert.equal(r.received, 40, `${size}: ${r.received}/40 delivered`);
      }
    });
  }

  it('negative control: the same web key without uot= gets nothing (no packet endpoint)', async () => {
    const r = await run(keyUrl(SIP004, 'mux', undefined), 64);
    assert.equal(r.received, 0);
  });
});
