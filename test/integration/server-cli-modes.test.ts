// The server's modes as a user meets them through the CLI: the managed server stays managed when
// data-plane flags are added (the key printed at the first start keeps working after a restart
// with --allow-private, the API stays up), the banner states the mode, the store and the
// private-destination policy, no JSON log line comes before it, no escape codes go to a file, and
// `ladder server access-config` reprints what a restart under systemd does not.
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { LADDER_BIN } from '../helpers/peers.js';
import { freePort, startEcho } from '../helpers/net.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { run } from '../helpers/cli-run.js';
import { waitFor } from '../helpers/wait.js';
import { cleanEnv } from '../helpers/clean-env.js';

/** `ladder server ARGS` with stdout and stderr into one file, as under systemd or `> log 2>&1`. */
async function startToFile(dir: string, name: string, args: string[]) {
  const file = join(dir, name);
  const fd = openSync(file, 'w');
  const env = cleanEnv(); // no LADDER_PASSWORD of the developer's
  delete env.LADDER_LOG_LEVEL;
  const child = spawn(process.execPath, [LADDER_BIN, 'server', ...args], {
    cwd: dir,
    env,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const text = (): string => readFileSync(file, 'utf8');
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`server exited: ${text()}`);
      return text().includes('Ctrl-C to stop.') && /"msg":"listening"/.test(text());
    },
    { timeoutMs: 30_000, intervalMs: 50, message: () => `banner and logs: ${text()}` },
  );
  return {
    text,
    pid: child.pid!,
    stop: async (): Promise<number | null> => {
      child.kill('SIGTERM');
      return exit;
    },
  };
}

