/**
 * Issue 13 item 1, end to end through the real CLI: `ladder client --key ssconf://…` against a
 * running managed server (its self-signed API certificate pinned in the key) carries traffic;
 * a hostname change through the API moves the running client to the new address without a
 * restart; an over-quota key makes the client print the server's own message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { startManaged } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { tempDir } from '../api/helpers.js';
import { api, echoServer, flags } from '../api/managed-helpers.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { runLadder } from '../helpers/ladder-run.js';
import { readExactly } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';
import { waitFor } from '../helpers/wait.js';

/** A TCP forwarder on 127.0.0.2:port to 127.0.0.1:port that counts its connections. */
async function forwarder(
  port: number,
  t: { after: (fn: () => Promise<void>) => void },
): Promise<{ accepted: number }> {
  const counter = { accepted: 0 };
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((a) => {
    counter.accepted++;
    const b = net.connect(port, '127.0.0.1');
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('error', () => {
        a.destroy();
        b.destroy();
      });
    }
    a.pipe(b).pipe(a);
  });
  await new Promise<void>((r) => srv.listen(port, '127.0.0.2', r));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  });
  return counter;
}

async function echoVia(socksPort: number, echoPort: number, word: string): Promise<string> {
  const s = await socks5Connect({ proxyPort: socksPort, host: '127.0.0.1', port: echoPort });
  try {
    s.write(word);
    return (await readExactly(s, word.length, 10_000)).toString();
  } finally {
    s.destroy();
  }
}

test('ladder client --key ssconf://: traffic, moved by a hostname change without restart, over quota shows the server message', async (t) => {
  const dir = tempDir(t);
  const stateDir = join(dir, 'state');
  const echoPort = await echoServer(t);
  const m = await startManaged(flags(dir), silentLogger, { usageFlushMs: 200, enforceIntervalMs: 300 });
  t.after(() => m.close());
  const cfg = JSON.parse(m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'))!) as {
    apiUrl: string;
    certSha256: string;
  };
  const created = await api(cfg, 'POST', '/access-keys', { name: 'dyn' });
  assert.equal(created.status, 201);
  const id = (JSON.parse(created.body) as { id: string }).id;
  const token = (await m.store.listKeys()).find((k) => k.id === id)!.accessToken;
  const apiPort = new URL(cfg.apiUrl).port;
  const ssconf = `ssconf://127.0.0.1:${apiPort}/access/${token}?certSha256=${cfg.certSha256}#dyn`;
  const procs: Run[] = [];
  t.after(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null) {
        p.child.kill('SIGTERM');
        await p.exit;
      }
    }
  });
  const client = (key: string): Run => {
    const r = run(
      ['client', '--key', key, '--socks', '127.0.0.1:0', '--refresh', '1', '--state-dir', stateDir],
      {
        env: { LADDER_LOG_LEVEL: 'info' },
      },
    );
    procs.push(r);
    return r;
  };

  // Negative control first: without the pin the self-signed certificate is refused, in one line.
  // (The access config prints the fingerprint in upper-case hex: the pattern must match either
  // case, or a fingerprint starting with A-F would leave the pin in place.)
  const unpinnedKey = ssconf.replace(/\?certSha256=[0-9a-f]+/i, '');
  assert.doesNotMatch(unpinnedKey, /certSha256/i);
  const unpinned = await runLadder(['client', '--key', unpinnedKey], { killAfterMs: 20_000 });
  assert.equal(unpinned.code, 2, unpinned.stderr);
  assert.match(unpinned.stderr, /^ladder: --key: the key server's certificate is not trusted .*certSha256/);
  assert.equal(unpinned.stderr.trimEnd().split('\n').length, 1);
  assert.doesNotMatch(unpinned.stderr, new RegExp(token), 'the secret path is not echoed');

  // 1. Traffic through the dynamic key.
  const c = client(ssconf);
  const socksPort = Number((await waitForStdout(c, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/))[1]);
  assert.match(c.stdout(), /^ladder client: dynamic key "dyn", chacha20-ietf-poly1305 tunnel/);
  assert.equal(await echoVia(socksPort, echoPort, 'hello'), 'hello');
  assert.doesNotMatch(
    c.stderr(),
    new RegExp(`${token}|127\\.0\\.0\\.1:${m.plane.address.port}`),
    'logs name no key or server',
  );

  // 2. The operator moves the server: new connections go to the new address, same process.
  const moved = await forwarder(m.plane.address.port, t);
  assert.equal(
    (await api(cfg, 'PUT', '/server/hostname-for-access-keys', { hostname: '127.0.0.2' })).status,
    204,
  );
  await waitFor(() => /dynamic key changed: new connections use the new endpoints/.test(c.stderr()), {
    timeoutMs: 10_000,
    message: () => `the client notices the change: ${c.stderr()}`,
  });
  assert.equal(await echoVia(socksPort, echoPort, 'moved'), 'moved');
  assert.equal(moved.accepted, 1, 'the next connection went to the new address');
  assert.equal(c.child.exitCode, null, 'no restart');

  // --status of the running client.
  const st = await runLadder(['client', '--status', '--state-dir', stateDir], { killAfterMs: 20_000 });
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, new RegExp(`pid ${c.child.pid}: running`));
  assert.match(st.stdout, /key: dynamic key \(outline-json\), fetched \d+ s ago/);
  assert.match(st.stdout, /using: endpoint 1 \(shadowsocks, port \d+\)/);

  // 3. Over quota: the running client shows the server's words and refuses new connections.
  assert.equal((await api(cfg, 'PUT', `/access-keys/${id}/data-limit`, { limit: { bytes: 1 } })).status, 204);
  await waitFor(() => /server says: Quota exceeded — Used [\d.]+ [KMG]?i?B out of 1 B/.test(c.stderr()), {
    timeoutMs: 10_000,
    message: () => `the server's message in the log: ${c.stderr()}`,
  });
  await assert.rejects(echoVia(socksPort, echoPort, 'nope'), 'refused while over quota');

  // A client started with the over-quota key prints the message at once and keeps running.
  const late = client(ssconf);
  await waitForStdout(
    late,
    /^ladder client: server says: Quota exceeded — Used [\d.]+ [KMG]?i?B out of 1 B$/m,
  );
  await waitForStdout(
    late,
    /dynamic key "dyn": refused by the server for now, fetched again until it accepts the key/,
  );

  // Lifting the limit lets the running client in again without a restart.
  assert.equal((await api(cfg, 'DELETE', `/access-keys/${id}/data-limit`)).status, 204);
  await waitFor(() => /the server accepts the key again/.test(c.stderr()), {
    timeoutMs: 10_000,
    message: () => `accepted again: ${c.stderr()}`,
  });
  assert.equal(await echoVia(socksPort, echoPort, 'again'), 'again');
});

test('ladder client --key with a malformed dynamic key: one line naming --key, exit 2, nothing echoed', async () => {
  const token = 'Sup3rS3cretT0ken';
  for (const [key, re] of [
    ['http://example.invalid/k', /^ladder: --key: a dynamic key must be ssconf:\/\/ or https:\/\//],
    [
      `ssconf://127.0.0.1:9/access/${token}?certSha256=zz`,
      /^ladder: --key: the dynamic key's certSha256 must be 64 hex digits/,
    ],
  ] as const) {
    const r = await runLadder(['client', '--key', key], { killAfterMs: 20_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, new RegExp(token), 'the secret path is not echoed');
  }
});
