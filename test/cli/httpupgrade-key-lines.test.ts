// The HTTPUpgrade key where keys are printed: `ladder server`'s banner (a plain front, the CLI as
// a user runs it), `keys url` and `server access-config` (the endpoint a managed server saved) each
// print a v2ray-plugin URL at the secret path's /up with mihomo's `v2ray-http-upgrade`, after the
// WebSocket one; `ladder client --key` with the banner's URL says "over HTTPUpgrade" and carries a
// 256 KiB echo through the front. Before: no such line anywhere (the form was only documented).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../api/helpers.js';
import { inproc } from '../api/keys-inproc.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { echoThroughCliClient, run, unmanagedWeb, waitForStdout } from '../helpers/cli-run.js';
import { runLadder } from '../helpers/ladder-run.js';
import { freePort, startEcho } from '../helpers/net.js';
import { managedServerArgv } from '../helpers/peers.js';

const UP_URL = /ss:\/\/\S+v2ray-http-upgrade\S*/;

test('the banner prints the HTTPUpgrade URL; ladder client carries a connection over it', async () => {
  const srv = run(unmanagedWeb('httpupgrade-cli-password', '--allow-private'));
  const echo = await startEcho();
  try {
    const [url] = await waitForStdout(srv, UP_URL, 30_000);
    assert.match(
      srv.stdout(),
      /over HTTPUpgrade \(ladder client, Clash\/mihomo; Xray\/v2rayN\/v2rayNG: the subscription's v2ray-json format\):\n {2}ss:\/\/\S+v2ray-http-upgrade/,
    );
    const opts = decodeURIComponent(/plugin=([^#&]+)/.exec(url)![1]!);
    assert.match(opts, /^v2ray-plugin;mode=websocket;path=\/\S+\/up;host=[^;]+;v2ray-http-upgrade$/);
    assert.match(await echoThroughCliClient(url, echo.port, 256 * 1024), /over HTTPUpgrade/);
  } finally {
    srv.child.kill('SIGKILL');
    await echo.close();
  }
});

async function printed(t: TestContext): Promise<Map<string, string>> {
  const dir = tempDir(t);
  const store = await openStore(parseStoreLocation(undefined, dir), {
    defaults: { hostname: 'origin.example', port: 8388 },
  });
  await store.close();
  writeFileSync(
    join(dir, 'web-endpoint.json'),
    JSON.stringify({ host: 'cdn.example.net', port: 443, path: '/S3cretPathForCdn', tls: true, mux: true }),
  );
  const d = ['--data-dir', dir];
  const out = new Map<string, string>();
  assert.equal((await inproc(['keys', 'add', '--name', 'A', ...d])).code, 0);
  const url = await inproc(['keys', 'url', '0', '--no-qr', ...d]);
  assert.equal(url.code, 0, url.stderr);
  out.set('keys url', url.stdout);
  const cfg = await runLadder(['server', 'access-config', ...d], { killAfterMs: 45_000 });
  assert.equal(cfg.code, 0, cfg.stderr);
  out.set('server access-config', cfg.stdout);
  return out;
}

test('keys url and server access-config print the HTTPUpgrade URL at /SECRET/up, after the WebSocket one', async (t) => {
  const want =
    'ss://[^\\s"]+@cdn\\.example\\.net:443/\\?plugin=v2ray-plugin%3Bmode%3Dwebsocket%3Bpath%3D%2FS3cretPathForCdn%2Fup%3Bhost%3Dcdn\\.example\\.net%3Btls%3Bv2ray-http-upgrade#A%20\\(HTTPUpgrade\\)';
  for (const [where, text] of await printed(t)) {
    assert.match(text, new RegExp(want), `${where}: ${text}`);
    assert.ok(
      text.indexOf('v2ray-http-upgrade') > text.indexOf('%2FS3cretPathForCdn%3B'),
      `${where}: after the WebSocket URL`,
    );
  }
});

test("the managed server's banner prints the first key's HTTPUpgrade URL after its WebSocket one", async (t) => {
  const dir = tempDir(t);
  const r = run(
    await managedServerArgv(dir, await freePort(), ['--web-port', '0', '--web-host', '127.0.0.1']),
  );
  try {
    await waitForStdout(r, /Ctrl-C to stop/, 30_000);
    assert.match(
      r.stdout(),
      /over the web front \(.*\n {2}ss:\/\/\S+plugin=v2ray-plugin\S+\n {2}over HTTPUpgrade \(ladder client, Clash\/mihomo;[^\n]*\n {2}ss:\/\/\S+%2Fup%3Bhost%3D\S+v2ray-http-upgrade#Initial%20key%20\(HTTPUpgrade\)\n/,
    );
  } finally {
    r.child.kill('SIGKILL');
  }
});
