/**
 * ACME against Debian's `pebble` on loopback, with real HTTP-01 validation: pebble resolves the
 * domain through a tiny DNS server of ours (every A query → 127.0.0.1) and fetches the challenge
 * from the plain web front's port (pebble's `httpPort`). Certificates live 20 s
 * (`certificateValidityPeriod`), so renewal at 2/3 of the lifetime happens during the test and the
 * TLS front must start serving the new certificate without a restart.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import type { X509Certificate } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { createAcme, renewalTime, type Acme } from '../../src/server/web/acme.js';
import { builtinDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { startWebService, type WebService } from '../../src/server/web/setup.js';
import { freePort } from '../helpers/net.js';
import { spawnPeer, which, type Peer } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { exchange, makeCert, splitResponse, tempDir } from './fixtures.js';

const DOMAIN = 'ladder-decoy.test';
const VALIDITY_S = 20;

/** A DNS server on 127.0.0.1 answering every A query with 127.0.0.1 (other types: no data). */
async function startDns(): Promise<{ port: number; close(): void }> {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = q.questions?.[0];
    const answers: dnsPacket.Answer[] =
      question?.type === 'A'
        ? [{ type: 'A', name: question.name, ttl: 60, class: 'IN', data: '127.0.0.1' }]
        : [];
    const reply = dnsPacket.encode({
      id: q.id ?? 0,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions ?? [],
      answers,
    });
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { port: sock.address().port, close: () => sock.close() };
}

interface Pebble {
  directoryUrl: string;
  /** CA of pebble's own HTTPS listener. */
  ca: string;
  mgmtPort: number;
  stop(): Promise<void>;
}

/** pebble on loopback validating HTTP-01 against `httpPort`, resolving names through our DNS stub. */
async function startPebble(dir: string, httpPort: number): Promise<Pebble> {
  const dns = await startDns();
  const pc = makeCert(dir, 'localhost', 'pebble');
  const acmePort = await freePort();
  const mgmtPort = await freePort();
  const cfg = {
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: pc.certPath,
      privateKey: pc.keyPath,
      httpPort,
      tlsPort: await freePort(),
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      certificateValidityPeriod: VALIDITY_S,
    },
  };
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify(cfg));
  let peer: Peer;
  try {
    peer = await spawnPeer(
      'pebble',
      'pebble',
      ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dns.port}`],
      {
        waitPort: acmePort,
        env: { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
      },
    );
  } catch (err) {
    dns.close();
    throw err;
  }
  return {
    directoryUrl: `https://127.0.0.1:${acmePort}/dir`,
    ca: pc.cert,
    mgmtPort,
    async stop() {
      await peer.stop();
      dns.close();
    },
  };
}

const PEBBLE_SKIP = skipUnless(
  which('pebble') !== undefined && which('openssl') !== undefined,
  'pebble or openssl missing (apt-get install pebble openssl)',
);

function peerCert(port: number, ca: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      { port, host: '127.0.0.1', servername: DOMAIN, ca, ALPNProtocols: ['http/1.1'] },
      () => {
        const raw = s.getPeerX509Certificate();
        s.destroy();
        if (raw) resolve(raw);
        else reject(new Error('no certificate'));
      },
    );
    s.on('error', reject);
  });
}

function fetchText(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(b));
      })
      .on('error', reject);
  });
}

