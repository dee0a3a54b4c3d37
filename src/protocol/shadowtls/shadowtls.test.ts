/**
 * Known-answer tests for the ShadowTLS v3 codec. The expected values are derived by hand from the
 * reference implementations' semantics (ihciah/shadow-tls docs/protocol-v3-en.md, src/server.rs,
 * src/util.rs; SagerNet/sing-shadowtls v3_server.go, v3_conn.go, v3_client.go) and computed with
 * node:crypto's one-shot createHmac/createHash over the concatenated byte stream, independently of
 * the codec's RunningHmac. The hex literals were printed once by such a one-shot computation (the ClientHello tag also
 * by Python's hmac module).
 */
import { strict as assert } from 'node:assert';
import { createHash, createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  CLIENT_HELLO_TAG_OFFSET,
  clientHelloTagInput,
  DataOpener,
  HandshakeTagger,
  HandshakeUntagger,
  MAX_DATA_PAYLOAD,
  RecordReader,
  RunningHmac,
  closingAlert,
  connectionHmac,
  matchFirstData,
  sealData,
  serverHelloSelectsTls13,
  serverRandomOf,
  signClientHello,
  tagsEqual,
} from './index.js';

const PW = 'test-pw';
const SR = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const hmac4 = (...parts: (string | Buffer)[]): Buffer => {
  const h = createHmac('sha1', PW);
  for (const p of parts) h.update(p);
  return h.digest().subarray(0, 4);
};

/**
 * Whether `password` signed this first record, as the server checks it (server/shadowtls/passwords.ts
 * ShadowTlsPasswords.match, tested there against real hellos): the tag input, one-shot HMAC-SHA1.
 */
function signedBy(rec: Buffer, password: string): boolean {
  const input = clientHelloTagInput(rec);
  if (!input) return false;
  return tagsEqual(createHmac('sha1', password).update(input.message).digest().subarray(0, 4), input.tag);
}

function record(type: number, body: Buffer, version = 0x0303): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeUInt16BE(version, 1);
  h.writeUInt16BE(body.length, 3);
  return Buffer.concat([h, body]);
}

function handshakeMessage(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUIntBE(body.length, 1, 3);
  return Buffer.concat([h, body]);
}

function ext(type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16BE(type, 0);
  h.writeUInt16BE(data.length, 2);
  return Buffer.concat([h, data]);
}

function withLen16(b: Buffer): Buffer {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(b.length);
  return Buffer.concat([h, b]);
}

/** A ClientHello message: version 0303, random 0x11…, 32-byte session id, 2 suites, SNI, supported_versions. */
function clientHello(sidLength = 32): Buffer {
  const sni = Buffer.from('www.example.com');
  const sniList = withLen16(Buffer.concat([Buffer.from([0]), withLen16(sni)]));
  const exts = withLen16(Buffer.concat([ext(0, sniList), ext(43, Buffer.from([2, 3, 4]))]));
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 0x11),
    Buffer.from([sidLength]),
    Buffer.alloc(sidLength, 0),
    Buffer.from([0, 4, 0x13, 0x01, 0x13, 0x02]),
    Buffer.from([1, 0]),
    exts,
  ]);
  return handshakeMessage(1, body);
}

function serverHello(version: number | undefined): Buffer {
  const exts = version === undefined ? Buffer.alloc(0) : ext(43, Buffer.from([version >> 8, version & 0xff]));
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    SR,
    Buffer.from([32]),
    Buffer.alloc(32, 0x44),
    Buffer.from([0x13, 0x01, 0]),
    withLen16(Buffer.concat([ext(51, Buffer.alloc(36, 7)), exts])),
  ]);
  return record(22, handshakeMessage(2, body));
}

describe('shadowtls RunningHmac', () => {
  it('equals one-shot HMAC-SHA1 over the bytes fed so far, and keeps going after a read', () => {
    for (const key of ['k', 'x'.repeat(64), 'long-'.repeat(30)]) {
      const h = new RunningHmac(key, Buffer.from('init'));
      h.update(Buffer.from('abc'));
      assert.deepEqual(h.digest(), createHmac('sha1', key).update('initabc').digest());
      const fork = h.clone();
      h.update(Buffer.from('def'));
      assert.deepEqual(h.tag(), createHmac('sha1', key).update('initabcdef').digest().subarray(0, 4));
      assert.deepEqual(fork.tag(), createHmac('sha1', key).update('initabc').digest().subarray(0, 4));
    }
  });
});

