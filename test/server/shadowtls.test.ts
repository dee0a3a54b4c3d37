/**
 * The ShadowTLS v3 port (src/server/shadowtls/) with real parts on loopback: a Node TLS 1.3 web
 * server with a lab certificate as the handshake server, curl and openssl s_client as the
 * prober's clients, a TLS 1.2-only site, a site that never reads, and the Shadowsocks data plane
 * behind the switch (8 MiB each way, hashed, for aes-256-gcm and a 2022 method).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import type https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { makeLabCertificates, type LabCertificates } from '../../src/lab/lab-ca.js';
import { probeWebFront } from '../../src/lab/web-prober.js';
import { closingAlert } from '../../src/protocol/shadowtls/index.js';
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { toSocksAddress } from '../../src/protocol/socks5/address.js';
import { createLogger } from '../../src/shared/logger.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { Shadowsocks2022Dialer } from '../../src/transport/shadowsocks2022-dialer.js';
import { startTestServer, type TestDataPlane } from '../helpers/data-plane.js';
import { sha256 } from '../helpers/hash.js';
import { captureClientHello, connectShadowTls, curlSite, startLabSite } from '../helpers/shadowtls-client.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const PW = `stls-${randomBytes(6).toString('hex')}`;
const SITE = 'site.lab';
const PAGE = `<!doctype html><title>lab site</title><p>${randomBytes(2000).toString('hex')}</p>\n`;
const AES = { id: 'aes', method: 'aes-256-gcm', secret: `ss-${randomBytes(6).toString('hex')}` };
const SS2022 = { id: 'new', method: '2022-blake3-aes-256-gcm', secret: randomBytes(32).toString('base64') };

let certs: LabCertificates;
let dir: string;
let site13: https.Server;
let site12: https.Server;
let plane: TestDataPlane;
let hello: Buffer;
const listeners: ShadowTlsListener[] = [];
const streams: string[] = [];

const portOf = (s: net.Server): number => (s.address() as net.AddressInfo).port;

async function front(handshakePort: number): Promise<ShadowTlsListener> {
  const l = await listenShadowTls({
    port: 0,
    host: '127.0.0.1',
    handshake: { host: '127.0.0.1', port: handshakePort },
    passwords: ['someone-else', PW],
    idleMs: 10_000,
    logger: createLogger({ level: 'silent' }),
    onStream: (stream, info) => {
      streams.push(info.remoteAddress ?? '');
      plane.plane.server.handleStream(stream, info);
    },
  });
  listeners.push(l);
  return l;
}

before(async () => {
  certs = await makeLabCertificates([SITE]);
  dir = await mkdtemp(join(tmpdir(), 'ladder-stls-'));
  await writeFile(join(dir, 'ca.pem'), certs.ca);
  site13 = await startLabSite(certs, 'TLSv1.3', PAGE);
  site12 = await startLabSite(certs, 'TLSv1.2', PAGE);
  plane = await startTestServer({ keys: [AES, SS2022] });
  hello = await captureClientHello(SITE);
});

after(async () => {
  await Promise.all(listeners.map((l) => l.close()));
  site13.closeAllConnections();
  site12.closeAllConnections();
  site13.close();
  site12.close();
  await plane.close();
  await rm(dir, { recursive: true, force: true });
});

const curl = (port: number): Promise<string> => curlSite(SITE, port, join(dir, 'ca.pem'));

/** The certificate s_client saw (PEM) and the protocol it negotiated. */
async function sClient(port: number): Promise<{ cert: string; protocol: string }> {
  const { stdout } = await run('sh', [
    '-c',
    `openssl s_client -connect 127.0.0.1:${port} -servername ${SITE} -CAfile ${join(dir, 'ca.pem')} </dev/null 2>/dev/null`,
  ]);
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout)?.[0] ?? '';
  const protocol = /Protocol\s*:\s*(\S+)/.exec(stdout)?.[1] ?? /New, (TLSv[\d.]+)/.exec(stdout)?.[1] ?? '';
  return { cert, protocol };
}

/** What a raw connection gets back for `bytes` (until the peer closes or 2 s pass). */
async function rawAnswer(port: number, bytes: Buffer): Promise<Buffer> {
  const s = net.connect({ host: '127.0.0.1', port });
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  s.on('error', () => {});
  s.write(bytes);
  await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, 2000))]);
  s.destroy();
  return Buffer.concat(got);
}

