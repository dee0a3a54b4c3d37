import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { encodeAddress, toSocksAddress } from '../socks5/address.js';
import { AeadSession } from './aead.js';
import {
  Aead2022RequestDecoder,
  Aead2022RequestEncoder,
  Aead2022ResponseDecoder,
  Aead2022ResponseEncoder,
  MAX_PAYLOAD_2022,
  WRITE_CHUNK_2022,
  requestPrefixSize,
  responsePrefixSize,
  SaltWindow,
} from './aead2022.js';
import { IdentityTable } from './identity.js';
import { deriveIdentitySubkey, deriveSessionSubkey, pskHash } from './kdf2022.js';
import { AEAD_2022_METHODS, decodePsk, getAead2022Method, type Aead2022Method } from './methods2022.js';

const NOW = 1_700_000_000_000;
const METHODS = Object.values(AEAD_2022_METHODS);
const target = toSocksAddress('example.com', 443);

function key(method: Aead2022Method, fill = 0x11): Buffer {
  return Buffer.alloc(method.keySize, fill);
}

function code(c: string) {
  return (err: unknown) => err instanceof ProtocolError && err.code === c;
}

/** Hand-built request: salt | seal(fixed) | seal(variable), for header-violation tests. */
function craft(method: Aead2022Method, k: Buffer, fixed: Buffer, variable: Buffer): Buffer {
  const salt = Buffer.alloc(method.saltSize, 0x5a);
  const s = new AeadSession(method.aead, deriveSessionSubkey(k, salt));
  return Buffer.concat([salt, s.seal(fixed), s.seal(variable)]);
}

function fixedHeader(type: number, tsS: number, varLen: number): Buffer {
  const b = Buffer.alloc(11);
  b[0] = type;
  b.writeBigUInt64BE(BigInt(tsS), 1);
  b.writeUInt16BE(varLen, 9);
  return b;
}

function variableHeader(padLen: number, payload: Buffer): Buffer {
  const pad = Buffer.alloc(2);
  pad.writeUInt16BE(padLen, 0);
  return Buffer.concat([encodeAddress(target), pad, Buffer.alloc(padLen), payload]);
}

