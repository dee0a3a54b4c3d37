/**
 * `ladder client` as users run it (bin/ladder.js): one-line errors for bad keys, the listening
 * banner, a tunnel through the real server, logs free of destinations and secrets, and a
 * graceful stop on SIGTERM / SIGINT.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { startClient } from '../../src/client/index.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import type { DataPlane } from '../../src/server/index.js';
import { createLogger } from '../../src/shared/logger.js';
import { readExactly } from '../helpers/net.js';
import { startTestServer, type TestDataPlane } from '../helpers/data-plane.js';
import { LADDER_BIN } from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks5.js';
import { waitFor } from '../helpers/wait.js';
import { cleanEnv } from '../helpers/clean-env.js';

const PASSWORD = `cli-${randomBytes(8).toString('hex')}`;

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, [LADDER_BIN, ...args], {
    env: cleanEnv(env), // no LADDER_KEY of the developer's
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  void exit.then(() => clearTimeout(timer));
  return { child, stdout: () => out, stderr: () => err, exit };
}

const waitForText = (get: () => string, re: RegExp, ms = 20_000): Promise<RegExpExecArray> =>
  waitFor(() => re.exec(get()), { timeoutMs: ms, intervalMs: 25, message: () => `${re}; got:\n${get()}` });

const b64 = (s: string): string => Buffer.from(s).toString('base64url');

describe('ladder client CLI', () => {
  let server: TestDataPlane;
  let plane: DataPlane;
  let echo: TestDataPlane['echo'];

  before(async () => {
    server = await startTestServer({ keys: [{ id: 'k', method: 'aes-256-gcm', secret: PASSWORD }] });
    ({ plane, echo } = server);
  });
  after(async () => {
    await server.close();
  });

  const badKeys: Array<[string, string, RegExp]> = [
    ['stream cipher', `ss://${b64(`rc4-md5:${PASSWORD}`)}@127.0.0.1:8388`, /stream cipher/],
    ['plugin', `ss://${b64(`aes-256-gcm:${PASSWORD}`)}@127.0.0.1:8388/?plugin=obfs-local`, /plugin/],
    ['missing port', `ss://${b64(`aes-256-gcm:${PASSWORD}`)}@127.0.0.1`, /port/],
  ];
  for (const [name, key, re] of badKeys) {
    test(`bad key (${name}): exit 2, one line, no password`, async () => {
      const r = run(['client', '--key', key, '--socks', '127.0.0.1:0']);
      const { code } = await r.exit;
      assert.equal(code, 2);
      const err = r.stderr().trim();
      assert.match(err, /^ladder: --key: /);
      assert.match(err, re);
      assert.equal(err.split('\n').length, 1, err);
      assert.ok(!err.includes(PASSWORD));
    });
  }

  test('a bad value is named where it came from: LADDER_KEY, a config file field', async () => {
    let r = run(['client', '--socks', '127.0.0.1:0'], {
      LADDER_KEY: `ss://${b64(`rc4-md5:${PASSWORD}`)}@127.0.0.1:8388`,
    });
    assert.equal((await r.exit).code, 2);
    assert.match(r.stderr().trim(), /^ladder: LADDER_KEY: .*stream cipher/);
    assert.ok(!r.stderr().includes(PASSWORD));
    const dir = mkdtempSync(join(tmpdir(), 'ladder-cc-'));
    const file = join(dir, 'client.json');
    writeFileSync(file, JSON.stringify({ socks: 'not-an-address' }));
    const key = `ss://${b64(`aes-256-gcm:${PASSWORD}`)}@127.0.0.1:8388`;
    r = run(['client', '--key', key, '--config', file]);
    assert.equal((await r.exit).code, 2);
    assert.equal(r.stderr().trim().split('\n').length, 1, r.stderr());
    assert.match(r.stderr().trim(), /^ladder: \S+client\.json: "socks" "not-an-address": expected host:port/);
    rmSync(dir, { recursive: true, force: true });
  });

  test('no key at all: exit 2 with a hint', async () => {
    const r = run(['client']);
    assert.equal((await r.exit).code, 2);
    assert.match(r.stderr(), /--key is required/);
  });

  test('runs, tunnels, logs nothing private, stops on SIGTERM', async () => {
    const key = formatSsUrl({
      method: 'aes-256-gcm',
      password: PASSWORD,
      host: '127.0.0.1',
      port: plane.address.port,
    });
    // The key through the environment, as the help suggests (keeps it out of ps).
    const r = run(['client', '--socks', '127.0.0.1:0', '--http', '127.0.0.1:0'], { LADDER_KEY: key });
    try {
      const m = await waitForText(r.stdout, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/);
      await waitForText(r.stdout, /HTTP proxy +on 127\.0\.0\.1:\d+/);
      assert.match(r.stdout(), /curl --proxy socks5h:\/\/127\.0\.0\.1:\d+ https:\/\/example\.com/);
      const socksPort = Number(m[1]);
      for (const host of ['127.0.0.1', 'localhost']) {
        const s = await socks5Connect({ proxyPort: socksPort, host, port: echo.port });
        s.write('hello');
        assert.equal((await readExactly(s, 5, 5000)).toString(), 'hello');
        s.destroy();
      }
      r.child.kill('SIGTERM');
      const { code } = await r.exit;
      assert.equal(code, 0, r.stderr());
      const logs = r.stderr();
      assert.match(logs, /client listening/);
      for (const secret of [PASSWORD, key, 'localhost', `:${echo.port}`, `127.0.0.1:${plane.address.port}`]) {
        assert.ok(!logs.includes(secret), `logs contain ${secret}:\n${logs}`);
      }
      assert.ok(!r.stdout().includes(PASSWORD));
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  test('SIGINT stops it too', async () => {
    const key = formatSsUrl({
      method: 'aes-256-gcm',
      password: PASSWORD,
      host: '127.0.0.1',
      port: plane.address.port,
    });
    const r = run(['client', '--key', key, '--socks', '127.0.0.1:0']);
    try {
      await waitForText(r.stdout, /SOCKS5 proxy on/);
      r.child.kill('SIGINT');
      assert.equal((await r.exit).code, 0);
    } finally {
      r.child.kill('SIGKILL');
    }
  });
});

test('default-level logs of a failing tunnel name no destination', async () => {
  const sink = new PassThrough();
  let logs = '';
  sink.on('data', (d: Buffer) => (logs += d.toString()));
  const log = createLogger({ level: 'info', destination: sink });
  // Port 9 on loopback: nothing listens, so every dial fails.
  const key = formatSsUrl({ method: 'aes-128-gcm', password: PASSWORD, host: '127.0.0.1', port: 9 });
  const client = await startClient({ key, socks: '127.0.0.1:0', log });
  try {
    const s = await socks5Connect({
      proxyPort: client.socksAddress!.port,
      host: 'blocked.example',
      port: 443,
    });
    s.on('error', () => {}); // the proxy drops us (RST when our byte is unread): expected
    s.write('x');
    await new Promise<void>((r) => {
      s.once('close', () => r());
      s.resume();
    });
  } finally {
    await client.close();
  }
  assert.match(logs, /tunnel dial failed/);
  assert.match(logs, /"code":"ERR_CONNECT","errno":"ECONNREFUSED"/);
  for (const secret of ['blocked.example', PASSWORD, ':443']) assert.ok(!logs.includes(secret), logs);
});

describe('ladder client CLI: several endpoints, routing, DNS, PAC', () => {
  let server: TestDataPlane;
  let plane: DataPlane;
  let echo: TestDataPlane['echo'];
  let dir: string;
  const key = (port: number, tag?: string): string =>
    formatSsUrl({
      method: 'aes-256-gcm',
      password: PASSWORD,
      host: '127.0.0.1',
      port,
      ...(tag ? { tag } : {}),
    });

  before(async () => {
    server = await startTestServer({ keys: [{ id: 'k', method: 'aes-256-gcm', secret: PASSWORD }] });
    ({ plane, echo } = server);
    dir = mkdtempSync(join(tmpdir(), 'ladder-client-cli-'));
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('--config with two keys, auto routing, rules, DNS and PAC: banner, failover, PAC, private logs', async () => {
    writeFileSync(join(dir, 'rules.txt'), 'ip-cidr,127.0.0.0/8,proxy\ndomain-suffix,home.example,direct\n');
    // The first endpoint refuses connections: the failover dialer moves on within the request.
    const config = {
      keys: [key(9, 'first'), key(plane.address.port, 'second')],
      route: 'auto',
      rules: 'rules.txt',
      dns: '127.0.0.1:0',
    };
    writeFileSync(join(dir, 'client.json'), JSON.stringify(config));
    const r = run([
      'client',
      '--config',
      join(dir, 'client.json'),
      '--state-dir',
      join(dir, 'state'),
      '--socks',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
    ]);
    try {
      const m = await waitForText(r.stdout, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/);
      const h = await waitForText(r.stdout, /PAC file +http:\/\/(127\.0\.0\.1:\d+)\/proxy\.pac/);
      const out = r.stdout();
      assert.match(
        out,
        /2 server endpoints \(failover in order: "first", "second"; what gets through is remembered\)/,
      );
      assert.match(out, /first-packet shaping on/);
      assert.match(out, /routing +auto: .*2 rules from rules\.txt/);
      assert.match(out, /DNS +on 127\.0\.0\.1:\d+.*through the tunnel to 1\.1\.1\.1:53 \(DNS over TCP\)/);
      const s = await socks5Connect({ proxyPort: Number(m[1]), host: '127.0.0.1', port: echo.port });
      s.write('hello');
      assert.equal((await readExactly(s, 5, 10_000)).toString(), 'hello');
      s.destroy();
      const pac = await (await fetch(`http://${h[1]}/proxy.pac`)).text();
      assert.match(pac, /FindProxyForURL/);
      assert.match(pac, new RegExp(`SOCKS5 127\\.0\\.0\\.1:${m[1]}`));
      assert.match(pac, /home\.example/);
      r.child.kill('SIGTERM');
      assert.equal((await r.exit).code, 0, r.stderr());
      const logs = r.stderr();
      assert.match(logs, /"endpoint":1,"kind":"connect-failed"/);
      for (const secret of [PASSWORD, `:${echo.port}`, `127.0.0.1:${plane.address.port}`, '127.0.0.1:9'])
        assert.ok(!logs.includes(secret), `logs contain ${secret}:\n${logs}`);
      assert.ok(!out.includes(PASSWORD));
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  test('--no-shape is reported in the banner', async () => {
    const r = run(['client', '--key', key(plane.address.port), '--socks', '127.0.0.1:0', '--no-shape']);
    try {
      await waitForText(r.stdout, /SOCKS5 proxy on/);
      assert.match(r.stdout(), /first-packet shaping off \(--no-shape\)/);
      assert.match(r.stdout(), /routing +proxy: everything through the tunnel/);
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  const bad: Array<[string, () => string[], RegExp]> = [
    [
      '--route',
      () => ['--key', key(1), '--route', 'sideways'],
      /^ladder: --route must be auto, proxy or direct, got "sideways"$/,
    ],
    [
      '--rules syntax',
      () => {
        writeFileSync(join(dir, 'bad.txt'), '# ok\ndomain-suffix,x.example,teleport\n');
        return ['--key', key(1), '--rules', join(dir, 'bad.txt')];
      },
      /bad\.txt:2: unknown route "teleport"/,
    ],
    [
      '--rules missing',
      () => ['--key', key(1), '--rules', join(dir, 'nope.txt')],
      /^ladder: --rules \S*nope\.txt: no such file$/,
    ],
    [
      '--config field',
      () => {
        writeFileSync(join(dir, 'c.json'), JSON.stringify({ keys: [key(1)], sock: '1080' }));
        return ['--config', join(dir, 'c.json')];
      },
      /c\.json: unknown field "sock" \(did you mean "socks"\?\)$/,
    ],
    [
      "--config dns (named as the file's field)",
      () => {
        writeFileSync(join(dir, 'd.json'), JSON.stringify({ keys: [key(1)], dns: '127.0.0.1' }));
        return ['--config', join(dir, 'd.json')];
      },
      /^ladder: \S*d\.json: "dns" "127\.0\.0\.1": expected/,
    ],
    [
      '--http and --socks on one address',
      () => ['--key', key(1), '--socks', '127.0.0.1:11200', '--http', '127.0.0.1:11200'],
      /^ladder: --socks and --http both name 127\.0\.0\.1:11200: give each proxy its own port/,
    ],
    [
      '--config key',
      () => {
        writeFileSync(join(dir, 'k.json'), JSON.stringify({ keys: ['ss://nope'] }));
        return ['--config', join(dir, 'k.json')];
      },
      /k\.json: keys\[0\]: invalid ss:\/\/ URL/,
    ],
    [
      '--dns-mode',
      () => ['--key', key(1), '--dns', '127.0.0.1:0', '--dns-mode', 'doh'],
      /--dns-mode must be tunnel or stub/,
    ],
    [
      '--shape with 2022-blake3-aes-128-gcm',
      () => [
        '--key',
        formatSsUrl({
          method: '2022-blake3-aes-128-gcm',
          password: randomBytes(16).toString('base64'),
          host: '127.0.0.1',
          port: 1,
        }),
        '--shape',
      ],
      /--shape needs a 32-byte salt: 2022-blake3-aes-128-gcm/,
    ],
  ];
  for (const [name, args, re] of bad) {
    test(`bad ${name}: exit 2, one line`, async () => {
      const r = run(['client', '--socks', '127.0.0.1:0', ...args()]);
      assert.equal((await r.exit).code, 2, r.stdout());
      const err = r.stderr().trim();
      assert.match(err, re);
      assert.equal(err.split('\n').length, 1, err);
      assert.ok(!err.includes(PASSWORD));
    });
  }
});