describe('ShadowTLS v3 port: what a prober sees', () => {
  it('curl and openssl s_client get the handshake site’s certificate and page, as directly', async () => {
    const l = await front(portOf(site13));
    const before = streams.length;
    assert.equal(await curl(l.address.port), PAGE);
    assert.equal(await curl(portOf(site13)), PAGE);
    const via = await sClient(l.address.port);
    const direct = await sClient(portOf(site13));
    assert.match(via.cert, /BEGIN CERTIFICATE/);
    assert.equal(via.cert, direct.cert);
    assert.equal(via.protocol, 'TLSv1.3');
    await waitFor(() => l.counts.relayed === 2);
    assert.equal(l.counts.switched, 0);
    assert.equal(streams.length, before);
  });

  it('garbage, an HTTP request, a wrong password: the site’s own answer, relayed, nothing else', async () => {
    const l = await front(portOf(site13));
    const http = Buffer.from(`GET / HTTP/1.1\r\nHost: ${SITE}\r\n\r\n`);
    assert.deepEqual(await rawAnswer(l.address.port, http), await rawAnswer(portOf(site13), http));
    const junk = randomBytes(600);
    junk[0] = 0x16; // looks like a handshake record, is not one
    assert.deepEqual(await rawAnswer(l.address.port, junk), await rawAnswer(portOf(site13), junk));
    await assert.rejects(connectShadowTls(l.address.port, 'wrong password', hello), /untagged/);
    await waitFor(() => l.counts.relayed === 3);
    assert.equal(l.counts.switched, 0);
  });

  it('a TLS 1.2-only handshake site: even the right password only gets the relay', async () => {
    const l = await front(portOf(site12));
    await assert.rejects(connectShadowTls(l.address.port, PW, hello, 1500), /timeout|closed|untagged/);
    assert.equal(await curl(l.address.port), PAGE);
    assert.equal((await sClient(l.address.port)).protocol, 'TLSv1.2');
    await waitFor(() => l.counts.relayed === 3);
    assert.equal(l.counts.switched, 0);
  });

  it('holds at most a record before deciding: a site that never reads backs the prober up', async () => {
    const stalled = net.createServer((s) => s.pause());
    stalled.listen(0, '127.0.0.1');
    await once(stalled, 'listening');
    const l = await front(portOf(stalled));
    const s = net.connect({ host: '127.0.0.1', port: l.address.port });
    s.on('error', () => {});
    await once(s, 'connect');
    const block = Buffer.alloc(1 << 20, 0x41);
    block.set([0x16, 0x03, 0x01, 0xff, 0xff]); // a record header above 2^14: relay at once
    for (let i = 0; i < 64; i++) s.write(block);
    await new Promise((r) => setTimeout(r, 1000));
    // Kernel buffers on two loopback hops hold some MiB; the rest waits in the prober's socket.
    assert.ok(s.writableLength > 32 << 20, `prober still holds ${s.writableLength} bytes`);
    s.destroy();
    stalled.close();
  });
});

describe('ShadowTLS v3 port: the C7 web prober (src/lab/web-prober.ts)', () => {
  it('concludes "web server": every probe through the port is answered as the site answers it', async () => {
    const l = await front(portOf(site13));
    const tlsTo = (port: number) => ({
      endpoint: { host: '127.0.0.1', port },
      tls: { servername: SITE, ca: certs.ca },
    });
    const v = await probeWebFront(tlsTo(l.address.port), tlsTo(portOf(site13)), {
      secretPath: '/not-a-path-here',
      host: SITE,
      waitMs: 2000,
    });
    assert.equal(v.verdict, 'web server', v.differences.join('\n'));
    assert.ok(v.probes > 10);
    assert.equal(l.counts.switched, 0);
  });
});

describe('ShadowTLS v3 port: the authenticated path', () => {
  for (const key of [AES, SS2022]) {
    it(`switches to Shadowsocks (${key.method}): 8 MiB each way through the echo, hashed`, async () => {
      const l = await front(portOf(site13));
      const conn = await connectShadowTls(l.address.port, PW, hello);
      const endpoint = {
        host: '127.0.0.1',
        port: 0,
        method: key.method,
        password: key.secret,
        nextHop: () => Promise.resolve(conn.stream),
      };
      const dialer = key === AES ? new ShadowsocksDialer(endpoint) : new Shadowsocks2022Dialer(endpoint);
      const tunnel = new DialerStream(dialer, toSocksAddress(plane.echo.host, plane.echo.port));
      const body = randomBytes(8 << 20);
      const got: Buffer[] = [];
      let n = 0;
      const done = new Promise<void>((resolve, reject) => {
        tunnel.on('data', (c: Buffer) => {
          got.push(Buffer.from(c));
          n += c.length;
          if (n >= body.length) resolve();
        });
        tunnel.on('error', reject);
      });
      for (let i = 0; i < body.length; i += 256 * 1024) {
        if (!tunnel.write(body.subarray(i, i + 256 * 1024))) await once(tunnel, 'drain');
      }
      await done;
      assert.deepEqual(sha256(Buffer.concat(got)), sha256(body));
      assert.equal(l.counts.switched, 1);
      assert.equal(streams.at(-1), '127.0.0.1');
      tunnel.destroy();
    });
  }

  it('a data record with a wrong tag after the switch: an alert, then the close', async () => {
    const l = await front(portOf(site13));
    const conn = await connectShadowTls(l.address.port, PW, hello);
    conn.stream.write(Buffer.from('x')); // the switching record
    await waitFor(() => l.counts.switched === 1);
    const got: Buffer[] = [];
    conn.socket.removeAllListeners('data');
    conn.socket.on('data', (c: Buffer) => got.push(c));
    const forged = Buffer.from([0x17, 0x03, 0x03, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]);
    conn.socket.write(forged);
    await once(conn.socket, 'end'); // the server's FIN (the socket allows half-open)
    const all = Buffer.concat(got);
    assert.equal(all.length, 31);
    assert.deepEqual(all.subarray(0, 5), closingAlert(Buffer.alloc(26)).subarray(0, 5));
  });
});
