/**
 * D9 with a dynamic key in Outline's YAML: `first-supported` offers raw Shadowsocks (blackholed
 * here) and WebSocket through a "CDN" (`endpoint:` dials the web front while Host says
 * cdn.example.com). The picker leaves the blackhole after one stalled connection and carries
 * traffic over the WebSocket; the status names the choice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTunnelDialer, startClient } from '../../src/client/index.js';
import { parseDynamicKeyUrl } from '../../src/client/dynamic-fetch.js';
import { startPickedTunnel } from '../../src/client/picked-tunnel.js';
import { silentLogger } from '../../src/shared/logger.js';
import { readExactly, startEcho, startSink } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';
import { startWsTestServer } from '../helpers/web-server.js';

const PW = 'picker-ws-password';

test('a dynamic YAML key with raw Shadowsocks blackholed and WebSocket via a front: the picker moves to the WebSocket', async (t) => {
  const srv = await startWsTestServer({ keys: [{ id: 'k', method: 'chacha20-ietf-poly1305', secret: PW }] });
  const echo = await startEcho();
  const hole = await startSink();
  t.after(() => Promise.all([srv.close(), echo.close(), hole.close()]).then(() => undefined));
  const yaml = `
transport:
  $type: tcpudp
  tcp:
    $type: shadowsocks
    endpoint:
      $type: first-supported
      options:
        - 127.0.0.1:${hole.port}
        - $type: websocket
          url: ws://cdn.example.com${srv.secretPath}/tcp
          endpoint: 127.0.0.1:${srv.webPort}
    cipher: chacha20-ietf-poly1305
    secret: ${PW}
`;
  const picked = await startPickedTunnel({
    dynamic: parseDynamicKeyUrl('ssconf://keys.example/access/T'),
    dialerFor: (e) => createTunnelDialer(e),
    log: silentLogger,
    picker: { stallMs: 400 },
    source: { fetch: async () => yaml },
  });
  const client = await startClient({ tunnel: picked.tunnel, socks: '127.0.0.1:0', noAnswerMs: 60_000 });
  t.after(async () => {
    await client.close();
    picked.close();
  });
  const say = async (word: string, ms: number): Promise<string | undefined> => {
    const s = await socks5Connect({
      proxyPort: client.socksAddress!.port,
      host: '127.0.0.1',
      port: echo.port,
    });
    try {
      s.write(word);
      return (await readExactly(s, word.length, ms)).toString();
    } catch {
      return undefined;
    } finally {
      s.destroy();
    }
  };
  assert.equal(await say('one', 1500), undefined, 'raw Shadowsocks is blackholed');
  assert.equal(hole.accepted, 1);
  assert.equal(srv.upgrades, 0);
  assert.equal(await say('two', 5000), 'two', 'the WebSocket gets through');
  assert.equal(await say('three', 5000), 'three');
  assert.equal(hole.accepted, 1, 'the blackhole is left alone');
  assert.equal(srv.upgrades, 2, 'one WebSocket per connection (Outline dialect, no mux)');
  const [raw, ws] = picked.picker.status();
  assert.equal(raw?.state, 'avoided');
  assert.equal(ws?.state, 'in use');
  assert.equal(ws?.kind, 'websocket');
});
