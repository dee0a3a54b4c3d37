import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';

const BIN = fileURLToPath(new URL('../../bin/ladder.js', import.meta.url));

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

function run(args: string[]): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, LADDER_FROM_SOURCE: '1' };
  delete env.LADDER_LOG_LEVEL;
  delete env.LADDER_PASSWORD;
  const child = spawn(process.execPath, [BIN, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

/** The first match of `re` in the server's stdout; fails at once if the server exits first. */
function waitForStdout(r: Run, re: RegExp, ms = 20_000): Promise<RegExpExecArray> {
  const message = (): string => `${re} in stdout: ${r.stdout()} / stderr: ${r.stderr()}`;
  return waitFor(
    () => {
      const m = re.exec(r.stdout());
      if (!m && r.child.exitCode !== null) throw new Error(`server exited; no ${message()}`);
      return m;
    },
    { timeoutMs: ms, intervalMs: 50, message },
  );
}

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

  it('with no key: generates one, prints URL, QR and how to try it; relays; stops on SIGTERM; logs no secrets', async () => {
    const r = run(['server', '--port', '0', '--host', '127.0.0.1', '--allow-private']);
    try {
      const [url] = await waitForStdout(r, /ss:\/\/\S+/);
      const key = parseSsUrl(url);
      assert.equal(key.method, 'chacha20-ietf-poly1305');
      assert.ok(key.password.length >= 32, 'strong password');
      assert.equal(key.host, '127.0.0.1');
      assert.match(r.stdout(), /listening on 127\.0\.0\.1:\d+/);
      assert.match(r.stdout(), /ladder client --key 'ss:\/\//);
      assert.match(r.stdout(), /curl --proxy socks5h:\/\/127\.0\.0\.1:1080/);
      assert.match(r.stdout(), /[▀▄█]/, 'QR code');
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
    ['unknown flag', ['server', '--bogus'], /^ladder: server: unknown option '--bogus'$/],
    ['missing flag value', ['server', '--port'], /^ladder: server: option '--port <port>' argument missing$/],
    [
      'bad --public-host',
      ['server', '--public-host', 'a b'],
      /--public-host must be an IP address or a DNS name/,
    ],
  ];
  for (const [name, args, re] of usageErrors) {
    it(`usage error, exit 2: ${name}`, async () => {
      const r = run(args);
      assert.equal(await r.exit, 2);
      const err = r.stderr().trim();
      assert.equal(err.split('\n').length, 1, err);
      assert.match(err, re);
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