for (const method of METHODS) {
  describe(`SIP022 TCP ${method.name}`, () => {
    const k = key(method);

    it('round-trips a request with initial payload and later chunks', () => {
      const enc = new Aead2022RequestEncoder(method, k);
      const first = enc.encodeHeader(target, Buffer.from('GET / HTTP/1.1\r\n'), NOW);
      const dec = new Aead2022RequestDecoder(method, { key: k });
      assert.deepEqual(Buffer.concat(dec.push(first, NOW)).toString(), 'GET / HTTP/1.1\r\n');
      assert.deepEqual(dec.header?.target, target);
      assert.equal(dec.header?.paddingLength, 0);
      assert.deepEqual(dec.salt, enc.salt);
      assert.deepEqual(Buffer.concat(dec.push(enc.encode(Buffer.from('more')), NOW)).toString(), 'more');
      assert.ok(dec.atBoundary);
    });

    it('pads a request without payload (1..900 bytes) and the decoder yields nothing', () => {
      for (let i = 0; i < 20; i++) {
        const enc = new Aead2022RequestEncoder(method, k);
        const wire = enc.encodeHeader(target, Buffer.alloc(0), NOW);
        const dec = new Aead2022RequestDecoder(method, { key: k });
        assert.deepEqual(dec.push(wire, NOW), []);
        const pad = dec.header!.paddingLength;
        assert.ok(pad >= 1 && pad <= 900, `padding ${pad}`);
      }
    });

    it('refuses to encode a request with neither payload nor padding', () => {
      const enc = new Aead2022RequestEncoder(method, k);
      assert.throws(
        () => enc.encodeHeader(target, Buffer.alloc(0), NOW, Buffer.alloc(0)),
        code('ERR_HEADER'),
      );
    });

    it('carries big initial payloads and chunks above 0x3FFF (up to 0xFFFF per chunk)', () => {
      const big = Buffer.alloc(200_000);
      for (let i = 0; i < big.length; i++) big[i] = i * 7;
      const enc = new Aead2022RequestEncoder(method, k);
      const dec = new Aead2022RequestDecoder(method, { key: k });
      const got = dec.push(enc.encodeHeader(target, big, NOW), NOW);
      assert.deepEqual(Buffer.concat(got), big);
      assert.equal(got[0]!.length, MAX_PAYLOAD_2022 - 15 - 2); // domain address of 15 bytes + padding length
      const wire = enc.encode(big);
      // 200,000 bytes in chunks of at most WRITE_CHUNK_2022 (16 KiB): 13 chunks of length (2+16)
      // and payload tag (16). Chunks up to 0xFFFF from other writers: the vectors and the
      // native-oneshot tests decode them.
      assert.equal(wire.length, big.length + Math.ceil(big.length / WRITE_CHUNK_2022) * (2 + 16 + 16));
      const more = dec.push(wire, NOW);
      assert.deepEqual(Buffer.concat(more), big);
    });

    it('round-trips a response and checks the echoed request salt', () => {
      const reqSalt = Buffer.alloc(method.saltSize, 3);
      const enc = new Aead2022ResponseEncoder(method, k, reqSalt);
      const dec = new Aead2022ResponseDecoder(method, k, reqSalt);
      const wire = enc.encodeHeader(Buffer.from('HTTP/1.1 200 OK'), NOW);
      assert.equal(wire.length, responsePrefixSize(method) + 15 + 16);
      assert.equal(Buffer.concat(dec.push(wire, NOW)).toString(), 'HTTP/1.1 200 OK');
      assert.equal(Buffer.concat(dec.push(enc.encode(Buffer.from('body')), NOW)).toString(), 'body');

      const other = new Aead2022ResponseDecoder(method, k, Buffer.alloc(method.saltSize, 4));
      assert.throws(
        () =>
          other.push(
            new Aead2022ResponseEncoder(method, k, reqSalt).encodeHeader(Buffer.from('x'), NOW),
            NOW,
          ),
        code('ERR_HEADER'),
      );
    });

    it('decodes every split of a request and of a response identically', () => {
      const salt = Buffer.alloc(method.saltSize, 9);
      const enc = new Aead2022RequestEncoder(method, k, { salt });
      const wire = Buffer.concat([
        enc.encodeHeader(target, Buffer.from('hello'), NOW),
        enc.encode(Buffer.from('world!')),
      ]);
      const renc = new Aead2022ResponseEncoder(method, k, salt, { salt: Buffer.alloc(method.saltSize, 8) });
      const rwire = Buffer.concat([
        renc.encodeHeader(Buffer.from('abc'), NOW),
        renc.encode(Buffer.from('defg')),
      ]);
      for (let i = 0; i <= wire.length; i++) {
        const dec = new Aead2022RequestDecoder(method, { key: k });
        const out = [...dec.push(wire.subarray(0, i), NOW), ...dec.push(wire.subarray(i), NOW)];
        assert.equal(Buffer.concat(out).toString(), 'helloworld!', `split at ${i}`);
      }
      for (let i = 0; i <= rwire.length; i++) {
        const dec = new Aead2022ResponseDecoder(method, k, salt);
        const out = [...dec.push(rwire.subarray(0, i), NOW), ...dec.push(rwire.subarray(i), NOW)];
        assert.equal(Buffer.concat(out).toString(), 'abcdefg', `split at ${i}`);
      }
    });

    it('property: any payload sequence, any multi-way split, round-trips', () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 0, maxLength: 300 }),
          fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { maxLength: 5 }),
          fc.array(fc.nat(), { maxLength: 8 }),
          (initial, later, cuts) => {
            const enc = new Aead2022RequestEncoder(method, k);
            const wire = Buffer.concat([
              enc.encodeHeader(target, initial, NOW),
              ...later.map((d) => enc.encode(d)),
            ]);
            const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
            const dec = new Aead2022RequestDecoder(method, { key: k });
            const out: Buffer[] = [];
            let prev = 0;
            for (const p of [...points, wire.length]) {
              out.push(...dec.push(wire.subarray(prev, p), NOW));
              prev = p;
            }
            assert.deepEqual(Buffer.concat(out), Buffer.concat([initial, ...later]));
            assert.ok(dec.atBoundary);
          },
        ),
        { numRuns: 60 },
      );
    });

    it('rejects a flipped bit anywhere in salt or header with ERR_CIPHER', () => {
      const enc = new Aead2022RequestEncoder(method, k);
      const wire = enc.encodeHeader(target, Buffer.from('hi'), NOW);
      for (let i = 0; i < wire.length; i++) {
        const bad = Buffer.from(wire);
        bad[i]! ^= 0x01;
        const dec = new Aead2022RequestDecoder(method, { key: k });
        assert.throws(() => dec.push(bad, NOW), code('ERR_CIPHER'), `byte ${i}`);
        assert.throws(() => dec.push(Buffer.alloc(1), NOW), code('ERR_CIPHER'));
      }
    });

    it('rejects the wrong key with ERR_CIPHER', () => {
      const wire = new Aead2022RequestEncoder(method, k).encodeHeader(target, Buffer.from('hi'), NOW);
      assert.throws(
        () => new Aead2022RequestDecoder(method, { key: key(method, 0x22) }).push(wire, NOW),
        code('ERR_CIPHER'),
      );
    });

    it('rejects timestamps 31 s off in either direction, accepts 30 s', () => {
      for (const [offset, ok] of [
        [-31_000, false],
        [31_000, false],
        [-30_000, true],
        [30_000, true],
      ] as const) {
        const wire = new Aead2022RequestEncoder(method, k).encodeHeader(
          target,
          Buffer.from('x'),
          NOW + offset,
        );
        const dec = new Aead2022RequestDecoder(method, { key: k });
        if (ok) assert.equal(dec.push(wire, NOW).length, 1);
        else assert.throws(() => dec.push(wire, NOW), code('ERR_TIMESTAMP'));
        const rwire = new Aead2022ResponseEncoder(method, k, Buffer.alloc(method.saltSize)).encodeHeader(
          Buffer.from('y'),
          NOW + offset,
        );
        const rdec = new Aead2022ResponseDecoder(method, k, Buffer.alloc(method.saltSize));
        if (ok) assert.equal(rdec.push(rwire, NOW).length, 1);
        else assert.throws(() => rdec.push(rwire, NOW), code('ERR_TIMESTAMP'));
      }
    });

    it('rejects a wrong type byte, zero padding without payload, and overlong padding with ERR_HEADER', () => {
      const ts = NOW / 1000;
      const v = variableHeader(0, Buffer.from('x'));
      const dec = () => new Aead2022RequestDecoder(method, { key: k });
      assert.throws(
        () => dec().push(craft(method, k, fixedHeader(1, ts, v.length), v), NOW),
        code('ERR_HEADER'),
      );
      assert.throws(
        () => dec().push(craft(method, k, fixedHeader(2, ts, v.length), v), NOW),
        code('ERR_HEADER'),
      );
      const empty = variableHeader(0, Buffer.alloc(0));
      assert.throws(
        () => dec().push(craft(method, k, fixedHeader(0, ts, empty.length), empty), NOW),
        code('ERR_HEADER'),
      );
      const overlong = variableHeader(0, Buffer.alloc(4));
      overlong.writeUInt16BE(5, 15); // padding length 5 but only 4 bytes follow
      assert.throws(
        () => dec().push(craft(method, k, fixedHeader(0, ts, overlong.length), overlong), NOW),
        code('ERR_HEADER'),
      );
      const short = Buffer.from([0x03, 0x05, 0x61]); // address runs past the header
      assert.throws(
        () => dec().push(craft(method, k, fixedHeader(0, ts, short.length), short), NOW),
        code('ERR_HEADER'),
      );
      // A response fed to a request decoder: header length differs, so authentication fails.
      const resp = new Aead2022ResponseEncoder(method, k, Buffer.alloc(method.saltSize)).encodeHeader(
        Buffer.alloc(40),
        NOW,
      );
      assert.throws(() => dec().push(resp, NOW), code('ERR_CIPHER'));
      // Accepts what a correct hand-built request says.
      assert.equal(
        dec()
          .push(craft(method, k, fixedHeader(0, ts, v.length), v), NOW)[0]!
          .toString(),
        'x',
      );
    });

    it('with a SaltWindow, refuses a replayed request with ERR_REPLAY within 60 s, not after', () => {
      const salts = new SaltWindow();
      const wire = new Aead2022RequestEncoder(method, k).encodeHeader(target, Buffer.from('x'), NOW);
      assert.equal(new Aead2022RequestDecoder(method, { key: k, salts }).push(wire, NOW).length, 1);
      assert.throws(
        () => new Aead2022RequestDecoder(method, { key: k, salts }).push(wire, NOW + 1000),
        code('ERR_REPLAY'),
      );
      assert.throws(
        () => new Aead2022RequestDecoder(method, { key: k, salts }).push(wire, NOW + 29_000),
        code('ERR_REPLAY'),
      );
      // later than 30 s the timestamp refuses it before the salt is even looked at
      assert.throws(
        () => new Aead2022RequestDecoder(method, { key: k, salts }).push(wire, NOW + 31_000),
        code('ERR_TIMESTAMP'),
      );
      // a request stamped 30 s ahead is first seen at NOW and replayed at NOW + 59.9 s: the
      // timestamp still passes (29.9 s old), so only the 60 s salt memory stops it
      const ahead = new Aead2022RequestEncoder(method, k).encodeHeader(
        target,
        Buffer.from('x'),
        NOW + 30_000,
      );
      assert.equal(new Aead2022RequestDecoder(method, { key: k, salts }).push(ahead, NOW).length, 1);
      assert.throws(
        () => new Aead2022RequestDecoder(method, { key: k, salts }).push(ahead, NOW + 59_900),
        code('ERR_REPLAY'),
      );
    });

    it('reports the server prefix size', () => {
      const wire = new Aead2022RequestEncoder(method, k, {}).encodeHeader(target, Buffer.from('x'), NOW);
      const dec = new Aead2022RequestDecoder(method, { key: k });
      assert.equal(dec.prefixSize, requestPrefixSize(method));
      dec.push(wire.subarray(0, dec.prefixSize - 1), NOW);
      assert.equal(dec.authenticated, false);
      dec.push(wire.subarray(dec.prefixSize - 1, dec.prefixSize), NOW);
      assert.equal(dec.authenticated, true);
      assert.equal(dec.header, undefined);
      assert.equal(dec.needed, 1 + 2 + 15 + 16); // the sealed variable header: address, padding length, 1 byte
    });
  });
}

