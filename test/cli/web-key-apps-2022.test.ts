/**
 * Which apps a web front's WebSocket key is printed for: shadowsocks-libev's ss-local has no
 * Shadowsocks-2022 ciphers (README: `ss-local` says `invalid cipher name`), so a 2022 key names
 * shadowsocks-rust's sslocal with the same plugin instead, in the unmanaged banner and in
 * `keys url`. Before, both told a 2022 key's holder to use ss-local + v2ray-plugin.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../api/helpers.js';
import { inproc } from '../api/keys-inproc.js';
import { run, unmanagedWeb, waitForStdout } from '../helpers/cli-run.js';

const PSK16 = 'AAECAwQFBgcICQoLDA0ODw=='; // 16 bytes, base64: a 2022-blake3-aes-128-gcm key

test('the unmanaged banner: a 2022 key over the web front names sslocal, not ss-local', async () => {
  const srv = run([...unmanagedWeb(PSK16), '--method', '2022-blake3-aes-128-gcm']);
  try {
    await waitForStdout(srv, /Ctrl-C to stop/, 30_000);
    assert.match(
      srv.stdout(),
      /\n {2}over the web front \(sslocal \(shadowsocks-rust\) \+ v2ray-plugin, v2rayNG, Clash\/mihomo, sing-box\):\n {2}ss:\/\/2022-blake3-aes-128-gcm:/,
    );
    assert.doesNotMatch(srv.stdout(), /ss-local/);
  } finally {
    srv.child.kill('SIGKILL');
  }
});

test('keys url: ss-local for a 2017 key over the web front, sslocal for a 2022 one', async (t) => {
  const dir = tempDir(t);
  const d = ['--data-dir', dir];
  assert.equal((await inproc(['keys', '--init', 'add', '--name', 'old', ...d])).code, 0);
  assert.equal(
    (await inproc(['keys', 'add', '--name', 'new', '--method', '2022-blake3-aes-256-gcm', ...d])).code,
    0,
  );
  // The endpoint a managed server with a web front saves in its data directory.
  const front = { host: 'front.example', port: 443, path: '/S3cretPathForFront', tls: true, mux: true };
  writeFileSync(join(dir, 'web-endpoint.json'), JSON.stringify(front));
  const line = async (id: string): Promise<string> => {
    const r = await inproc(['keys', 'url', id, '--no-qr', ...d]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').find((l) => l.startsWith('over the web front ('))!;
  };
  assert.equal(
    await line('0'),
    'over the web front (ss-local + v2ray-plugin, v2rayNG, Clash/mihomo, sing-box, ladder client):',
  );
  assert.equal(
    await line('1'),
    'over the web front (sslocal (shadowsocks-rust) + v2ray-plugin, v2rayNG, Clash/mihomo, sing-box, ladder client):',
  );
});