describe('shadowtls ClientHello session id', () => {
  it('signs the last 4 session-id bytes with HMAC-SHA1(password) over the message, tag zeroed', () => {
    const msg = clientHello();
    signClientHello(msg, PW, Buffer.alloc(28, 0x22));
    const zeroed = Buffer.from(msg);
    zeroed.fill(0, CLIENT_HELLO_TAG_OFFSET, CLIENT_HELLO_TAG_OFFSET + 4);
    const tag = msg.subarray(CLIENT_HELLO_TAG_OFFSET, CLIENT_HELLO_TAG_OFFSET + 4);
    assert.deepEqual(tag, hmac4(zeroed));
    assert.equal(tag.toString('hex'), '36a97ede');
    assert.deepEqual(msg.subarray(39, 67), Buffer.alloc(28, 0x22));
    const rec = record(22, msg, 0x0301);
    assert.ok(signedBy(rec, PW));
    assert.ok(!signedBy(rec, 'other'));
  });

  it('refuses a changed byte anywhere, a short session id, a non-handshake record, a truncated one', () => {
    const msg = signClientHello(clientHello(), PW);
    const rec = record(22, msg, 0x0301);
    for (let i = 5; i < rec.length; i++) {
      const bad = Buffer.from(rec);
      bad[i] = bad[i]! ^ 0x40;
      assert.ok(!signedBy(bad, PW), `byte ${i}`);
    }
    assert.equal(clientHelloTagInput(record(23, msg)), undefined);
    assert.equal(clientHelloTagInput(rec.subarray(0, 70)), undefined);
    assert.throws(() => signClientHello(clientHello(16), PW), /32 bytes/);
    assert.equal(clientHelloTagInput(record(22, clientHello(16))), undefined);
  });
});

describe('shadowtls ServerHello', () => {
  it('gives the ServerRandom and whether TLS 1.3 was selected', () => {
    assert.deepEqual(serverRandomOf(serverHello(0x0304)), SR);
    assert.equal(serverHelloSelectsTls13(serverHello(0x0304)), true);
    assert.equal(serverHelloSelectsTls13(serverHello(0x0303)), false);
    assert.equal(serverHelloSelectsTls13(serverHello(undefined)), false);
    assert.equal(serverRandomOf(record(22, clientHello())), undefined);
    assert.equal(serverRandomOf(record(23, Buffer.alloc(60))), undefined);
    const sh = serverHello(0x0304);
    for (let cut = 0; cut < sh.length; cut++) serverHelloSelectsTls13(sh.subarray(0, cut)); // no throw
    assert.equal(serverHelloSelectsTls13(sh.subarray(0, sh.length - 1)), false);
  });
});

describe('shadowtls handshake-phase tagging', () => {
  it('XORs application data with SHA-256(password‖ServerRandom) and prefixes HMAC_SR, chained', () => {
    const key = createHash('sha256').update(PW).update(SR).digest();
    assert.equal(key.toString('hex'), '2331fc1e6ebea45dff410bd7b18da270eae4106419c0886e22b8c54cf35dffde');
    const tagger = new HandshakeTagger(PW, SR);
    const first = record(23, Buffer.from('hello world'));
    const out1 = tagger.tag(first);
    assert.equal(out1.toString('hex'), '1703030' + '00f' + '21172828' + '4b549072019ed3328d2d6f');
    const body2 = Buffer.alloc(40, 0xab);
    const out2 = tagger.tag(record(23, body2));
    const x2 = Buffer.from(body2.map((b, i) => b ^ key[i % 32]!));
    assert.deepEqual(out2.subarray(5, 9), hmac4(SR, Buffer.from('4b549072019ed3328d2d6f', 'hex'), x2));
    assert.deepEqual(out2.subarray(9), x2);
    const hs = serverHello(0x0304);
    assert.equal(tagger.tag(hs), hs); // other types untouched
    const untagger = new HandshakeUntagger(PW, SR);
    assert.deepEqual(untagger.untag(out1), first);
    assert.deepEqual(untagger.untag(out2), record(23, body2));
    assert.equal(new HandshakeUntagger(PW, SR).untag(out2), undefined); // out of order
  });
});