describe('SIP023 identity headers over TCP', () => {
  for (const method of METHODS.filter((m) => m.supportsIdentity)) {
    it(`${method.name}: finds each user by identity header and refuses unknown users`, () => {
      const ipsk = Buffer.alloc(method.keySize, 0xee);
      const table = new IdentityTable<string>(method, ipsk);
      const users = Array.from({ length: 50 }, (_, i) => Buffer.alloc(method.keySize, i + 1));
      users.forEach((u, i) => table.set(u, `user${i}`));
      assert.equal(table.size, 50);
      for (const [i, u] of users.entries()) {
        const enc = new Aead2022RequestEncoder(method, u, { identityKeys: [ipsk] });
        const wire = enc.encodeHeader(target, Buffer.from(`hi ${i}`), NOW);
        const dec = new Aead2022RequestDecoder(method, { identity: table });
        assert.equal(dec.prefixSize, requestPrefixSize(method, 1));
        assert.equal(Buffer.concat(dec.push(wire, NOW)).toString(), `hi ${i}`);
        assert.equal(dec.user, `user${i}`);
        assert.deepEqual(dec.key, u);
        // the response is keyed by the user PSK
        const resp = new Aead2022ResponseEncoder(method, dec.key!, dec.salt!).encodeHeader(
          Buffer.from('ok'),
          NOW,
        );
        assert.equal(
          Buffer.concat(new Aead2022ResponseDecoder(method, u, enc.salt).push(resp, NOW)).toString(),
          'ok',
        );
      }
      const stranger = new Aead2022RequestEncoder(method, Buffer.alloc(method.keySize, 0x77), {
        identityKeys: [ipsk],
      });
      assert.throws(
        () =>
          new Aead2022RequestDecoder(method, { identity: table }).push(
            stranger.encodeHeader(target, Buffer.from('x'), NOW),
            NOW,
          ),
        code('ERR_CIPHER'),
      );
      const wrongIpsk = new Aead2022RequestEncoder(method, users[0]!, {
        identityKeys: [Buffer.alloc(method.keySize, 1)],
      });
      assert.throws(
        () =>
          new Aead2022RequestDecoder(method, { identity: table }).push(
            wrongIpsk.encodeHeader(target, Buffer.from('x'), NOW),
            NOW,
          ),
        code('ERR_CIPHER'),
      );
      assert.ok(table.delete(users[0]!));
      const gone = new Aead2022RequestEncoder(method, users[0]!, { identityKeys: [ipsk] });
      assert.throws(
        () =>
          new Aead2022RequestDecoder(method, { identity: table }).push(
            gone.encodeHeader(target, Buffer.from('x'), NOW),
            NOW,
          ),
        code('ERR_CIPHER'),
      );
    });
  }

  it('refuses identity keys for the ChaCha method', () => {
    const m = AEAD_2022_METHODS['2022-blake3-chacha20-poly1305'];
    assert.throws(() => new IdentityTable(m, Buffer.alloc(32)), code('ERR_METHOD'));
    assert.throws(
      () => new Aead2022RequestEncoder(m, Buffer.alloc(32), { identityKeys: [Buffer.alloc(32)] }),
      code('ERR_METHOD'),
    );
  });
});

