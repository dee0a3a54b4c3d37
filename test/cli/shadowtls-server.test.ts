/**
 * `ladder server --shadowtls-port` as a person runs it: the banner's ShadowTLS lines, curl through
 * the port gets the handshake site's page, the printed password switches a ShadowTLS client to the
 * key's Shadowsocks, the config file's `shadowtls` object, and one-line usage errors.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { keyShadowTlsPassword } from '../../src/protocol/sip002/shadowtls.js';
import { toSocksAddress } from '../../src/protocol/socks5/address.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { runLadder } from '../helpers/ladder-run.js';
import { readExactly, startEcho, type TestServer } from '../helpers/net.js';
import { startLadderClient } from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks5.js';
import { captureClientHello, connectShadowTls, curlSite, startLabSite } from '../helpers/shadowtls-client.js';

const PAGE = `<!doctype html><p>${randomBytes(500).toString('hex')}</p>\n`;
const SS_PW = `ss-${randomBytes(6).toString('hex')}`;
let dir: string;
let site: https.Server;
let echo: TestServer;
let hello: Buffer;
const runs: Run[] = [];

before(async () => {
  const certs = await makeLabCertificates(['site.lab']);
  dir = await mkdtemp(join(tmpdir(), 'ladder-stls-cli-'));
  await writeFile(join(dir, 'ca.pem'), certs.ca);
  site = await startLabSite(certs, 'TLSv1.3', PAGE);
  echo = await startEcho();
  hello = await captureClientHello('site.lab');
});

after(async () => {
  for (const r of runs) r.child.kill('SIGKILL');
  site.closeAllConnections();
  site.close();
  await echo.close();
  await rm(dir, { recursive: true, force: true });
});

const sitePort = (): number => (site.address() as { port: number }).port;

/** Whether a hello signed with `password` is switched (the site's records come back tagged). */
async function tagged(port: number, password: string): Promise<boolean> {
  return connectShadowTls(port, password, hello).then(
    (c) => (c.socket.destroy(), true),
    (err: Error) => {
      if (err.message === 'untagged') return false;
      throw err;
    },
  );
}

/** Poll `check` (every 250 ms, at most 20 s) until it holds. */
async function waitUntil(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 80; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`not within 20 s: ${what}`);
}

async function echoThrough(port: number, stlsPassword: string): Promise<string> {
  const conn = await connectShadowTls(port, stlsPassword, hello);
  const dialer = new ShadowsocksDialer({
    host: '127.0.0.1',
    port: 1,
    method: 'chacha20-ietf-poly1305',
    password: SS_PW,
    nextHop: () => Promise.resolve(conn.stream),
  });
  const t = new DialerStream(dialer, toSocksAddress('127.0.0.1', echo.port));
  const got = new Promise<string>((resolve, reject) => {
    t.once('data', (d: Buffer) => resolve(d.toString()));
    t.once('error', reject);
  });
  t.write('through shadowtls');
  const answer = await got;
  t.destroy();
  return answer;
}

