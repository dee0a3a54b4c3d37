/**
 * The web front in managed mode: every key of every port is served over it (a key an API client
 * put on another port works over WebSocket too, and stops there when deleted: the control),
 * `ladder keys url ID` and `ladder server access-config` print each key's v2ray-plugin URL while
 * the server has a web front, and no web URL once it restarts without one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { startManaged } from '../../src/cli/managed.js';
import { startClient } from '../../src/client/index.js';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { api, echoServer, flags, type Json } from '../api/managed-helpers.js';
import { tempDir } from '../api/helpers.js';
import { run } from '../helpers/cli-run.js';
import { freePort } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';
import { sleep, waitFor } from '../helpers/wait.js';

/** A WebSocket key URL (the HTTPUpgrade one, with v2ray-http-upgrade, is printed after it). */
const WEB_URL = /ss:\/\/(?!\S*v2ray-http-upgrade)\S+plugin=v2ray-plugin\S*/g;

/** `text` through the SOCKS5 port to the echo origin and back, or undefined after `ms`. */
async function echoVia(
  socksPort: number,
  echoPort: number,
  text: string,
  ms = 5000,
): Promise<string | undefined> {
  let s: Socket;
  try {
    s = await socks5Connect({ proxyPort: socksPort, host: '127.0.0.1', port: echoPort });
  } catch {
    return undefined;
  }
  try {
    let got = '';
    const done = new Promise<string>((resolve) =>
      s.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.length >= text.length) resolve(got);
      }),
    );
    s.on('error', () => undefined);
    s.resume();
    s.write(text);
    return await Promise.race([done, sleep(ms).then(() => undefined)]);
  } finally {
    s.destroy();
  }
}

async function cli(args: string[]): Promise<string> {
  const r = run(args);
  assert.equal(await r.exit, 0, r.stderr());
  return r.stdout();
}

test('managed: keys on every port work over the web front; keys url and access-config print web URLs', async (t) => {
  const dir = tempDir(t);
  const echoPort = await echoServer(t);
  const base = { ...flags(dir), webPort: '0', webHost: '127.0.0.1' };
  const m = await startManaged(base, silentLogger, { usageFlushMs: 200, enforceIntervalMs: 300 });
  let closed = false;
  t.after(() => (closed ? undefined : m.close()));
  const line = m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'));
  assert.ok(line);
  const cfg = JSON.parse(line) as { apiUrl: string; certSha256: string };
  const webPort = m.web!.service.front.port;

  // A key on another port, as an Outline Manager user gets after changing the port for new keys.
  const otherPort = await freePort();
  assert.equal((await api(cfg, 'PUT', '/server/port-for-new-access-keys', { port: otherPort })).status, 204);
  const r = await api(cfg, 'POST', '/access-keys', { name: 'elsewhere', method: 'chacha20-ietf-poly1305' });
  assert.equal(r.status, 201, r.body);
  const key = JSON.parse(r.body) as Json;
  assert.equal(key.port, otherPort);
  assert.notEqual(otherPort, m.plane.address.port);

  const urlOut = await cli(['keys', 'url', String(key.id), '--data-dir', dir, '--no-qr']);
  const web = urlOut.match(WEB_URL);
  assert.ok(web && web.length === 1, urlOut);
  const parsed = parseSsUrl(web[0]);
  assert.equal(parsed.port, webPort);
  assert.equal(parsed.password, key.password);

  const access = await cli(['server', 'access-config', '--data-dir', dir]);
  assert.equal(access.match(WEB_URL)?.length, 2, `a web URL for each of the two keys: ${access}`);
  assert.match(access, new RegExp(`web: keys over the web front on port ${webPort}`));

  const client = await startClient({ key: web[0], socks: '127.0.0.1:0' });
  t.after(() => client.close());
  const socks = client.socksAddress!.port;
  await waitFor(
    async () => (await echoVia(socks, echoPort, 'over the web front', 2000)) === 'over the web front',
    {
      timeoutMs: 10_000,
      message: 'a key on another port, over the web front',
    },
  );

  // The control: deleted, the key stops over the web front too.
  assert.equal((await api(cfg, 'DELETE', `/access-keys/${String(key.id)}`)).status, 204);
  await sleep(700); // the enforcer hands the key set to every server, the web front's included
  assert.equal(await echoVia(socks, echoPort, 'still there?', 1500), undefined, 'deleted key refused');

  await m.close();
  closed = true;
  // Restarted without a web front: no web URLs any more.
  const plain = await startManaged(flags(dir), silentLogger);
  t.after(() => plain.close());
  assert.equal(plain.web, undefined);
  const again = await cli(['server', 'access-config', '--data-dir', dir]);
  assert.doesNotMatch(again, /plugin=v2ray-plugin/);
});
