/**
 * A key port this server may not listen on (below 1024 for a user without root or
 * CAP_NET_BIND_SERVICE) is refused by the API with a 400 naming `port` and why, as a port held
 * by another program is (409): before, `PUT /server/port-for-new-access-keys` and `POST
 * /access-keys` with such a port answered 204/201 and made keys that could never connect (only a
 * warning in the log, "cannot listen on a key port", EACCES). Control: a free high port is taken.
 * Run as an unprivileged user (as root the server is started as `nobody` through runuser).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/net.js';
import { LADDER_BIN, which } from '../helpers/peers.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { api } from './managed-helpers.js';
import { cleanEnv } from '../helpers/clean-env.js';

const root = process.getuid?.() === 0;
const runuser = which('runuser');
const LOW_PORT = 993;

function unprivilegedPortStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim());
  } catch {
    return 1024;
  }
}

test('the API refuses a key port this server may not listen on, in one 400 naming the port', async (t) => {
  if (!requireOrSkip(t, !root || runuser !== undefined, 'runuser (util-linux) to drop root for this test'))
    return;
  if (!requireOrSkip(t, unprivilegedPortStart() > LOW_PORT, `ports below ${LOW_PORT + 1} privileged here`))
    return;
  const base = mkdtempSync(join(tmpdir(), 'ladder-lowport-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  if (root) chownSync(base, 65534, 65534);
  const args = [LADDER_BIN, 'server', '--data-dir', join(base, 'd'), '--host', '127.0.0.1', '--port', '0'];
  args.push('--api-host', '127.0.0.1', '--api-port', '0', '--no-metrics');
  const cmd = root
    ? [runuser!, '-u', 'nobody', '--', process.execPath, ...args]
    : [process.execPath, ...args];
  const child = spawn(cmd[0]!, cmd.slice(1), { env: cleanEnv({ LADDER_LOG_LEVEL: 'warn' }) });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.after(async () => {
    child.kill('SIGTERM'); // runuser passes it on to the server
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  const line = await waitFor(() => /^\{"apiUrl":.*\}$/m.exec(out)?.[0], {
    timeoutMs: 30_000,
    intervalMs: 50,
    message: () => out,
  });
  const cfg = JSON.parse(line) as { apiUrl: string; certSha256: string };

  const put = await api(cfg, 'PUT', '/server/port-for-new-access-keys', { port: LOW_PORT });
  assert.equal(put.status, 400, put.body);
  const err = JSON.parse(put.body) as { code: string; message: string; field: string };
  assert.equal(err.field, 'port');
  assert.match(err.message, new RegExp(`cannot listen on port ${LOW_PORT}: EACCES \\(ports below 1024 need`));
  const post = await api(cfg, 'POST', '/access-keys', { name: 'low', port: LOW_PORT + 1 });
  assert.equal(post.status, 400, post.body);
  const keys = JSON.parse((await api(cfg, 'GET', '/access-keys')).body) as { accessKeys: unknown[] };
  assert.equal(keys.accessKeys.length, 1, 'no key was made on the refused port');

  // Control: a free high port is accepted.
  const ok = await api(cfg, 'PUT', '/server/port-for-new-access-keys', { port: await freePort() });
  assert.equal(ok.status, 204, ok.body);
});