describe('ladder server --shadowtls-port', () => {
  it('prints what a ShadowTLS client needs; curl sees the site; the password reaches the key', async () => {
    const r = run([
      ...'server --port 0 --host 127.0.0.1 --allow-private --show-urls'.split(' '),
      ...['--password', SS_PW],
      '--shadowtls-port',
      '0',
      '--shadowtls-host',
      '127.0.0.1',
      '--shadowtls-handshake',
      `127.0.0.1:${sitePort()}`,
      '--shadowtls-sni',
      'site.lab',
    ]);
    runs.push(r);
    const m = await waitForStdout(r, /ShadowTLS v3 on 127\.0\.0\.1:(\d+)/);
    const port = Number(m[1]);
    const pw = (await waitForStdout(r, /version 3, password (\S+), SNI site\.lab/))[1]!;
    assert.match(
      r.stdout(),
      /ss:\/\/[^\s]+:\d+\/\?plugin=shadow-tls%3Bhost%3Dsite\.lab%3Bpassword%3D[^\s]+%3Bversion%3D3#ladder-shadowtls/,
    );
    const stdout = await curlSite('site.lab', port, join(dir, 'ca.pem'));
    assert.equal(stdout, PAGE);
    assert.equal(await echoThrough(port, pw), 'through shadowtls');
    await assert.rejects(echoThrough(port, 'not the password'), /untagged/);
    // The printed ss:// URL, as is, in `ladder client` (its ShadowTLS dialer), to the echo.
    const url = /ss:\/\/\S+#ladder-shadowtls/.exec(r.stdout())![0];
    const client = await startLadderClient({ key: url });
    try {
      const s = await socks5Connect({
        proxyPort: client.socksPort,
        host: '127.0.0.1',
        port: echo.port,
        timeoutMs: 10_000,
      });
      s.write('via ladder client');
      assert.equal((await readExactly(s, 17)).toString(), 'via ladder client');
      s.destroy();
    } finally {
      await client.stop();
    }
    assert.doesNotMatch(r.stderr(), new RegExp(pw));
    r.child.kill('SIGTERM');
    await r.exit;
  });

  it('takes the config file’s shadowtls object, its password included', async () => {
    const file = join(dir, 'server.json');
    await writeFile(
      file,
      JSON.stringify({
        port: 0,
        host: '127.0.0.1',
        allowPrivateDestinations: true,
        keys: [{ id: 'k', method: 'chacha20-ietf-poly1305', password: SS_PW }],
        shadowtls: {
          port: 0,
          host: '127.0.0.1',
          handshake: `127.0.0.1:${sitePort()}`,
          sni: 'site.lab',
          password: 'file-pw',
        },
      }),
    );
    const r = run(['server', '--config', file, '--show-urls']);
    runs.push(r);
    const port = Number((await waitForStdout(r, /ShadowTLS v3 on 127\.0\.0\.1:(\d+)/))[1]);
    assert.match(r.stdout(), /password file-pw, SNI site\.lab/);
    // Allowed by the file, not a flag: the banner says so (it named --allow-private before).
    assert.match(r.stdout(), /destinations ALLOWED \("allowPrivateDestinations" in the config file\)/);
    assert.equal(await echoThrough(port, 'file-pw'), 'through shadowtls');
    r.child.kill('SIGTERM');
    await r.exit;
  });

  it('managed: each key its own password (banner, keys url, access-config); a disabled key’s reaches the site', async () => {
    const dataDir = join(dir, 'managed');
    const args = [
      ...'server --port 0 --api-port 0 --no-metrics --host 127.0.0.1 --allow-private'.split(' '),
      ...['--data-dir', dataDir, '--shadowtls-port', '0', '--shadowtls-host', '127.0.0.1'],
      ...['--shadowtls-handshake', `127.0.0.1:${sitePort()}`, '--shadowtls-sni', 'site.lab'],
    ];
    const r = run(args);
    runs.push(r);
    const port = Number((await waitForStdout(r, /ShadowTLS v3 on 127\.0\.0\.1:(\d+)/, 40_000))[1]);
    const first = (await waitForStdout(r, /version 3, password (\S+), SNI site\.lab/))[1]!;
    const initial = parseSsUrl(/ss:\/\/\S+#Initial%20key(?=\s)/.exec(r.stdout())![0]);
    assert.equal(first, keyShadowTlsPassword({ method: initial.method, secret: initial.password }));
    await assert.rejects(readFile(join(dataDir, 'shadowtls-password'), 'utf8'), /ENOENT/, 'none made');
    assert.equal(await curlSite('site.lab', port, join(dir, 'ca.pem')), PAGE);
    (await connectShadowTls(port, first, hello)).socket.destroy();

    // A second key: its own password, in keys url and access-config, switching while the first's does.
    const add = await runLadder(['keys', 'add', '--name', 'Bob', '--no-qr', '--data-dir', dataDir]);
    assert.equal(add.code, 0, add.stderr);
    const bob = parseSsUrl(/ss:\/\/\S+/.exec(add.stdout)![0]);
    const bobPw = keyShadowTlsPassword({ method: bob.method, secret: bob.password });
    assert.notEqual(bobPw, first);
    for (const [cmd, pw] of [
      [['keys', 'url', '0'], first],
      [['keys', 'url', '1'], bobPw],
      [['server', 'access-config'], bobPw],
    ] as const) {
      const out = await runLadder([...cmd, '--data-dir', dataDir]);
      assert.equal(out.code, 0, out.stderr);
      const enc = encodeURIComponent(`;password=${pw};version=3`);
      assert.ok(out.stdout.includes(`:${port}/?plugin=shadow-tls%3Bhost%3Dsite.lab${enc}`), out.stdout);
      // The dynamic (Outline) key says in one line that it has no ShadowTLS.
      assert.match(out.stdout, /Outline has no ShadowTLS|no ShadowTLS in it \(Outline has none/);
    }
    await waitUntil(() => tagged(port, bobPw), 'the new key’s password switches');
    // Disabled: its password is relayed to the site within the store's poll; the first key's works on.
    const off = await runLadder(['keys', 'disable', '1', '--data-dir', dataDir]);
    assert.equal(off.code, 0, off.stderr);
    await waitUntil(async () => !(await tagged(port, bobPw)), 'the disabled key’s password reaches the site');
    assert.ok(await tagged(port, first));
    assert.doesNotMatch(r.stderr() + r.stdout().replace(/.*password.*\n?/g, ''), new RegExp(bobPw));
    r.child.kill('SIGTERM');
    await r.exit;
  });

  it('managed, an install from before per-key passwords: its kept server-wide password still works', async () => {
    const dataDir = join(dir, 'upgraded');
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, 'shadowtls-password'), 'kept-from-session-18\n', { mode: 0o600 });
    const r = run([
      ...'server --port 0 --api-port 0 --no-metrics --host 127.0.0.1 --allow-private'.split(' '),
      ...['--data-dir', dataDir, '--shadowtls-port', '0', '--shadowtls-host', '127.0.0.1'],
      ...['--shadowtls-handshake', `127.0.0.1:${sitePort()}`, '--shadowtls-sni', 'site.lab'],
    ]);
    runs.push(r);
    const port = Number((await waitForStdout(r, /ShadowTLS v3 on 127\.0\.0\.1:(\d+)/, 40_000))[1]);
    const keyPw = (await waitForStdout(r, /version 3, password (\S+), SNI site\.lab/))[1]!;
    assert.notEqual(keyPw, 'kept-from-session-18', 'new URLs carry the key’s own');
    assert.ok(await tagged(port, 'kept-from-session-18'));
    assert.ok(await tagged(port, keyPw));
    assert.ok(!(await tagged(port, 'kept-from-session-17')));
    r.child.kill('SIGTERM');
    await r.exit;
  });

  it('refuses incomplete or wrong settings with one line', async () => {
    const base = ['server', '--password', SS_PW, '--port', '0'];
    for (const [args, re] of [
      [['--shadowtls-port', '0'], /--shadowtls-port needs --shadowtls-handshake/],
      [['--shadowtls-handshake', 'www.example.com'], /--shadowtls-handshake needs --shadowtls-port/],
      [['--shadowtls-port', '0', '--shadowtls-handshake', '127.0.0.1'], /a server name, not an address/],
      [['--shadowtls-port', '70000', '--shadowtls-handshake', 'a.example'], /--shadowtls-port/],
      [['--shadowtls-port', '0', '--shadowtls-handshake', 'a.example:0'], /--shadowtls-handshake/],
    ] as const) {
      const r = await runLadder([...base, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
});
