/**
 * `ladder server --shadowtls-port` as a person runs it: the banner's ShadowTLS lines, curl through
 * the port gets the handshake site's page, the printed password switches a ShadowTLS client to the
 * key's Shadowsocks, the config file's `shadowtls` object, and one-line usage errors.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
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
    assert.equal(await echoThrough(port, 'file-pw'), 'through shadowtls');
    r.child.kill('SIGTERM');
    await r.exit;
  });

  it('managed: the password is generated once, kept in the data dir, the same at the next start', async () => {
    const dataDir = join(dir, 'managed');
    const args = [
      ...'server --port 0 --api-port 0 --no-metrics --host 127.0.0.1 --allow-private'.split(' '),
      ...['--data-dir', dataDir, '--shadowtls-port', '0', '--shadowtls-host', '127.0.0.1'],
      ...['--shadowtls-handshake', `127.0.0.1:${sitePort()}`, '--shadowtls-sni', 'site.lab'],
    ];
    const kept = (): Promise<string> =>
      readFile(join(dataDir, 'shadowtls-password'), 'utf8').then((t) => t.trim());
    let first = '';
    for (let i = 0; i < 2; i++) {
      const r = run(args);
      runs.push(r);
      const port = Number((await waitForStdout(r, /ShadowTLS v3 on 127\.0\.0\.1:(\d+)/, 40_000))[1]);
      if (i === 0) {
        // The first start prints the key and its ShadowTLS lines (a restart's log does not).
        first = (await waitForStdout(r, /version 3, password (\S+), SNI site\.lab/))[1]!;
        assert.equal(await kept(), first);
        assert.equal(await curlSite('site.lab', port, join(dir, 'ca.pem')), PAGE);
        // keys url and access-config print the key's ShadowTLS URL from what the server saved.
        const enc = encodeURIComponent(`;password=${first};version=3`);
        for (const cmd of [
          ['keys', 'url', '0'],
          ['server', 'access-config'],
        ]) {
          const out = await runLadder([...cmd, '--data-dir', dataDir]);
          assert.equal(out.code, 0, out.stderr);
          assert.ok(out.stdout.includes(`:${port}/?plugin=shadow-tls%3Bhost%3Dsite.lab${enc}`), out.stdout);
        }
      } else (await connectShadowTls(port, first, hello)).socket.destroy(); // the kept password is tagged

      r.child.kill('SIGTERM');
      await r.exit;
    }
    assert.equal(await kept(), first);
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
