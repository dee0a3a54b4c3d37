// Ladder's own TLS 1.3 client (src/transport/tls13/, written for ShadowTLS v3's ClientHello)
// against real servers on loopback: `openssl s_server -tls1_3` and Debian's nginx with TLS 1.3
// only, certificates from the lab CA (src/lab/lab-ca.ts). Each cipher suite: the handshake (chain
// and name verified), an HTTP GET and the body byte-compared with the file served. A
// HelloRetryRequest (server wants P-256 / P-384), a TLS 1.2-only server (one clear error), a
// certificate from another CA and a wrong name (refused), and the engine refusing to run without
// a certificate mode.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeLabCertificates, type LabCertificates } from '../../src/lab/lab-ca.js';
import { connectTls13, type Tls13Socket } from '../../src/transport/tls13/client.js';
import { ClientHandshake } from '../../src/transport/tls13/handshake.js';
import { freePort, waitForPort } from '../helpers/net.js';
import { spawnPeer, type Peer } from '../helpers/peers.js';
import { nginxTls13Site } from '../helpers/tls13-site.js';
import { nginxSkip, opensslSkip, startNginx, type Nginx } from '../web/fixtures.js';

const NAME = 'site.test';
const SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

function dial(port: number, opts: { ca?: string | Buffer; name?: string } = {}): Promise<Tls13Socket> {
  const sock = net.connect(port, '127.0.0.1');
  return connectTls13(sock, {
    serverName: opts.name ?? NAME,
    alpn: ['http/1.1'],
    certificate: { ca: opts.ca },
  });
}

/** Send `request`, read to the end (close_notify or FIN); the response's head and body. */
async function fetchOver(s: Tls13Socket, request: string): Promise<{ head: string; body: Buffer }> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    s.once('end', resolve);
    s.once('error', reject);
  });
  s.write(request);
  await ended;
  s.end();
  const all = Buffer.concat(chunks);
  const cut = all.indexOf('\r\n\r\n');
  assert.ok(cut > 0, 'a response head');
  return { head: all.subarray(0, cut).toString('latin1'), body: all.subarray(cut + 4) };
}