function getJson(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

test('managed stays managed with --allow-private: same store, same key, API up; banner first; no escape codes in a file; access-config reprints', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-modes-'));
  const echo = await startEcho();
  t.after(() => echo.close());
  const port = await freePort();
  const common = [
    '--data-dir',
    join(dir, 'data'),
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--public-host',
    '127.0.0.1',
  ];
  const common2 = ['--api-host', '127.0.0.1', '--metrics-port', '0'];

  // First start, without --allow-private.
  const first = await startToFile(dir, 'first.log', [...common, ...common2]);
  const out1 = first.text();
  assert.equal(await first.stop(), 0);
  const lines = out1.split('\n');
  assert.equal(lines[0], 'Ladder server — managed mode (key store, management API, metrics)', out1);
  const bannerEnd = lines.indexOf('Ctrl-C to stop.');
  assert.ok(
    lines.slice(0, bannerEnd).every((l) => !l.startsWith('{"level"')),
    `no JSON log line before the banner:\n${out1}`,
  );
  assert.match(
    out1,
    new RegExp(
      `store: ${join(dir, 'data', 'ladder.db').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(SQLite\\)`,
    ),
  );
  assert.match(out1, new RegExp(`Shadowsocks on port ${port} \\(TCP and UDP\\)`));
  assert.match(out1, /private\/loopback destinations refused \(a local test needs --allow-private\)/);
  assert.doesNotMatch(out1, /[▀▄█]/, 'no QR code in a file');
  assert.ok(!out1.includes('\u001b'), 'no escape codes in a file');
  assert.match(
    out1,
    /QR code not drawn: output is not a terminal; for a picture: .*keys url 0 --qr-png FILE/,
  );
  assert.match(
    out1,
    /dynamic: ssconf:\/\/\S+\?certSha256=[0-9A-F]{64}#\S+\n\s+ladder client reads it as printed \(it pins the self-signed API certificate by \?certSha256\); Outline clients need a trusted certificate/,
  );
  assert.match(out1, /server access-config --data-dir/);
  const url = /ss:\/\/\S+/.exec(out1)![0];
  const cfgLine = lines.find((l) => l.startsWith('{"apiUrl":'))!;
  const cfg = JSON.parse(cfgLine) as { apiUrl: string };

  // Restart with --allow-private: still managed, same key, API still answering.
  const second = await startToFile(dir, 'second.log', [...common, ...common2, '--allow-private']);
  try {
    const out2 = second.text();
    assert.match(out2, /^Ladder server — managed mode/);
    assert.match(out2, /private\/loopback destinations ALLOWED \(--allow-private\)/);
    assert.doesNotMatch(out2, /ss:\/\/|apiUrl/, 'no secrets on a restart to a file');
    assert.match(out2, /server access-config --data-dir/);
    assert.equal(await getJson(`${cfg.apiUrl}/server`), 200, 'management API up after the restart');
    const key = parseSsUrl(url);
    const tun = await openTestTunnel({
      port: key.port,
      method: key.method,
      password: key.password,
      target: { host: '127.0.0.1', port: echo.port },
      initial: Buffer.from('same key'),
    });
    assert.equal((await tun.read(8)).toString(), 'same key', 'the first key works after the restart');
    tun.end();

    // Linux: once workers relay, the management thread (the main one) runs at a lower priority
    // than the relaying threads, so a busy machine serves the tunnel first. The workers started at
    // that first tunnel (on demand): the main thread is lowered once every one of them listens.
    if (process.platform === 'linux') {
      const nice = (tid: string): number =>
        Number(readFileSync(`/proc/${second.pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
      const seen = (): string | undefined => {
        const main = nice(String(second.pid));
        const tids = readdirSync(`/proc/${second.pid}/task`).filter((t) => t !== String(second.pid));
        const others = tids.flatMap((t) => {
          try {
            return [nice(t)];
          } catch {
            return []; // a thread that ended meanwhile
          }
        });
        return others.some((n) => n === main - 5)
          ? undefined
          : `main thread ${main}, others ${others.join(',')}`;
      };
      await waitFor(() => (seen() === undefined ? true : undefined), {
        timeoutMs: 15_000,
        message: 'the main thread lowered once the workers run',
      }).catch(() => assert.fail(seen()));
    }
  } finally {
    assert.equal(await second.stop(), 0);
  }

  // access-config: the same Outline line and the key's URL, from the store.
  const ac = run(['server', 'access-config', '--data-dir', join(dir, 'data')], { cwd: dir });
  assert.equal(await ac.exit, 0, ac.stderr());
  assert.ok(ac.stdout().split('\n').includes(cfgLine), ac.stdout());
  assert.ok(ac.stdout().includes(url), 'the key URL');
  assert.match(ac.stdout(), /0 "Initial key"/);
  assert.match(ac.stdout(), /Outline clients need a trusted certificate/);
  assert.match(
    ac.stdout(),
    /dynamic: ssconf:\/\/\S+\?certSha256=[0-9A-F]{64}#/,
    'access-config prints the pinned form too',
  );

  const missing = run(['server', 'access-config', '--data-dir', join(dir, 'nope')], { cwd: dir });
  assert.equal(await missing.exit, 2);
  assert.match(missing.stderr(), /^ladder: no store at .*nope.*ladder\.db: start the server once/);
  assert.equal(missing.stderr().trim().split('\n').length, 1);
});

test('LADDER_PASSWORD names a key source: unmanaged, no store created', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-modes-'));
  const r = run(['server', '--port', '0', '--host', '127.0.0.1'], {
    cwd: dir,
    env: { LADDER_PASSWORD: 'a-long-test-password' },
  });
  t.after(() => r.child.kill('SIGKILL'));
  await waitFor(() => r.stdout().includes('Ctrl-C to stop.'), {
    timeoutMs: 30_000,
    intervalMs: 50,
    message: () => r.stderr(),
  });
  assert.match(r.stdout(), /unmanaged mode: 1 key from LADDER_PASSWORD/);
  assert.match(r.stdout(), /private\/loopback destinations refused \(a local test needs --allow-private\)/);
  r.child.kill('SIGTERM');
  assert.equal(await r.exit, 0);
  const { existsSync } = await import('node:fs');
  assert.ok(!existsSync(join(dir, '.ladder')), 'no store');
});

test('a restart with another --port: the banner names the port the existing key is still on, or that it cannot be opened', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-modes-'));
  const keyPort = await freePort();
  const common = ['--data-dir', join(dir, 'data'), '--host', '127.0.0.1', '--api-host', '127.0.0.1'];
  const more = ['--api-port', '0', '--no-metrics', '--no-udp'];
  const first = await startToFile(dir, 'first.log', [...common, '--port', String(keyPort), ...more]);
  assert.equal(await first.stop(), 0);
  // Control: the same port again says nothing more.
  const same = await startToFile(dir, 'same.log', [...common, '--port', String(keyPort), ...more]);
  assert.equal(await same.stop(), 0);
  assert.doesNotMatch(same.text(), /also on the port|cannot listen on key port/);

  const newPort = await freePort();
  const moved = await startToFile(dir, 'moved.log', [...common, '--port', String(newPort), ...more]);
  assert.equal(await moved.stop(), 0);
  assert.match(moved.text(), new RegExp(`Shadowsocks on port ${newPort} `));
  assert.match(
    moved.text(),
    // New keys stay on the first start's port (the store's), not on this --port.
    new RegExp(`also on the port\\(s\\) existing keys name: ${keyPort} \\(new keys get port ${keyPort}\\)`),
  );

  // The key's port held by another program: said in the banner, not only in a JSON log line.
  const net = await import('node:net');
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(keyPort, '127.0.0.1', r));
  t.after(() => holder.close());
  const blocked = await startToFile(dir, 'blocked.log', [...common, '--port', String(newPort), ...more]);
  assert.equal(await blocked.stop(), 0);
  assert.match(
    blocked.text(),
    new RegExp(
      `cannot listen on key port ${keyPort} \\(EADDRINUSE\\): the keys on it cannot connect until it is free`,
    ),
  );
});

test('the API or an explicit metrics port held by another program: one line, before anything listens', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-modes-'));
  const net = await import('node:net');
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.after(() => holder.close());
  const busy = (holder.address() as { port: number }).port;
  const base = ['server', '--data-dir', join(dir, 'data'), '--host', '127.0.0.1', '--port', '0', '--no-udp'];
  for (const [extra, re] of [
    [
      ['--api-host', '127.0.0.1', '--api-port', String(busy), '--no-metrics'],
      new RegExp(
        `^ladder: cannot listen for the management API on port ${busy}: EADDRINUSE \\(another process listens there\\); choose another with --api-port$`,
      ),
    ],
    [
      ['--api-host', '127.0.0.1', '--api-port', '0', '--metrics-port', String(busy)],
      new RegExp(
        `^ladder: cannot serve metrics on port ${busy}: EADDRINUSE \\(another process listens there\\); choose another with --metrics-port, or --no-metrics$`,
      ),
    ],
  ] as const) {
    const r = run([...base, ...extra]); // the default log level: a "listening" line would show
    assert.equal(await r.exit, 2, r.stderr());
    assert.equal(r.stderr().trimEnd().split('\n').length, 1, r.stderr());
    assert.match(r.stderr().trimEnd(), re);
  }
});