describe('shadowtls data records', () => {
  it('client data: HMAC_SR_C tag, then the tag fed back; the first tagged record switches', () => {
    const c = connectionHmac(PW, SR, 'C');
    const p1 = Buffer.from('first payload');
    const p2 = Buffer.from('second');
    const r1 = sealData(c, p1);
    const r2 = sealData(c, p2);
    assert.equal(r1.toString('hex'), '1703030011' + 'd655ced2' + p1.toString('hex'));
    assert.equal(r2.subarray(5, 9).toString('hex'), '90195486');
    assert.deepEqual(r1.subarray(5, 9), hmac4(SR, 'C', p1));
    assert.deepEqual(r2.subarray(5, 9), hmac4(SR, 'C', p1, r1.subarray(5, 9), p2));

    const server = connectionHmac(PW, SR, 'C');
    assert.equal(matchFirstData(server, record(23, Buffer.alloc(30))), undefined); // a TLS record
    assert.deepEqual(matchFirstData(server, r1), p1);
    const opener = new DataOpener(server);
    assert.deepEqual(opener.open(r2), { kind: 'data', payload: p2 });
  });

  it('server data with HMAC_SR_S; tampering, reordering, a wrong version or type is bad; alert', () => {
    const s = connectionHmac(PW, SR, 'S');
    const r1 = sealData(s, Buffer.from('first payload'));
    assert.equal(r1.subarray(5, 9).toString('hex'), 'f672308b');
    const r2 = sealData(s, Buffer.from('x'));
    assert.deepEqual(new DataOpener(connectionHmac(PW, SR, 'S')).open(r2), { kind: 'bad' });
    const tampered = Buffer.from(r1);
    tampered[12] = tampered[12]! ^ 1;
    assert.deepEqual(new DataOpener(connectionHmac(PW, SR, 'S')).open(tampered), { kind: 'bad' });
    const v = Buffer.from(r1);
    v[2] = 1;
    assert.deepEqual(new DataOpener(connectionHmac(PW, SR, 'S')).open(v), { kind: 'bad' });
    assert.deepEqual(new DataOpener(connectionHmac(PW, SR, 'S')).open(record(22, Buffer.alloc(9))), {
      kind: 'bad',
    });
    assert.deepEqual(new DataOpener(connectionHmac(PW, SR, 'S')).open(closingAlert(Buffer.alloc(26))), {
      kind: 'alert',
    });
    assert.equal(closingAlert(Buffer.alloc(26, 1)).toString('hex', 0, 5), '150303001a');
  });

  it('splits payloads at 16384 bytes a record; nothing for an empty payload', () => {
    const big = Buffer.alloc(2 * MAX_DATA_PAYLOAD + 7232, 5);
    const sealed = sealData(connectionHmac(PW, SR, 'S'), big);
    const reader = new RecordReader();
    reader.push(sealed);
    const opener = new DataOpener(connectionHmac(PW, SR, 'S'));
    const sizes: number[] = [];
    for (let r = reader.next(); r; r = reader.next()) {
      const res = opener.open(r);
      assert.equal(res.kind, 'data');
      if (res.kind === 'data') sizes.push(res.payload.length);
    }
    assert.deepEqual(sizes, [16384, 16384, 7232]);
    assert.equal(sealData(connectionHmac(PW, SR, 'S'), Buffer.alloc(0)).length, 0);
  });

  it('client drops leftover HMAC_SR-tagged handshake records after its switch', () => {
    const tagger = new HandshakeTagger(PW, SR);
    const untagger = new HandshakeUntagger(PW, SR);
    untagger.untag(tagger.tag(record(23, Buffer.alloc(50, 1))));
    const leftover = tagger.tag(record(23, Buffer.alloc(20, 2)));
    const data = sealData(connectionHmac(PW, SR, 'S'), Buffer.from('payload'));
    const opener = new DataOpener(connectionHmac(PW, SR, 'S'), untagger.chain());
    assert.deepEqual(opener.open(leftover), { kind: 'ignored' });
    assert.deepEqual(opener.open(data), { kind: 'data', payload: Buffer.from('payload') });
  });
});

describe('shadowtls RecordReader', () => {
  it('returns whole records whatever the split, and refuses a record above its limit', () => {
    const recs = [
      record(22, Buffer.alloc(300, 1)),
      record(20, Buffer.from([1])),
      record(23, Buffer.alloc(70000 % 65536, 3)),
    ];
    const all = Buffer.concat(recs);
    for (const step of [1, 2, 5, 7, 4096]) {
      const r = new RecordReader();
      const got: Buffer[] = [];
      for (let i = 0; i < all.length; i += step) {
        r.push(all.subarray(i, i + step));
        for (let x = r.next(); x; x = r.next()) got.push(Buffer.from(x));
      }
      assert.deepEqual(got, recs);
      assert.equal(r.pending, 0);
    }
    const small = new RecordReader(1000);
    small.push(record(22, Buffer.alloc(1001)).subarray(0, 5));
    assert.throws(
      () => small.next(),
      (e: Error & { code?: string }) => e.code === 'ERR_TLS',
    );
    assert.equal(small.drain().length, 5);
  });
});