describe('TLS 1.3 client ↔ openssl s_server -tls1_3', { skip: opensslSkip() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-tls13-'));
  const body = randomBytes(300 * 1024);
  let certs: LabCertificates;
  const peers: Peer[] = [];

  before(async () => {
    certs = await makeLabCertificates([NAME]);
    writeFileSync(join(dir, 'cert.pem'), certs.cert);
    writeFileSync(join(dir, 'key.pem'), certs.key);
    writeFileSync(join(dir, 'body.bin'), body);
  });
  after(async () => {
    for (const p of peers) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function sServer(args: string[]): Promise<number> {
    const port = await freePort();
    const p = await spawnPeer(
      'openssl s_server',
      'openssl',
      [
        's_server',
        '-accept',
        `127.0.0.1:${port}`,
        '-cert',
        'cert.pem',
        '-key',
        'key.pem',
        '-WWW',
        '-quiet',
        ...args,
      ],
      { waitPort: port, cwd: dir },
    );
    peers.push(p);
    return port;
  }

  for (const suite of SUITES) {
    test(`${suite}: handshake verified, GET of 300 KiB byte-identical`, async () => {
      const port = await sServer(['-tls1_3', '-ciphersuites', suite]);
      const s = await dial(port, { ca: certs.ca });
      assert.equal(s.cipherSuite, suite);
      assert.equal(s.alpnProtocol, undefined);
      const r = await fetchOver(s, 'GET /body.bin HTTP/1.0\r\n\r\n');
      assert.match(r.head, /^HTTP\/1\.0 200/);
      assert.ok(r.body.equals(body), `body: ${r.body.length} bytes, expected ${body.length}`);
    });
  }

  for (const group of ['P-256', 'P-384']) {
    test(`HelloRetryRequest: a server that wants ${group} gets a second hello with that share`, async () => {
      const port = await sServer(['-tls1_3', '-groups', group]);
      const s = await dial(port, { ca: certs.ca });
      assert.equal(s.helloRetried, true);
      const r = await fetchOver(s, 'GET /body.bin HTTP/1.0\r\n\r\n');
      assert.ok(r.body.equals(body));
    });
  }

  test('a TLS 1.2-only server: one clear error', async () => {
    const port = await sServer(['-tls1_2']);
    await assert.rejects(dial(port, { ca: certs.ca }), (err: Error) => {
      assert.match(err.message, /^the server chose TLS 1\.2: this client speaks only TLS 1\.3$/);
      return true;
    });
  });

  test('a certificate from another CA, or for another name, is refused', async () => {
    const port = await sServer(['-tls1_3']);
    const other = await makeLabCertificates(['other.test']);
    await assert.rejects(dial(port, { ca: other.ca }), /does not chain to a trusted CA/);
    await assert.rejects(dial(port, { ca: certs.ca, name: 'other.test' }), /not valid for the server name/);
    // The system roots do not hold the lab CA either.
    await assert.rejects(dial(port), /does not chain to a trusted CA/);
  });

  test('KeyUpdate: the server updates its key and asks us to (s_server "K"); data flows both ways after', async () => {
    const port = await freePort();
    const child = spawn(
      'openssl',
      ['s_server', '-tls1_3', '-accept', `127.0.0.1:${port}`, '-cert', 'cert.pem', '-key', 'key.pem'],
      {
        cwd: dir,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('latin1')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('latin1')));
    const seen = async (text: string): Promise<void> => {
      for (let i = 0; i < 100 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(out.includes(text), `s_server output has ${JSON.stringify(text)}: ${out.slice(-500)}`);
    };
    try {
      await waitForPort(port);
      const s = await dial(port, { ca: certs.ca });
      let got = '';
      s.on('error', () => {}); // the reset when s_server is killed below
      s.on('data', (c: Buffer) => (got += c.toString('latin1')));
      s.write('before-update\n');
      await seen('before-update');
      child.stdin.write('K\n');
      await seen('SSL_do_handshake -> 1');
      child.stdin.write('from-server-after\n');
      for (let i = 0; i < 100 && !got.includes('from-server-after'); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(got, /from-server-after/, "read under the server's next key");
      s.write('after-update\n');
      await seen('after-update'); // the server took our KeyUpdate and reads under our next key
      s.end();
      await seen('DONE'); // s_server saw our close_notify
    } finally {
      child.kill();
    }
  });

  test('the engine refuses to run without a certificate mode', () => {
    assert.throws(() => new ClientHandshake({ serverName: NAME } as never), /options\.certificate must be/);
  });
});

describe('TLS 1.3 client ↔ nginx (ssl_protocols TLSv1.3)', { skip: nginxSkip() || opensslSkip() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-tls13-nginx-'));
  const body = randomBytes(1024 * 1024 + 123);
  let certs: LabCertificates;

  before(async () => {
    certs = await makeLabCertificates([NAME]);
    writeFileSync(join(dir, 'body.bin'), body, { mode: 0o644 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const suite of SUITES) {
    test(`${suite}: GET of 1 MiB byte-identical, ALPN http/1.1`, async () => {
      let nginx: Nginx | undefined;
      try {
        nginx = await startNginx(
          nginxTls13Site(dir, certs, NAME, `\n    ssl_conf_command Ciphersuites ${suite};`),
        );
        const s = await dial(nginx.port, { ca: certs.ca });
        assert.equal(s.cipherSuite, suite);
        assert.equal(s.alpnProtocol, 'http/1.1');
        const r = await fetchOver(s, `GET /body.bin HTTP/1.1\r\nHost: ${NAME}\r\nConnection: close\r\n\r\n`);
        assert.match(r.head, /^HTTP\/1\.1 200/);
        assert.match(r.head, new RegExp(`Content-Length: ${body.length}`, 'i'));
        assert.ok(r.body.equals(body), `body: ${r.body.length} bytes, expected ${body.length}`);
      } finally {
        await nginx?.stop();
      }
    });
  }
});
