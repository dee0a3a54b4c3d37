// The TLS 1.3 client's paths no Debian peer takes (OpenSSL 3.0 compresses no certificate and
// speaks no ALPS): a scripted server on loopback, built from the RFC 8448-checked key schedule,
// answers with ALPN h2 and ALPS in EncryptedExtensions and a brotli CompressedCertificate (RFC
// 8879), as Google's and Cloudflare's servers do. The client must decompress, verify, send its
// own EncryptedExtensions with application_settings before its Finished, and read data after.
// Both sides share this code's reading of the formats: a code-path test, not interop.
import assert from 'node:assert/strict';
import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  sign,
} from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { brotliCompressSync } from 'node:zlib';
import { makeLabCertificates, type LabCertificates } from '../../src/lab/lab-ca.js';
import { RecordReader } from '../../src/protocol/shadowtls/record.js';
import { Writer } from '../../src/protocol/tls13/client-hello.js';
import {
  CONTENT_HANDSHAKE,
  KeySchedule,
  RecordProtection,
  SUITES,
} from '../../src/protocol/tls13/key-schedule.js';
import {
  handshakeMessage,
  HandshakeReader,
  Reader,
  readExtensions,
  serverSignedContent,
} from '../../src/protocol/tls13/messages.js';
import { connectTls13 } from '../../src/transport/tls13/client.js';

let certs: LabCertificates;
let srv: net.Server;
const seen: { clientEe?: Buffer; finishedOk?: boolean } = {};

/** One scripted handshake, then "hello over h2" under the server's application key. */
function script(sock: net.Socket): void {
  const reader = new RecordReader();
  const suite = SUITES.get(0x1301)!;
  const transcript: Buffer[] = [];
  const hash = (): Buffer => transcript.reduce((h, m) => h.update(m), createHash('sha256')).digest();
  let ks: KeySchedule;
  let hs: { client: Buffer; server: Buffer };
  let app: { client: Buffer; server: Buffer };
  let clientRead: RecordProtection | undefined;
  const clientMsgs = new HandshakeReader();
  sock.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    for (let rec = reader.next(); rec; rec = reader.next()) {
      if (rec[0] === 20) continue; // the client's change_cipher_spec
      if (!clientRead) {
        const ch = rec.subarray(5);
        transcript.push(ch);
        const r = new Reader(ch.subarray(4), 'CH');
        r.u16();
        r.bytes(32);
        const sid = r.vec(1);
        r.vec(2);
        r.vec(1);
        const ks51 = new Reader(readExtensions(r, 'CH').get(51)!, 'ks');
        const shares = new Reader(ks51.vec(2), 'shares');
        let peer: Buffer | undefined;
        while (shares.left > 0) {
          const g = shares.u16();
          const d = shares.vec(2);
          if (g === 0x001d) peer = d;
        }
        const { privateKey, publicKey } = generateKeyPairSync('x25519');
        const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
        const shared = diffieHellman({
          privateKey,
          publicKey: createPublicKey({
            key: { kty: 'OKP', crv: 'X25519', x: peer!.toString('base64url') },
            format: 'jwk',
          }),
        });
        const sh = handshakeMessage(
          2,
          new Writer()
            .u16(0x0303)
            .bytes(Buffer.alloc(32, 7))
            .vec(1, (w) => w.bytes(sid))
            .u16(0x1301)
            .u8(0)
            .vec(2, (w) =>
              w
                .u16(43)
                .vec(2, (v) => v.u16(0x0304))
                .u16(51)
                .vec(2, (v) => v.u16(0x001d).vec(2, (k) => k.bytes(pub))),
            )
            .done(),
        );
        transcript.push(sh);
        ks = new KeySchedule(suite);
        hs = ks.handshake(shared, hash());
        const write = new RecordProtection(suite, hs.server);
        clientRead = new RecordProtection(suite, hs.client);
        const ee = handshakeMessage(
          8,
          new Writer()
            .vec(2, (w) => {
              w.u16(16).vec(2, (a) => a.vec(2, (l) => l.vec(1, (p) => p.bytes(Buffer.from('h2')))));
              w.u16(17613).vec(2, (a) => a.bytes(Buffer.from('server-settings')));
            })
            .done(),
        );
        transcript.push(ee);
        const der = Buffer.from(certs.cert.toString().replace(/-----[^-]+-----|\s/g, ''), 'base64');
        const certBody = new Writer()
          .u8(0)
          .vec(3, (l) => l.vec(3, (c) => c.bytes(der)).u16(0))
          .done();
        const packed = brotliCompressSync(certBody);
        const cc = handshakeMessage(
          25,
          new Writer()
            .u16(2)
            .u8(certBody.length >> 16)
            .u16(certBody.length & 0xffff)
            .vec(3, (w) => w.bytes(packed))
            .done(),
        );
        transcript.push(cc);
        const rsa = createPrivateKey(certs.key).asymmetricKeyType === 'rsa';
        const sig = rsa
          ? sign('sha256', serverSignedContent(hash()), {
              key: certs.key,
              padding: constants.RSA_PKCS1_PSS_PADDING,
              saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
            })
          : sign('sha256', serverSignedContent(hash()), certs.key);
        const cv = handshakeMessage(
          15,
          new Writer()
            .u16(rsa ? 0x0804 : 0x0403)
            .vec(2, (w) => w.bytes(sig))
            .done(),
        );
        transcript.push(cv);
        const fin = handshakeMessage(20, ks.finished(hs.server, hash()));
        transcript.push(fin);
        app = ks.application(hash());
        sock.write(
          Buffer.concat([
            Buffer.of(22, 3, 3, sh.length >> 8, sh.length & 0xff),
            sh,
            Buffer.of(20, 3, 3, 0, 1, 1),
            write.seal(CONTENT_HANDSHAKE, Buffer.concat([ee, cc, cv, fin])),
          ]),
        );
        continue;
      }
      const { content } = clientRead.open(rec);
      clientMsgs.push(content);
      for (let m = clientMsgs.next(); m; m = clientMsgs.next()) {
        if (m.type === 8) {
          seen.clientEe = m.body;
          transcript.push(m.message);
        } else if (m.type === 20) {
          seen.finishedOk = ks!.finished(hs!.client, hash()).equals(m.body);
          sock.end(new RecordProtection(suite, app!.server).seal(23, Buffer.from('hello over h2')));
        }
      }
    }
  });
  sock.on('error', () => {});
}

before(async () => {
  certs = await makeLabCertificates(['site.test']);
  srv = net.createServer(script);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
});
after(() => srv?.close());

test('ALPS and a brotli-compressed certificate: verified, answered, data read after', async () => {
  const s = await connectTls13(net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1'), {
    serverName: 'site.test',
    certificate: { ca: certs.ca },
  });
  assert.equal(s.alpnProtocol, 'h2');
  const got = await new Promise<string>((resolve, reject) => {
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
  s.destroy();
  assert.equal(got, 'hello over h2');
  // The client's EncryptedExtensions: one extension, application_settings (17613), empty settings.
  assert.equal(seen.clientEe?.toString('hex'), '000444cd0000');
  assert.equal(seen.finishedOk, true, "the client's Finished covers its EncryptedExtensions");
});
