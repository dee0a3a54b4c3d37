// Known answers for the TLS 1.3 key schedule and record protection: RFC 8448 §3, "Simple 1-RTT
// Handshake" (the trace's x25519 keys, handshake messages, secrets, keys, IVs, Finished messages
// and the client's first application-data record), and the ClientHello's Chrome shape.
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import { describe, test } from 'node:test';
import { parseClientHelloRecord } from '../tls/clienthello.js';
import {
  encodeClientHello,
  EXT_ECH,
  EXT_KEY_SHARE,
  EXT_SERVER_NAME,
  EXT_SUPPORTED_VERSIONS,
  GROUP_X25519,
  newHelloSpec,
} from './client-hello.js';
import {
  CONTENT_APPLICATION_DATA,
  expandLabel,
  KeySchedule,
  RecordProtection,
  SUITES,
} from './key-schedule.js';
import {
  HandshakeReader,
  parseCertificate,
  parseCertificateVerify,
  parseEncryptedExtensions,
  parseServerHello,
} from './messages.js';
import { ProtocolError } from '../errors.js';

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const RFC = {
  clientPrivate: '49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005',
  serverPublic: 'c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f',
  shared: '8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d',
  handshakeSecret: '1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac',
  cHs: 'b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21',
  sHs: 'b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38',
  master: '18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919',
  cAp: '9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5',
  sAp: 'a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643',
  sHsKey: '3fce516009c21727d0f2e4e86ee403bc',
  sHsIv: '5d313eb2671276ee13000b30',
  cHsKey: 'dbfaa693d1762c5b666af5d950258d01',
  cHsIv: '5bd3c71b836e0b76bb73265f',
  clientHello:
    '010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113031302010000910000000b0009000006736572766572ff01000100000a00140012001d0017001800190100010101020103010400230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c00024001',
  serverHello:
    '020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304',
  encryptedExtensions: '080000240022000a00140012001d00170018001901000101010201030104001c0002400100000000',
  certificate:
    '0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a864886f70d01010b0500300e310c300a06035504031303727361301e170d3136303733303031323335395a170d3236303733303031323335395a300e310c300a0603550403130372736130819f300d06092a864886f70d010101050003818d0030818902818100b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826d3901a2461eafd2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced43120998e187a80ee0ccb0524b1b018c3e0b63264d449a6d38e22a5fda430846748030530ef0461c8ca9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a8d88d79f7f1e3f0203010001a31a301830090603551d1304023000300b0603551d0f0404030205a0300d06092a864886f70d01010b05000381810085aad2a0e5b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a58c8f8172f9319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102702e608ccae6bec1fc63a42a99be5c3eb7107c3c54e9b9eb2bd5203b1c3b84e0a8b2f759409ba3eac9d91d402dcc0cc8f8961229ac9187b42b4de10000',
  certificateVerify:
    '0f000084080400805a747c5d88fa9bd2e55ab085a61015b7211f824cd484145ab3ff52f1fda8477b0b7abc90db78e2d33a5c141a078653fa6bef780c5ea248eeaaa785c4f394cab6d30bbe8d4859ee511f602957b15411ac027671459e46445c9ea58c181e818e95b8c3fb0bf3278409d3be152a3da5043e063dda65cdf5aea20d53dfacd42f74f3',
  serverFinished: '140000209b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718',
  clientFinished: '14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61',
  clientAppPayload:
    '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031',
  clientAppRecord:
    '1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4',
};

const sha256 = (...parts: string[]): Buffer => {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(h(p));
  return hash.digest();
};

