// The web front as a user meets it through the CLI: `ladder server --web-port` prints a
// v2ray-plugin key URL that `ladder client` dials over WebSocket; the decoy answers everyone else
// with the builtin site; bad TLS settings are one line and exit 2; managed mode keeps its secret
// path across a restart (the URL printed at the first start still works).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { parsePluginOptions } from '../../src/protocol/sip002/plugin-opts.js';
import { run, unmanagedWeb, waitForStdout, type Run } from '../helpers/cli-run.js';
import { freePort, readExactly, startEcho } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';
import { makeCert } from '../web/fixtures.js';

const WEB_URL = /ss:\/\/\S+plugin=v2ray-plugin\S*/;

/** `ladder client --key URL` on a free SOCKS port; 8 KiB through it to the echo server and back. */
async function roundTripThroughClient(url: string, echoPort: number): Promise<void> {
  const c = run(['client', '--key', url, '--socks', '127.0.0.1:0']);
  try {
    const m = await waitForStdout(c, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/);
    const s = await socks5Connect({ proxyPort: Number(m[1]), host: '127.0.0.1', port: echoPort });
    const data = randomBytes(8192);
    s.write(data);
    const back = await readExactly(s, data.length, 15_000);
    assert.ok(back.equals(data), '8 KiB came back unchanged');
    s.destroy();
    c.child.kill('SIGTERM');
    assert.equal(await c.exit, 0);
    assert.ok(!c.stderr().includes('ss://'), 'client logs no key');
  } finally {
    c.child.kill('SIGKILL');
  }
}

