// The ShadowTLS v3 client (src/transport/shadowtls-dialer.ts) against Ladder's ShadowTLS listener
// (src/server/shadowtls/) relaying the handshake to a real TLS 1.3 server on loopback (openssl
// s_server, lab CA certificate): the stream through it echoes 4 MiB byte-identical (the
// ClientHello's tag accepted, the site's records untagged, the switch, both HMAC chains); a wrong
// ShadowTLS password fails the dial with one line while the listener relays that connection to
// the site; the hello on the wire is one record with the 32-byte tagged session id; a site that
// asks for another key share (HelloRetryRequest) is refused with one line.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { ShadowTlsPasswords } from '../../src/server/shadowtls/passwords.js';
import { silentLogger } from '../../src/shared/logger.js';
import { dialShadowTls, HELLO_RETRY, NOT_AUTHENTICATED } from '../../src/transport/shadowtls-dialer.js';
import { freePort } from '../helpers/net.js';
import { spawnPeer, type Peer } from '../helpers/peers.js';
import { opensslSkip } from '../web/fixtures.js';

const SNI = 'site.test';
const PASSWORD = 'stls-test-password';

function echoAll(stream: Duplex, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let n = 0;
    stream.on('data', (c: Buffer) => {
      got.push(c);
      n += c.length;
      if (n >= payload.length) resolve(Buffer.concat(got));
    });
    stream.on('error', reject);
    stream.on('end', () => resolve(Buffer.concat(got)));
    stream.write(payload);
  });
}

describe(
  'ShadowTLS v3 client ↔ Ladder ShadowTLS listener ↔ openssl s_server -tls1_3',
  { skip: opensslSkip() },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-stls-'));
    let site: Peer;
    let sitePort: number;
    let listener: ShadowTlsListener;
    const hellos: Buffer[] = [];
    let tap: net.Server;
    let tapPort: number;

    before(async () => {
      const certs = await makeLabCertificates([SNI]);
      writeFileSync(join(dir, 'cert.pem'), certs.cert);
      writeFileSync(join(dir, 'key.pem'), certs.key);
      sitePort = await freePort();
      site = await spawnPeer(
        'openssl s_server',
        'openssl',
        [
          's_server',
          '-tls1_3',
          '-accept',
          `127.0.0.1:${sitePort}`,
          '-cert',
          'cert.pem',
          '-key',
          'key.pem',
          '-www',
          '-quiet',
        ],
        { waitPort: sitePort, cwd: dir },
      );
      listener = await listenShadowTls({
        port: 0,
        host: '127.0.0.1',
        handshake: { host: '127.0.0.1', port: sitePort },
        passwords: [PASSWORD],
        idleMs: 10_000,
        logger: silentLogger,
        onStream: (stream) => {
          stream.on('error', () => {});
          stream.pipe(stream);
        },
      });
      // A tap in front of the listener keeps each connection's first bytes (the hello as sent).
      tap = net.createServer((c) => {
        const up = net.connect(listener.address.port, '127.0.0.1');
        let first = true;
        c.on('data', (d: Buffer) => {
          if (first) hellos.push(Buffer.from(d));
          first = false;
          up.write(d);
        });
        up.pipe(c);
        c.on('end', () => up.end());
        c.on('error', () => up.destroy());
        up.on('error', () => c.destroy());
      });
      await new Promise<void>((r) => tap.listen(0, '127.0.0.1', r));
      tapPort = (tap.address() as net.AddressInfo).port;
    });
    after(async () => {
      tap?.close();
      await listener?.close();
      await site?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('4 MiB echoed byte-identical through the switched connection', async () => {
      const stream = await dialShadowTls({
        address: '127.0.0.1',
        port: tapPort,
        sni: SNI,
        password: PASSWORD,
      });
      const payload = randomBytes(4 * 1024 * 1024);
      const back = await echoAll(stream, payload);
      assert.equal(
        createHash('sha256').update(back).digest('hex'),
        createHash('sha256').update(payload).digest('hex'),
      );
      stream.end();
      assert.equal(listener.counts.switched, 1);
      const hello = hellos.at(-1)!;
      assert.equal(hello[0], 22, 'a handshake record first');
      assert.equal(
        hello.readUInt16BE(3) + 5,
        hello.length,
        'the whole hello in one record, alone in its write',
      );
      // The server's check (ShadowTlsPasswords.match) on the hello as sent: its password, not another's.
      assert.equal(
        new ShadowTlsPasswords([PASSWORD]).match(hello),
        PASSWORD,
        'its session id carries the tag',
      );
      assert.equal(new ShadowTlsPasswords(['another', PASSWORD]).match(hello, '10.0.0.1'), PASSWORD);
      assert.equal(new ShadowTlsPasswords(['another']).match(hello), undefined);
      const one = new ShadowTlsPasswords([PASSWORD]);
      for (let i = 5; i < hello.length; i++) {
        const bad = Buffer.from(hello);
        bad[i] = bad[i]! ^ 0x40;
        assert.equal(one.match(bad), undefined, `byte ${i} changed`);
      }
      assert.equal(one.match(hello.subarray(0, 70)), undefined, 'truncated');
      assert.equal(
        one.match(Buffer.concat([Buffer.of(23), hello.subarray(1)])),
        undefined,
        'not a handshake',
      );
    });

    test('a wrong ShadowTLS password: the dial fails with one line, the listener relays to the site', async () => {
      const relayed = listener.counts.relayed;
      await assert.rejects(
        dialShadowTls({ address: '127.0.0.1', port: listener.address.port, sni: SNI, password: 'wrong' }),
        (err: Error) => {
          assert.equal(err.message, NOT_AUTHENTICATED);
          return true;
        },
      );
      assert.equal(listener.counts.relayed, relayed + 1);
    });

    test('a site that answers with a HelloRetryRequest (s_server -groups P-256): refused with one line', async () => {
      const port = await freePort();
      const hrrSite = await spawnPeer(
        'openssl s_server (P-256)',
        'openssl',
        [
          's_server',
          '-tls1_3',
          '-groups',
          'P-256',
          '-accept',
          `127.0.0.1:${port}`,
          '-cert',
          'cert.pem',
          '-key',
          'key.pem',
          '-www',
          '-quiet',
        ],
        { waitPort: port, cwd: dir },
      );
      const front = await listenShadowTls({
        port: 0,
        host: '127.0.0.1',
        handshake: { host: '127.0.0.1', port },
        passwords: [PASSWORD],
        idleMs: 10_000,
        logger: silentLogger,
        onStream: (stream) => stream.destroy(),
      });
      try {
        await assert.rejects(
          dialShadowTls({ address: '127.0.0.1', port: front.address.port, sni: SNI, password: PASSWORD }),
          (err: Error) => {
            assert.equal(err.message, `ShadowTLS handshake failed: ${HELLO_RETRY}`);
            return true;
          },
        );
      } finally {
        await front.close();
        await hrrSite.stop();
      }
    });
  },
);