describe('TLS 1.3 key schedule: RFC 8448 §3 known answers', () => {
  const suite = SUITES.get(0x1301)!;

  test('x25519 shared secret from the trace keys (as handshake.ts computes it)', () => {
    const pkcs8 = Buffer.concat([h('302e020100300506032b656e04220420'), h(RFC.clientPrivate)]);
    const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    const publicKey = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: h(RFC.serverPublic).toString('base64url') },
      format: 'jwk',
    });
    assert.equal(diffieHellman({ privateKey, publicKey }).toString('hex'), RFC.shared);
  });

  test('handshake and application secrets, keys, IVs and both Finished messages', () => {
    const ks = new KeySchedule(suite);
    const hs = ks.handshake(h(RFC.shared), sha256(RFC.clientHello, RFC.serverHello));
    assert.equal(ks.secrets.handshake?.toString('hex'), RFC.handshakeSecret);
    assert.equal(hs.client.toString('hex'), RFC.cHs);
    assert.equal(hs.server.toString('hex'), RFC.sHs);
    assert.equal(expandLabel('sha256', hs.server, 'key', Buffer.alloc(0), 16).toString('hex'), RFC.sHsKey);
    assert.equal(expandLabel('sha256', hs.server, 'iv', Buffer.alloc(0), 12).toString('hex'), RFC.sHsIv);
    assert.equal(expandLabel('sha256', hs.client, 'key', Buffer.alloc(0), 16).toString('hex'), RFC.cHsKey);
    assert.equal(expandLabel('sha256', hs.client, 'iv', Buffer.alloc(0), 12).toString('hex'), RFC.cHsIv);
    const toCv = sha256(
      RFC.clientHello,
      RFC.serverHello,
      RFC.encryptedExtensions,
      RFC.certificate,
      RFC.certificateVerify,
    );
    assert.equal(`14000020${ks.finished(hs.server, toCv).toString('hex')}`, RFC.serverFinished);
    const toSf = sha256(
      RFC.clientHello,
      RFC.serverHello,
      RFC.encryptedExtensions,
      RFC.certificate,
      RFC.certificateVerify,
      RFC.serverFinished,
    );
    const app = ks.application(toSf);
    assert.equal(ks.secrets.master?.toString('hex'), RFC.master);
    assert.equal(app.client.toString('hex'), RFC.cAp);
    assert.equal(app.server.toString('hex'), RFC.sAp);
    assert.equal(`14000020${ks.finished(hs.client, toSf).toString('hex')}`, RFC.clientFinished);
  });

  test("the client's first application-data record, sealed and opened", () => {
    const seal = new RecordProtection(suite, h(RFC.cAp));
    assert.equal(
      seal.seal(CONTENT_APPLICATION_DATA, h(RFC.clientAppPayload)).toString('hex'),
      RFC.clientAppRecord,
    );
    const open = new RecordProtection(suite, h(RFC.cAp));
    const got = open.open(h(RFC.clientAppRecord));
    assert.equal(got.type, CONTENT_APPLICATION_DATA);
    assert.equal(got.content.toString('hex'), RFC.clientAppPayload);
    // Second record under the same key uses sequence number 1: the same bytes no longer open.
    assert.throws(() => open.open(h(RFC.clientAppRecord)), /bad_record_mac/);
  });

  test("the trace's ServerHello parses; messages split across records reassemble", () => {
    const sh = parseServerHello(h(RFC.serverHello).subarray(4));
    assert.equal(sh.retry, false);
    assert.equal(sh.suite, 0x1301);
    assert.equal(sh.version, 0x0304);
    assert.equal(sh.keyShare?.group, GROUP_X25519);
    assert.equal(sh.keyShare?.data?.toString('hex'), RFC.serverPublic);
    const all = h(RFC.encryptedExtensions + RFC.certificate + RFC.certificateVerify + RFC.serverFinished);
    for (const cut of [1, 3, 4, 50, all.length - 1]) {
      const r = new HandshakeReader();
      r.push(all.subarray(0, cut));
      const types: number[] = [];
      for (let m = r.next(); m; m = r.next()) types.push(m.type);
      r.push(all.subarray(cut));
      for (let m = r.next(); m; m = r.next()) types.push(m.type);
      assert.deepEqual(types, [8, 11, 15, 20], `cut at ${cut}`);
    }
  });
});

test("every truncation of the trace's server messages is a ProtocolError, never a crash", () => {
  const cases: [string, (b: Buffer) => unknown][] = [
    [RFC.serverHello, (b) => parseServerHello(b)],
    [RFC.encryptedExtensions, (b) => parseEncryptedExtensions(b, [])],
    [RFC.certificate, (b) => parseCertificate(b)],
    [RFC.certificateVerify, (b) => parseCertificateVerify(b)],
  ];
  for (const [hex, parse] of cases) {
    const body = h(hex).subarray(4);
    assert.doesNotThrow(() => parse(body));
    for (let i = 0; i < body.length; i++) {
      // A ServerHello cut right before its extensions is a whole pre-1.3 one (the engine then
      // refuses its version): the one cut that parses.
      if (parse === cases[0]![1] && i === 38)
        assert.equal(parseServerHello(body.subarray(0, i)).version, 0x0303);
      else assert.throws(() => parse(body.subarray(0, i)), ProtocolError, `cut at ${i}`);
    }
  }
});

describe('ClientHello: Chrome 156 shape (without X25519MLKEM768)', () => {
  const share = { group: GROUP_X25519, data: Buffer.alloc(32, 7) };

  test('one record; GREASE first and last; SNI; 32-byte session id; TLS 1.3 offered; ECH GREASE', () => {
    const spec = newHelloSpec('www.example.com', ['h2', 'http/1.1']);
    const msg = encodeClientHello(spec, [share]);
    const rec = Buffer.concat([Buffer.of(22, 3, 1, msg.length >> 8, msg.length & 0xff), msg]);
    const info = parseClientHelloRecord(rec);
    assert.equal(info.serverName?.name, 'www.example.com');
    const exts = info.extensions;
    assert.equal(exts[0]! & 0x0f0f, 0x0a0a, 'GREASE extension first');
    assert.equal(exts.at(-1)! & 0x0f0f, 0x0a0a, 'GREASE extension last');
    for (const t of [
      EXT_SERVER_NAME,
      EXT_KEY_SHARE,
      EXT_SUPPORTED_VERSIONS,
      EXT_ECH,
      23,
      0xff01,
      10,
      11,
      35,
      16,
      5,
      13,
      18,
      45,
      27,
      17613,
      0xca34,
    ])
      assert.ok(exts.includes(t), `extension ${t}`);
    assert.equal(exts.length, 19);
    assert.equal(msg[38], 32, 'session id length');
    assert.ok(msg.length > 512, 'no padding needed with the ECH GREASE');
  });

  test('the extension order is permuted per connection (as Chrome 110+), the set is the same', () => {
    const orders = new Set<string>();
    for (let i = 0; i < 8; i++) orders.add(newHelloSpec('a.test', ['h2']).order.join(','));
    assert.ok(orders.size > 1);
    assert.deepEqual(
      [...newHelloSpec('a.test', []).order].sort((a, b) => a - b),
      [...newHelloSpec('b.test', []).order].sort((a, b) => a - b),
    );
  });

  test('no SNI for an IP address or none; no ALPN or ALPS when none is offered', () => {
    const msg = encodeClientHello(newHelloSpec(undefined, []), [share]);
    const info = parseClientHelloRecord(
      Buffer.concat([Buffer.of(22, 3, 1, msg.length >> 8, msg.length & 0xff), msg]),
    );
    assert.equal(info.serverName, undefined);
    assert.ok(!info.extensions.includes(16) && !info.extensions.includes(17613));
  });
});