function get(
  port: number,
  path: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function stop(r: Run): Promise<void> {
  r.child.kill('SIGTERM');
  assert.equal(await r.exit, 0, r.stderr());
}

describe('ladder server --web-port (CLI)', () => {
  it('unmanaged: banner states the web front and prints a v2ray-plugin URL; ladder client relays over it; the decoy serves the builtin site', async (t) => {
    const echo = await startEcho();
    t.after(() => echo.close());
    const password = randomBytes(18).toString('base64url');
    const r = run(unmanagedWeb(password, '--allow-private', '--trust-proxy', '127.0.0.1/32,::1/128'));
    try {
      const [url] = await waitForStdout(r, WEB_URL);
      const m = /web front on port (\d+) \(plain HTTP[^)]*\); decoy: builtin site; 2 trusted proxies/.exec(
        r.stdout(),
      );
      assert.ok(m, r.stdout());
      const webPort = Number(m[1]);
      assert.notEqual(webPort, 0, 'the banner reports the bound port');
      const key = parseSsUrl(url);
      assert.equal(key.port, webPort);
      assert.equal(key.password, password);
      assert.equal(key.plugin, 'v2ray-plugin');
      const opts = parsePluginOptions(key.pluginOptions ?? '');
      assert.equal(opts.get('mode'), 'websocket');
      assert.equal(opts.get('host'), '127.0.0.1');
      assert.equal(opts.has('tls'), false);
      const secretPath = opts.get('path');
      assert.ok(
        typeof secretPath === 'string' && /^\/[A-Za-z0-9_-]{22}$/.test(secretPath),
        String(secretPath),
      );
      assert.match(url, /plugin=v2ray-plugin%3Bmode%3Dwebsocket%3Bpath%3D%2F/);

      await roundTripThroughClient(url, echo.port);

      const home = await get(webPort, '/');
      assert.equal(home.status, 200);
      assert.match(String(home.headers['content-type']), /text\/html/);
      assert.match(home.body, /<html/i);
      assert.ok(!/node|express|fastify/i.test(JSON.stringify(home.headers)), 'no framework signature');

      assert.match(r.stdout(), /web path derived from the first key/);

      await stop(r);
      const logs = r.stderr();
      assert.ok(!logs.includes(secretPath), 'secret path not in logs');
      assert.ok(!logs.includes(password), 'password not in logs');

      // A restart prints the same web URL (the path is derived from the key, not drawn anew);
      // another password gives another path (the control: the path does depend on the key).
      const again = run(unmanagedWeb(password, '--allow-private'));
      const other = run(unmanagedWeb(randomBytes(18).toString('base64url'), '--allow-private'));
      try {
        const [url2] = await waitForStdout(again, WEB_URL);
        const [url3] = await waitForStdout(other, WEB_URL);
        const pathOf = (u: string): unknown =>
          parsePluginOptions(parseSsUrl(u).pluginOptions ?? '').get('path');
        assert.equal(pathOf(url2), secretPath, 'the same path after a restart');
        assert.notEqual(pathOf(url3), secretPath, 'another key, another path');
        await stop(again);
        await stop(other);
      } finally {
        again.child.kill('SIGKILL');
        other.child.kill('SIGKILL');
      }
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  it('bad web settings: one line, exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-badtls-'));
    const a = makeCert(dir, 'a.example');
    const b = makeCert(dir, 'b.example');
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    const cases: [string[], RegExp][] = [
      [
        ['--web-port', '0', '--tls-cert', junk, '--tls-key', junk],
        /^ladder: --tls-cert \S+junk\.pem \/ --tls-key \S+junk\.pem: expected a PEM certificate/,
      ],
      [
        ['--web-port', '0', '--tls-cert', a.certPath, '--tls-key', b.keyPath],
        /^ladder: --tls-cert \S+a\.example\.crt \/ --tls-key \S+b\.example\.key: the key does not belong to the certificate$/,
      ],
      [['--web-port', '0', '--tls-cert', a.keyPath, '--tls-key', a.certPath], /expected a PEM certificate/],
      // The certificate as the key too: OpenSSL said only "unsupported".
      [
        ['--web-port', '0', '--tls-cert', a.certPath, '--tls-key', a.certPath],
        /: expected a PEM private key \(-----BEGIN PRIVATE KEY-----\) in \S+a\.example\.crt$/,
      ],
      [
        ['--web-port', '0', '--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem'],
        /^ladder: --tls-cert \/nonexistent\/cert\.pem: no such file$/,
      ],
      [['--web-port', '0', '--tls-cert', '/nonexistent/cert.pem'], /--tls-cert and --tls-key go together/],
      [['--web-port', '0', '--acme', 'example.com'], /--acme needs a data directory/],
      [['--decoy', 'builtin'], /--decoy needs --web-port/],
      [['--web-port', '70000'], /--web-port/],
      [['--web-port', '0', '--trust-proxy', 'not-a-cidr'], /./],
      [['--web-public-url', 'wss://cdn.example.net'], /--web-public-url needs --web-port/],
      [['--web-port', '0', '--decoy-h2', 'maybe'], /^ladder: --decoy-h2: expected on or off, got "maybe"$/],
      [['--decoy-h2', 'off'], /--decoy-h2 needs --web-port/],
      [
        ['--web-port', '0', '--web-public-url', 'ftp://cdn.example.net'],
        /^ladder: --web-public-url: expected ws:\/\//,
      ],
      [
        ['--web-port', '0', '--web-public-url', 'wss://cdn.example.net/p'],
        /^ladder: --web-public-url: no path/,
      ],
    ];
    for (const [args, re] of cases) {
      const r = run(['server', '--password', 'pw', '--port', '0', '--host', '127.0.0.1', ...args]);
      assert.equal(await r.exit, 2, `${args.join(' ')}: ${r.stderr()}`);
      const err = r.stderr().trim();
      assert.match(err, re);
      assert.equal(err.split('\n').length, 1, err);
      assert.equal(r.stdout(), '');
      for (const pem of [a.key, a.cert, b.key])
        assert.ok(!err.includes(pem.split('\n')[1]!), 'no file contents echoed');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('--config with a web object: a bad value names the field of the file; paths are relative to it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-web-config-'));
    const f = join(dir, 'server.json');
    writeFileSync(
      f,
      JSON.stringify({
        port: 0,
        host: '127.0.0.1',
        keys: [{ id: 'a', method: 'aes-128-gcm', password: 'pa' }],
        web: { port: 0, host: '127.0.0.1', tlsCert: 'cert.pem', tlsKey: 'key.pem' },
      }),
    );
    /** `ladder server --config f` exits 2 with one line; returns it. */
    const refused = async (): Promise<string> => {
      const r = run(['server', '--config', f]);
      assert.equal(await r.exit, 2, r.stderr());
      return r.stderr().trim();
    };
    assert.equal(await refused(), `ladder: ${f}: web.tlsCert ${join(dir, 'cert.pem')}: no such file`);
    const keys = [{ id: 'a', method: 'aes-128-gcm', password: 'pa' }];
    writeFileSync(f, JSON.stringify({ keys, web: { port: 0, tlsKey: 'k' } }));
    assert.equal(await refused(), `ladder: ${f}: web.tlsCert: tlsCert and tlsKey go together`);
    writeFileSync(f, JSON.stringify({ keys, web: { port: 0, decoyH2: 'yes' } }));
    assert.match(await refused(), /^ladder: .*web\.decoyH2: must be true or false/);
    writeFileSync(f, JSON.stringify({ keys, web: { port: 0, publicUrl: 'wss://cdn.example.net/x' } }));
    assert.ok((await refused()).startsWith(`ladder: ${f}: web.publicUrl: no path`));
  });

  it('TLS web front: ALPN h2 for the decoy by default, not with --decoy-h2 off', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-web-h2-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const c = makeCert(dir, 'h2.example');
    for (const [extra, want] of [
      [[], 'h2'],
      [['--decoy-h2', 'off'], 'http/1.1'],
    ] as const) {
      const r = run(unmanagedWeb('pw-h2', '--tls-cert', c.certPath, '--tls-key', c.keyPath, ...extra));
      try {
        const m = await waitForStdout(r, /web front on port (\d+) \(TLS/);
        const s = tls.connect({
          port: Number(m[1]),
          host: '127.0.0.1',
          ca: c.cert,
          servername: 'h2.example',
          ALPNProtocols: ['h2', 'http/1.1'],
        });
        await new Promise((resolve, reject) => {
          s.once('secureConnect', resolve);
          s.once('error', reject);
        });
        assert.equal(s.alpnProtocol, want, extra.join(' '));
        s.destroy();
        await stop(r);
      } finally {
        r.child.kill('SIGKILL');
      }
    }
  });

  it('--web-public-url: keys advertise the CDN host, port and TLS; the banner says so', async () => {
    const r = run(unmanagedWeb('pw-public-url', '--web-public-url', 'wss://cdn.example.net:8443'));
    try {
      const [url] = await waitForStdout(r, WEB_URL);
      const key = parseSsUrl(url);
      assert.equal(key.host, 'cdn.example.net');
      assert.equal(key.port, 8443);
      const opts = parsePluginOptions(key.pluginOptions ?? '');
      assert.equal(opts.get('host'), 'cdn.example.net');
      assert.equal(opts.has('tls'), true, 'the CDN speaks TLS although the front is plain');
      assert.match(
        r.stdout(),
        /web front on port \d+ \(plain HTTP[^\n]*; advertised as wss:\/\/cdn\.example\.net:8443/,
      );
      await stop(r);
    } finally {
      r.child.kill('SIGKILL');
    }
  });

  it('managed: the secret path is generated once and kept; the web URL of the first start works after a restart', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-web-managed-'));
    const echo = await startEcho();
    t.after(() => echo.close());
    const args = [
      'server',
      '--data-dir',
      join(dir, 'data'),
      '--port',
      String(await freePort()),
      '--host',
      '127.0.0.1',
      '--public-host',
      '127.0.0.1',
      '--api-host',
      '127.0.0.1',
      '--metrics-port',
      '0',
      '--allow-private',
      '--web-host',
      '127.0.0.1',
      '--web-port',
    ];
    const first = run([...args, String(await freePort())], { cwd: dir });
    let url: string;
    try {
      [url] = await waitForStdout(first, WEB_URL, 30_000);
      await waitForStdout(first, /Ctrl-C to stop\./);
      assert.match(first.stdout(), /web front on port \d+ \(plain HTTP/);
      await stop(first);
    } finally {
      first.child.kill('SIGKILL');
    }
    const secretPath = parsePluginOptions(parseSsUrl(url).pluginOptions ?? '').get('path') as string;
    assert.ok(!first.stderr().includes(secretPath), 'secret path not in logs');

    // Restart on the same web port: a restart to a log prints no secrets, yet the old URL works.
    const webPort = parseSsUrl(url).port;
    const second = run([...args, String(webPort)], { cwd: dir });
    try {
      await waitForStdout(second, /Ctrl-C to stop\./, 30_000);
      assert.match(second.stdout(), new RegExp(`web front on port ${webPort} `));
      assert.doesNotMatch(second.stdout(), /ss:\/\//, 'no secrets on a restart to a log');
      await roundTripThroughClient(url, echo.port);
      await stop(second);
      assert.ok(!second.stderr().includes(secretPath), 'secret path not in logs');
    } finally {
      second.child.kill('SIGKILL');
    }
  });
});
