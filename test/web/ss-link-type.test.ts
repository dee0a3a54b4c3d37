/**
 * `type=ws` and `type=httpupgrade` ss:// links (the Xray share-link names 3x-ui writes) dialled
 * with the existing dialers through Ladder's own web front: the WebSocket at the secret path and
 * HTTPUpgrade at `/SECRET/up`, 256 KiB echoed byte-identical through the client's SOCKS5 front.
 * Before: both keys were refused when read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEcho } from '../helpers/net.js';
import { echoesThroughKey } from '../helpers/key-echo.js';
import { startWsTestServer } from '../helpers/web-server.js';

const KEY = { id: 'k', method: 'aes-128-gcm', secret: 'ss-link-type-secret' } as const;

test('type=ws at the secret path and type=httpupgrade at /SECRET/up carry a connection through the web front', async (t) => {
  const srv = await startWsTestServer({ keys: [KEY], front: {} });
  t.after(() => srv.close());
  const echo = await startEcho();
  t.after(() => echo.close());
  const userinfo = Buffer.from(`${KEY.method}:${KEY.secret}`).toString('base64');
  for (const [type, path] of [
    ['ws', srv.secretPath],
    ['httpupgrade', `${srv.secretPath}/up`],
  ] as const) {
    const link = `ss://${userinfo}@127.0.0.1:${srv.webPort}?type=${type}&path=${encodeURIComponent(path)}&host=front.test&security=none#${type}`;
    assert.ok(await echoesThroughKey(link, echo.port, 256 * 1024, 10_000), type);
  }
});
