/**
 * `ladder client --config s.json` with Ladder's own SIP008 subscription, as the README has a user
 * save it (`curl …/sub/TOKEN/sip008 > s.json`): a managed server with a web front lists the web
 * entry first (`plugin: v2ray-plugin`, `plugin_opts`), and the client started from the file
 * carries an echo (hash compared), also from the web entry alone. Negative control: the web entry
 * with another secret path carries nothing; an unknown plugin is refused in one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startManaged } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { tempDir } from '../api/helpers.js';
import { echoServer, flags } from '../api/managed-helpers.js';
import { run, waitForStdout } from '../helpers/cli-run.js';
import { runLadder } from '../helpers/ladder-run.js';
import { echoVia } from '../helpers/transfer.js';

type Json = Record<string, unknown>;

/** Start `ladder client --config file`, echo once through its SOCKS5 port, stop it. */
async function echoThroughClient(
  file: string,
  stateDir: string,
  echoPort: number,
  timeoutMs: number,
): Promise<boolean> {
  const r = run(['client', '--config', file, '--socks', '127.0.0.1:0', '--state-dir', stateDir]);
  try {
    const m = await waitForStdout(r, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/);
    const body = randomBytes(20_000);
    try {
      const e = await echoVia(
        { proxyPort: Number(m[1]) },
        { host: '127.0.0.1', port: echoPort },
        body,
        timeoutMs,
      );
      return e.gotSha.equals(e.sentSha);
    } catch {
      return false;
    }
  } finally {
    r.child.kill('SIGTERM');
    await r.exit;
  }
}

test("ladder client --config with Ladder's SIP008 subscription (web entry with v2ray-plugin first) carries traffic", async (t) => {
  const dir = tempDir(t);
  const echoPort = await echoServer(t);
  const m = await startManaged(
    { ...flags(dir), dynamicListen: '127.0.0.1:0', webPort: '0', webHost: '127.0.0.1' },
    silentLogger,
  );
  t.after(() => m.close());
  assert.ok(m.web && m.dynamicAddress);
  const key = (await m.store.listKeys())[0]!;
  const res = await fetch(`${m.dynamicAddress}/sub/${key.accessToken}/sip008`);
  assert.equal(res.status, 200);
  const text = await res.text();
  const doc = JSON.parse(text) as { servers: Json[] };
  const web = doc.servers[0]!;
  assert.equal(web.plugin, 'v2ray-plugin', 'the web entry comes first');
  assert.equal(web.server_port, m.web.service.front.port);

  const whole = join(dir, 's.json');
  writeFileSync(whole, text);
  assert.ok(await echoThroughClient(whole, join(dir, 'st1'), echoPort, 20_000), 'the whole subscription');

  // The web entry alone: the v2ray-plugin options are what carried it.
  const webOnly = join(dir, 'web.json');
  writeFileSync(webOnly, JSON.stringify({ ...doc, servers: [web] }));
  assert.ok(await echoThroughClient(webOnly, join(dir, 'st2'), echoPort, 20_000), 'the web entry alone');

  // Negative control: another secret path reaches the decoy, not the tunnel.
  const wrong = join(dir, 'wrong.json');
  const opts = String(web.plugin_opts).replace(/path=[^;]*/, 'path=/not-the-secret');
  assert.notEqual(opts, web.plugin_opts);
  writeFileSync(wrong, JSON.stringify({ servers: [{ ...web, plugin_opts: opts }] }));
  assert.equal(await echoThroughClient(wrong, join(dir, 'st3'), echoPort, 3000), false);

  // An unknown plugin stays refused: exit 2, one line naming the file and entry, no password.
  const other = join(dir, 'other.json');
  writeFileSync(other, JSON.stringify({ servers: [{ ...web, plugin: 'obfs-local' }] }));
  const r = await runLadder(['client', '--config', other, '--socks', '127.0.0.1:0']);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr.trim(),
    /^ladder: .*other\.json: servers\[0\]\.plugin: plugin "obfs-local" is not supported \(only v2ray-plugin and shadow-tls\)$/,
  );
  assert.ok(!r.stderr.includes(String(web.password)));
});