describe('SaltWindow', () => {
  it('is exact for 60 s and prunes', () => {
    const w = new SaltWindow();
    const a = Buffer.alloc(16, 1);
    const b = Buffer.alloc(16, 2);
    assert.ok(w.add(a, 0));
    assert.ok(!w.add(a, 59_999));
    assert.ok(w.has(a, 59_999));
    assert.ok(!w.has(a, 60_000));
    assert.ok(w.add(b, 30_000));
    assert.ok(w.add(a, 60_000)); // expired, accepted again
    assert.equal(w.size, 2);
    w.prune(90_000);
    assert.equal(w.size, 1);
    assert.ok(!w.add(a, 119_999));
  });

  it('survives export/import (a restart) and skips expired entries', () => {
    const w = new SaltWindow();
    w.add(Buffer.alloc(32, 1), 1000);
    w.add(Buffer.alloc(32, 2), 50_000);
    const saved = JSON.parse(JSON.stringify(w.export(55_000))) as Array<[string, number]>;
    const w2 = new SaltWindow();
    w2.import(saved, 61_000);
    assert.equal(w2.size, 1);
    assert.ok(!w2.add(Buffer.alloc(32, 2), 62_000));
    assert.ok(w2.add(Buffer.alloc(32, 1), 62_000));
  });

  it('property: never a false positive, never forgets within the TTL', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 30_000 })), {
          maxLength: 200,
        }),
        (ops) => {
          const w = new SaltWindow();
          const seen = new Map<number, number>();
          let now = 0;
          for (const [id, dt] of ops) {
            now += dt;
            const last = seen.get(id);
            const fresh = last === undefined || now - last >= 60_000;
            assert.equal(w.add(Buffer.from([id]), now), fresh);
            if (fresh) seen.set(id, now);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

// ---- Known-answer vectors (test/vectors/sip022.json; provenance in docs/sip022.md) ----

interface TcpVector {
  name: string;
  method: string;
  direction: 'request' | 'response';
  psk: string;
  identityKeys?: string[];
  salt: string;
  requestSalt?: string;
  timestamp: number;
  target?: { host: string; port: number };
  padding?: string;
  initialPayload?: string;
  firstPayload?: string;
  laterPayloads: string[];
  intermediate: {
    sessionSubkey: string;
    identitySubkeys?: string[];
    pskHashes?: string[];
    identityHeaders?: string[];
  };
  wire: string;
}

const VECTORS = JSON.parse(
  readFileSync(new URL('../../../test/vectors/sip022.json', import.meta.url), 'utf8'),
) as {
  tcp: TcpVector[];
};
const hex = (s: string) => Buffer.from(s, 'hex');

describe('SIP022 TCP known-answer vectors', () => {
  it('cover all three methods, both directions, and identity headers', () => {
    for (const m of METHODS) {
      assert.ok(VECTORS.tcp.some((v) => v.method === m.name && v.direction === 'request'));
      assert.ok(VECTORS.tcp.some((v) => v.method === m.name && v.direction === 'response'));
    }
    assert.ok(VECTORS.tcp.some((v) => (v.identityKeys?.length ?? 0) === 2));
  });

  for (const v of VECTORS.tcp) {
    it(v.name, () => {
      const method = getAead2022Method(v.method);
      const psk = decodePsk(method, v.psk);
      const ipsks = (v.identityKeys ?? []).map((k) => decodePsk(method, k));
      const salt = hex(v.salt);
      const nowMs = v.timestamp * 1000 + 999; // any time within the same second encodes the same
      assert.equal(deriveSessionSubkey(psk, salt).toString('hex'), v.intermediate.sessionSubkey);
      const wire = hex(v.wire);
      const later = v.laterPayloads.map(hex);

      if (v.direction === 'request') {
        (v.intermediate.identitySubkeys ?? []).forEach((k, i) => {
          assert.equal(deriveIdentitySubkey(ipsks[i]!, salt).toString('hex'), k);
          assert.equal(pskHash(ipsks[i + 1] ?? psk).toString('hex'), v.intermediate.pskHashes![i]);
        });
        // encoder reproduces the bytes
        const enc = new Aead2022RequestEncoder(method, psk, { salt, identityKeys: ipsks });
        const target = toSocksAddress(v.target!.host, v.target!.port);
        const ours = Buffer.concat([
          enc.encodeHeader(target, hex(v.initialPayload!), nowMs, hex(v.padding!)),
          ...later.map((d) => enc.encode(d)),
        ]);
        assert.equal(ours.toString('hex'), v.wire);

        // decoder accepts them, byte by byte too; with identity headers the server holds the last
        // identity key, so an outer relay's header is stripped first (SIP023 relay behaviour)
        const relayed =
          ipsks.length <= 1
            ? wire
            : Buffer.concat([
                wire.subarray(0, salt.length),
                wire.subarray(salt.length + 16 * (ipsks.length - 1)),
              ]);
        const table =
          ipsks.length > 0 ? new IdentityTable<string>(method, ipsks[ipsks.length - 1]!) : undefined;
        table?.set(psk, 'the user');
        for (const step of [relayed.length, 1]) {
          const dec = new Aead2022RequestDecoder<string>(method, table ? { identity: table } : { key: psk });
          const out: Buffer[] = [];
          for (let i = 0; i < relayed.length; i += step)
            out.push(...dec.push(relayed.subarray(i, i + step), nowMs));
          assert.deepEqual(Buffer.concat(out), Buffer.concat([hex(v.initialPayload!), ...later]));
          assert.deepEqual(dec.header?.target, target);
          assert.equal(dec.header?.timestamp, v.timestamp);
          assert.equal(dec.header?.paddingLength, v.padding!.length / 2);
          if (table) assert.equal(dec.user, 'the user');
          assert.ok(dec.atBoundary);
        }
        // the same bytes 31 s later are refused
        assert.throws(
          () =>
            new Aead2022RequestDecoder<string>(method, table ? { identity: table } : { key: psk }).push(
              relayed,
              nowMs + 31_000,
            ),
          code('ERR_TIMESTAMP'),
        );
      } else {
        const reqSalt = hex(v.requestSalt!);
        const enc = new Aead2022ResponseEncoder(method, psk, reqSalt, { salt });
        const ours = Buffer.concat([
          enc.encodeHeader(hex(v.firstPayload!), nowMs),
          ...later.map((d) => enc.encode(d)),
        ]);
        assert.equal(ours.toString('hex'), v.wire);
        for (const step of [wire.length, 1]) {
          const dec = new Aead2022ResponseDecoder(method, psk, reqSalt);
          const out: Buffer[] = [];
          for (let i = 0; i < wire.length; i += step)
            out.push(...dec.push(wire.subarray(i, i + step), nowMs));
          assert.deepEqual(Buffer.concat(out), Buffer.concat([hex(v.firstPayload!), ...later]));
          assert.equal(dec.timestamp, v.timestamp);
        }
      }
    });
  }
});

describe('garbage never crashes the 2022 TCP decoders', () => {
  it('property: random bytes give nothing or a ProtocolError', () => {
    const only = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof ProtocolError, `unexpected ${String(e)}`);
      }
    };
    for (const method of METHODS) {
      const k = key(method);
      const table = method.supportsIdentity ? new IdentityTable<number>(method, key(method, 3)) : undefined;
      table?.set(k, 1);
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 400 }), (junk) => {
          only(() => new Aead2022RequestDecoder(method, { key: k }).push(junk, NOW));
          if (table) only(() => new Aead2022RequestDecoder(method, { identity: table }).push(junk, NOW));
          only(() => new Aead2022ResponseDecoder(method, k, Buffer.alloc(method.saltSize)).push(junk, NOW));
        }),
        { numRuns: 100 },
      );
    }
  });
});

describe('misuse of the 2022 TCP codecs', () => {
  it('throws ProtocolError ERR_USAGE: data before the header, a second header, both or neither of key and identity', () => {
    const method = METHODS[0]!;
    const k = key(method);
    const req = new Aead2022RequestEncoder(method, k);
    assert.throws(() => req.encode(Buffer.from('x')), code('ERR_USAGE'));
    req.encodeHeader(target, Buffer.from('x'), NOW);
    assert.throws(() => req.encodeHeader(target, Buffer.from('x'), NOW), code('ERR_USAGE'));
    const res = new Aead2022ResponseEncoder(method, k, req.salt);
    assert.throws(() => res.encode(Buffer.from('x')), code('ERR_USAGE'));
    res.encodeHeader(Buffer.from('x'), NOW);
    assert.throws(() => res.encodeHeader(Buffer.from('x'), NOW), code('ERR_USAGE'));
    const table = new IdentityTable<number>(method, key(method, 3));
    assert.throws(() => new Aead2022RequestDecoder(method, {}), code('ERR_USAGE'));
    assert.throws(() => new Aead2022RequestDecoder(method, { key: k, identity: table }), code('ERR_USAGE'));
  });
});
