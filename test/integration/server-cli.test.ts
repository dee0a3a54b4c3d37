import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { run, waitForStdout } from '../helpers/cli-run.js';
import { seeHelp } from '../helpers/ladder-run.js';
import { LADDER_BIN, which } from '../helpers/peers.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { cleanEnv } from '../helpers/clean-env.js';

describe('ladder server (CLI)', () => {
  let echo: net.Server;
  let echoPort: number;
  const dir = mkdtempSync(join(tmpdir(), 'ladder-server-cli-'));

  before(async () => {
    echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => s.destroy());
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    echoPort = (echo.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => echo.close(() => r())));

  it('--password: the URL is not printed when the output is not a terminal (a log would keep it)', async () => {
    const password = randomBytes(24).toString('base64url');
    const r = run(['server', '--port', '0', '--host', '127.0.0.1', '--password', password], { cwd: dir });
    try {
      await waitForStdout(r, /access URL not printed: the output is not a terminal[^\n]*--show-urls/);
      assert.doesNotMatch(r.stdout(), /ss:\/\//);
      assert.ok(!r.stdout().includes(password) && !r.stderr().includes(password));
      assert.ok(
        !r.stdout().includes(Buffer.from(`chacha20-ietf-poly1305:${password}`).toString('base64url')),
      );
    } finally {
      r.child.kill('SIGTERM');
      await r.exit;
    }
  });

  it('--password --show-urls: unmanaged, prints URL (no QR code: stdout is not a terminal) and how to try it; relays; stops on SIGTERM; logs no secrets', async () => {
    const password = randomBytes(24).toString('base64url');
    const r = run(
      [
        'server',
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--allow-private',
        '--show-urls',
        '--password',
        password,
      ],
      {
        cwd: dir,
      },
    );
    try {
      const [url] = await waitForStdout(r, /ss:\/\/\S+/);
      const key = parseSsUrl(url);
      assert.equal(key.method, 'chacha20-ietf-poly1305');
      assert.equal(key.password, password);
      assert.equal(key.host, '127.0.0.1');
      assert.match(r.stdout(), /listening on 127\.0\.0\.1:\d+/);
      assert.match(r.stdout(), /unmanaged mode: 1 key from --password .*no store, no management API/);
      assert.match(r.stdout(), /private\/loopback destinations ALLOWED \(--allow-private\)/);
      assert.match(
        r.stdout(),
        /ladder(\.js)? client --key 'ss:\/\//,
        'npx ladder / ladder / node …/bin/ladder.js',
      );
      assert.match(r.stdout(), /curl --proxy socks5h:\/\/127\.0\.0\.1:1080/);
      assert.doesNotMatch(r.stdout(), /[▀▄█]/, 'no QR code when stdout is not a terminal');
      assert.ok(!r.stdout().includes('\u001b'), 'no escape codes when stdout is not a terminal');
      assert.match(r.stdout(), /QR code not drawn: output is not a terminal/);
      const t = await openTestTunnel({
        port: key.port,
        method: key.method,
        password: key.password,
        target: { host: '127.0.0.1', port: echoPort },
        initial: Buffer.from('via cli'),
      });
      assert.equal((await t.read(7)).toString(), 'via cli');
      t.end();
      await t.closed;
      r.child.kill('SIGTERM');
      assert.equal(await r.exit, 0);
      const logs = r.stderr();
      assert.ok(!logs.includes(key.password), 'password in logs');
      assert.ok(!logs.includes('ss://'), 'URL in logs');
      assert.ok(!logs.includes(String(echoPort)), 'destination in logs');
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  it('--config with short idle timeout: serves every key; a probe is held until the idle timeout, then FIN', async () => {
    const f = join(dir, 'ok.json');
    writeFileSync(
      f,
      JSON.stringify({
        port: 0,
        host: '127.0.0.1',
        keys: [
          { id: 'a', method: 'aes-128-gcm', password: 'pa' },
          { id: 'b', method: 'aes-256-gcm', password: 'pb' },
        ],
        timeouts: { idleSeconds: 1 },
        allowPrivateDestinations: true,
      }),
    );
    const r = run(['server', '--config', f]);
    try {
      const m = await waitForStdout(r, /listening on 127\.0\.0\.1:(\d+)/);
      const port = Number(m[1]);
      assert.doesNotMatch(r.stdout(), /ss:\/\//, 'config mode prints no URLs by default');
      const t = await openTestTunnel({
        port,
        method: 'aes-256-gcm',
        password: 'pb',
        target: { host: '127.0.0.1', port: echoPort },
        initial: Buffer.from('b!'),
      });
      assert.equal((await t.read(2)).toString(), 'b!');
      t.end();
      const started = Date.now();
      const outcome = await new Promise<string>((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        let kind = 'none';
        s.on('connect', () => s.write(randomBytes(221)));
        s.on('data', () => (kind = 'data'));
        s.on('end', () => {
          if (kind === 'none') kind = 'fin';
          s.end();
        });
        s.on('error', (e: NodeJS.ErrnoException) => (kind = e.code ?? 'error'));
        s.on('close', () => resolve(kind));
      });
      assert.equal(outcome, 'fin');
      assert.ok(Date.now() - started >= 900, `closed after ${Date.now() - started} ms`);
      r.child.kill('SIGINT');
      assert.equal(await r.exit, 0);
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  const usageErrors: [string, string[], RegExp, (string | undefined)?][] = [
    [
      'stream cipher',
      ['server', '--method', 'rc4-md5'],
      /^ladder: --method: method "rc4-md5" is a stream cipher .*refused/,
    ],
    ['bad port', ['server', '--port', '99999'], /^ladder: --port must be an integer in 0\.\.65535/],
    [
      'config + password',
      ['server', '--config', 'x.json', '--password', 'p'],
      /cannot be combined with --config/,
    ],
    [
      'missing config',
      ['server', '--config', '/nonexistent/ladder.json'],
      /^ladder: \/nonexistent\/ladder\.json: no such file$/,
    ],
    ['bad log level', ['server', '--log-level', 'loud'], /--log-level must be one of/],
    ['unknown flag', ['server', '--bogus'], /^ladder: unknown option '--bogus' /, 'server'],
    [
      'missing flag value',
      ['server', '--port'],
      /^ladder: option '--port <port>' argument missing /,
      'server',
    ],
    [
      'bad --public-host',
      ['server', '--public-host', 'a b'],
      /--public-host must be an IP address or a DNS name/,
    ],
    [
      'a managed-only flag with --password',
      ['server', '--password', 'p', '--data-dir', 'd'],
      /^ladder: --data-dir is for the managed server \(keys in a store\), but --password runs the given keys without a store: drop one of them$/,
    ],
    [
      '--no-metrics with --config',
      ['server', '--config', 'x.json', '--no-metrics'],
      /^ladder: --no-metrics is for the managed server .* but --config runs/,
    ],
    [
      '--method with --config',
      ['server', '--config', 'x.json', '--method', 'aes-128-gcm'],
      /each key in the file names its method/,
    ],
    [
      '--show-urls in managed mode',
      ['server', '--show-urls'],
      /^ladder: --show-urls is for the unmanaged server \(--password, --config\); the managed server prints/,
    ],
    [
      '--decoy near miss of builtin',
      ['server', '--password', 'x'.repeat(22), '--port', '0', '--web-port', '0', '--decoy', 'bulitin'],
      /^ladder: --decoy bulitin: not a directory \(did you mean builtin\?\)$/,
    ],
    [
      'access-config: unknown flag',
      ['server', 'access-config', '--bogus'],
      /^ladder: unknown option '--bogus' /,
      'server access-config',
    ],
  ];
  for (const [name, args, re, help] of usageErrors) {
    it(`usage error, exit 2: ${name}`, async () => {
      const r = run(args, { cwd: dir }); // managed-mode refusals must not create ./.ladder anywhere
      assert.equal(await r.exit, 2);
      assert.ok(!existsSync(join(dir, '.ladder')), 'no store created on a usage error');
      const err = r.stderr().trim();
      assert.equal(err.split('\n').length, 1, err);
      assert.match(err, re);
      // A commander error names the help of the command that was run, as run from `dir`.
      if (help !== undefined) assert.match(err, new RegExp(seeHelp(help, dir)));
    });
  }

  it('usage error, exit 2: config names the field and hides the password', async () => {
    const f = join(dir, 'bad.json');
    writeFileSync(
      f,
      JSON.stringify({
        keys: [
          { id: 'a', method: 'aes-128-gcm', password: 'topsecret-1' },
          { id: 'b', method: 'rc4-md5', password: 'topsecret-2' },
        ],
      }),
    );
    const r = run(['server', '--config', f]);
    assert.equal(await r.exit, 2);
    const err = r.stderr().trim();
    assert.equal(err.split('\n').length, 1, err);
    assert.ok(err.startsWith(`ladder: ${f}: keys[1].method: method "rc4-md5" is a stream cipher`), err);
    assert.ok(!err.includes('topsecret'));
  });
});

describe('ladder server on a port below 1024 without the privilege (CLI)', () => {
  const root = process.getuid?.() === 0;
  const runuser = which('runuser');
  it('says what the port needs: root or CAP_NET_BIND_SERVICE', (t) => {
    // As root the port would open: the server is started as nobody through runuser.
    if (!requireOrSkip(t, !root || runuser !== undefined, 'runuser (util-linux) to drop root')) return;
    const args = [LADDER_BIN, 'server', '--password', 'x'.repeat(22), '--host', '127.0.0.1', '--port', '1'];
    const cmd = root
      ? [runuser!, '-u', 'nobody', '--', process.execPath, ...args]
      : [process.execPath, ...args];
    const r = spawnSync(cmd[0]!, cmd.slice(1), {
      cwd: tmpdir(),
      env: cleanEnv({ LADDER_LOG_LEVEL: 'silent' }),
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 2, `${r.stdout}${r.stderr}`);
    assert.match(
      r.stderr,
      /^ladder: cannot listen on 127\.0\.0\.1:1: EACCES \(ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: .*AmbientCapabilities=CAP_NET_BIND_SERVICE.*choose a port from 1024 up\)\n$/,
    );
  });
});
