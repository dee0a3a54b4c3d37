// Interop: `ladder client` with the share link the 3x-ui panel writes for a Shadowsocks inbound on
// Xray's WebSocket transport — `ss://BASE64(method:password)@host:port?type=ws&path=…&host=…#…`,
// standard base64 with padding, an empty `fp=` and an `alpn=` — against v2ray 4.34 (Debian
// `v2ray`, the same Shadowsocks inbound and `ws` transport as Xray's) as the server. 1 MiB echoed
// byte-identical. Negative control: the same link without `type=ws` dials plain Shadowsocks to
// the WebSocket port and gets nothing back. Before: the key was refused (`type="ws" is not supported`).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { endpointFromKey } from '../../src/client/key.js';
import { freePort, startEcho, type TestServer } from '../helpers/net.js';
import { echoesThroughKey } from '../helpers/key-echo.js';
import { peerSkip, requirePeer, spawnPeer, type Peer } from '../helpers/peers.js';

const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = `xui-${randomBytes(6).toString('hex')}`;
const PATH = `/${randomBytes(6).toString('hex')}`;

/** The link as 3x-ui's genShadowsocksLink writes it (Go's url.Values.Encode: keys sorted). */
function xuiLink(port: number, withType: boolean): string {
  const userinfo = Buffer.from(`${METHOD}:${PASSWORD}`).toString('base64');
  const q = new URLSearchParams({
    alpn: 'h2,http/1.1',
    fp: '',
    host: 'cdn.example.com',
    path: PATH,
    ...(withType ? { type: 'ws' } : {}),
  });
  return `ss://${userinfo}@127.0.0.1:${port}?${q.toString()}#user%40example%3A%20%E2%99%BE`;
}

describe(
  '3x-ui type=ws share link → v2ray 4.34 Shadowsocks over WebSocket',
  { skip: peerSkip('v2ray') },
  () => {
    let peer: Peer | undefined;
    let echo: TestServer;
    let port = 0;
    let dir = '';

    before(async () => {
      echo = await startEcho();
      port = await freePort();
      dir = mkdtempSync(join(tmpdir(), 'ladder-xui-'));
      const config = {
        log: { loglevel: 'warning', access: 'none' },
        inbounds: [
          {
            listen: '127.0.0.1',
            port,
            protocol: 'shadowsocks',
            settings: { method: METHOD, password: PASSWORD, network: 'tcp' },
            streamSettings: { network: 'ws', wsSettings: { path: PATH } },
          },
        ],
        outbounds: [{ protocol: 'freedom' }],
      };
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify(config));
      peer = await spawnPeer('v2ray', requirePeer('v2ray'), ['-config', file], { waitPort: port });
    });
    after(async () => {
      await peer?.stop();
      await echo?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const through = (link: string): Promise<boolean> => echoesThroughKey(link, echo.port, 1024 * 1024, 8000);

    test('the link reads as a WebSocket key (path, Host, no TLS, no Mux.Cool) and 1 MiB echoes byte-identical', async () => {
      const ep = endpointFromKey(xuiLink(port, true), 'local');
      assert.deepEqual(ep.websocket, {
        url: `ws://127.0.0.1:${port}${PATH}`,
        host: 'cdn.example.com',
        mux: false,
      });
      assert.equal(ep.tag, 'user@example: ♾');
      assert.ok(
        await through(xuiLink(port, true)),
        `no echo through the link\n${peer?.output().slice(-2000)}`,
      );
    });

    test('control: the same link without type=ws (plain Shadowsocks to the WebSocket port) carries nothing', async () => {
      assert.equal(endpointFromKey(xuiLink(port, false), 'local').websocket, undefined);
      assert.equal(await through(xuiLink(port, false)), false);
    });
  },
);