describe('ACME with pebble (HTTP-01, renewal, hot swap)', { skip: PEBBLE_SKIP }, () => {
  const tmp = tempDir('acme');
  let pebble: Pebble;
  let acme: Acme;
  let plain: WebFront;
  let front: WebFront | undefined;
  const swapped: string[] = [];

  before(async () => {
    plain = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/acme-secret',
      decoy: builtinDecoy({ seed: 'acme' }),
      onUpgrade: () => false,
      http01: (token) => acme.http01(token),
    });
    // Someone who can write the data directory plants a link at the name a private file was
    // once written through (KEY.tmp): the key must not land in the file it points at.
    mkdirSync(join(tmp.path, 'data', 'acme'), { recursive: true, mode: 0o700 });
    writeFileSync(join(tmp.path, 'victim'), 'victim');
    symlinkSync(join(tmp.path, 'victim'), join(tmp.path, 'data', 'acme', `${DOMAIN}.key.tmp`));
    pebble = await startPebble(tmp.path, plain.port);
    acme = createAcme({
      domains: [DOMAIN],
      dataDir: join(tmp.path, 'data'),
      directoryUrl: pebble.directoryUrl,
      directoryCa: pebble.ca,
      retryDelayMs: 1000,
      onCertificate: (c) => {
        swapped.push(c.cert);
        front?.setTlsCredentials(c);
      },
    });
  });
  after(async () => {
    acme?.stop();
    await front?.close();
    await plain?.close();
    await pebble?.stop();
    tmp.remove();
  });

  let root = '';
  let firstSerial = '';

  test('obtains a certificate through HTTP-01 on the plain front and serves it over TLS', async () => {
    const creds = await acme.start();
    assert.equal(swapped.length, 1);
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/acme-secret',
      tls: creds,
      decoy: builtinDecoy({ seed: 'acme' }),
      onUpgrade: () => false,
    });
    root = await fetchText(`https://127.0.0.1:${pebble.mgmtPort}/roots/0`, pebble.ca);
    const chain = String(creds.cert).split(/(?=-----BEGIN CERTIFICATE-----)/);
    const trust = [root, ...chain.slice(1)].join('\n');
    const served = await peerCert(front.port, trust);
    assert.match(served.subjectAltName ?? '', new RegExp(`DNS:${DOMAIN.replace(/\./g, '\\.')}`));
    assert.match(served.issuer, /Pebble Intermediate CA/);
    firstSerial = served.serialNumber;
    const lifetime = Date.parse(served.validTo) - Date.parse(served.validFrom);
    assert.ok(lifetime <= VALIDITY_S * 1000 + 1000, `lifetime ${lifetime} ms`);
    const r = await exchange(front.port, `GET / HTTP/1.1\r\nHost: ${DOMAIN}\r\n\r\n`, {
      tls: { servername: DOMAIN, ca: trust },
    });
    assert.equal(splitResponse(r.text).status, 200);
  });

  test('account key and certificate are stored 0600 under a 0700 directory', () => {
    const dir = join(tmp.path, 'data', 'acme');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of [`${DOMAIN}.crt`, `${DOMAIN}.key`])
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    const accounts = readFileSync(join(dir, `${DOMAIN}.crt`), 'utf8');
    assert.match(accounts, /BEGIN CERTIFICATE/);
    assert.equal(readFileSync(join(tmp.path, 'victim'), 'utf8'), 'victim', 'a planted link was followed');
    assert.ok(
      !lstatSync(join(dir, `${DOMAIN}.key`)).isSymbolicLink(),
      'the key is a file, not the planted link',
    );
  });

  test('renews at 2/3 of the lifetime and the TLS front serves the new certificate', async () => {
    const due = acme.renewalDue();
    assert.ok(due);
    const served = await waitFor(
      async () => {
        const c = await peerCert(
          front!.port,
          [
            root,
            ...String(acme.current()?.cert ?? '')
              .split(/(?=-----BEGIN CERTIFICATE-----)/)
              .slice(1),
          ].join('\n'),
        );
        return c.serialNumber !== firstSerial ? c : undefined;
      },
      { timeoutMs: VALIDITY_S * 2000, intervalMs: 250, message: 'a renewed certificate served' },
    );
    assert.ok(Date.now() >= due.getTime());
    assert.ok(swapped.length >= 2);
    // Renewed before the old one expired.
    assert.ok(Date.now() < due.getTime() + (VALIDITY_S * 1000) / 3 + 2000);
    assert.match(served.issuer, /Pebble Intermediate CA/);
    assert.equal(renewalTime(acme.current()!.cert).getTime(), acme.renewalDue()!.getTime());
  });

  test('a restart with a certificate not yet due loads it from disk instead of ordering', async () => {
    acme.stop();
    const before = readFileSync(join(tmp.path, 'data', 'acme', `${DOMAIN}.crt`), 'utf8');
    const again = createAcme({
      domains: [DOMAIN],
      dataDir: join(tmp.path, 'data'),
      directoryUrl: pebble.directoryUrl,
      directoryCa: pebble.ca,
      renewFraction: 0.99,
    });
    try {
      const c = await again.start();
      assert.equal(String(c.cert), before);
    } finally {
      again.stop();
    }
  });
});

describe('startWebService with --acme (pebble)', { skip: PEBBLE_SKIP }, () => {
  const tmp = tempDir('acme-service');
  let pebble: Pebble;
  let service: WebService | undefined;
  after(async () => {
    await service?.close();
    await pebble?.stop();
    tmp.remove();
  });

  test('challenge listener + TLS front; the certificate is renewed and swapped in', async () => {
    const httpPort = await freePort();
    pebble = await startPebble(tmp.path, httpPort);
    const seen: string[] = [];
    service = await startWebService(
      {
        port: 0,
        host: '127.0.0.1',
        secretPath: '/svc-secret',
        acmeDomains: [DOMAIN],
        acmeHttpPort: httpPort,
        acmeDirectoryUrl: pebble.directoryUrl,
        acmeDirectoryCa: pebble.ca,
        dataDir: join(tmp.path, 'data'),
      },
      (_req, _socket, _head, addr) => {
        seen.push(addr);
        return false;
      },
    );
    assert.equal(service.front.tls, true);
    assert.equal(service.challengeFront?.tls, false);
    const root = await fetchText(`https://127.0.0.1:${pebble.mgmtPort}/roots/0`, pebble.ca);
    const trust = (): string =>
      [
        root,
        ...String(service!.acme!.current()!.cert)
          .split(/(?=-----BEGIN CERTIFICATE-----)/)
          .slice(1),
      ].join('\n');
    const first = await peerCert(service.front.port, trust());
    const renewed = await waitFor(
      async () => {
        const c = await peerCert(service!.front.port, trust());
        return c.serialNumber !== first.serialNumber ? c : undefined;
      },
      { timeoutMs: VALIDITY_S * 2000, intervalMs: 250, message: 'a renewed certificate served' },
    );
    assert.match(renewed.issuer, /Pebble Intermediate CA/);
    // The challenge listener is an ordinary site for everyone else.
    const r = await exchange(httpPort, 'GET /.well-known/acme-challenge/unknown HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(splitResponse(r.text).status, 404);
    assert.deepEqual(seen, []);
  });
});
