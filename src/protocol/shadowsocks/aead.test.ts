import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha1 } from '@noble/hashes/legacy.js';
import { ProtocolError } from '../errors.js';
import { AeadDecoder, AeadEncoder, AeadSession, MAX_PAYLOAD } from './aead.js';
import { deriveSubkey, evpBytesToKey } from './kdf.js';
import { AEAD_METHODS, getAeadMethod, type AeadMethod, type AeadMethodName } from './methods.js';

interface ChunkVector {
  method: AeadMethodName;
  password: string;
  salt: string;
  calls?: string[];
  wire?: string[];
  pattern?: string;
  payloadLen?: number;
  oneByteCalls?: number;
  wireLen?: number;
  wireSha256?: string;
  wireTail?: string;
}
// Made by test/vectors/gen_sip004.py with python `cryptography` and a hand-written framing.
const V = JSON.parse(readFileSync(new URL('../../../test/vectors/sip004.json', import.meta.url), 'utf8')) as {
  chunks: ChunkVector[];
};

const METHODS = Object.values(AEAD_METHODS);
const keyFor = (m: AeadMethod, pw = 'test-password') => evpBytesToKey(pw, m.keySize);
const fixedSalt = (m: AeadMethod) => Buffer.from(Array.from({ length: m.saltSize }, (_, i) => i));
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function decodeAll(m: AeadMethod, key: Uint8Array, pieces: Uint8Array[]): Buffer {
  const d = new AeadDecoder(m, key);
  const out: Buffer[] = [];
  for (const p of pieces) out.push(...d.push(p));
  assert.equal(d.buffered, 0);
  assert.ok(d.atBoundary || d.salt === undefined);
  return Buffer.concat(out);
}

function isCode(code: string) {
  return (err: unknown) => err instanceof ProtocolError && err.code === code;
}

test('known-answer chunk vectors from an independent python implementation', () => {
  assert.equal(V.chunks.length, 9);
  for (const v of V.chunks) {
    const m = getAeadMethod(v.method);
    const key = evpBytesToKey(v.password, m.keySize);
    const salt = Buffer.from(v.salt, 'hex');
    const enc = new AeadEncoder(m, key, salt);
    let wire: Buffer;
    let plain: Buffer;
    if (v.calls) {
      const parts = v.calls.map((c) => enc.encode(Buffer.from(c, 'hex')));
      assert.deepEqual(
        parts.map((p) => p.toString('hex')),
        v.wire,
        v.method,
      );
      wire = Buffer.concat(parts);
      plain = Buffer.concat(v.calls.map((c) => Buffer.from(c, 'hex')));
    } else if (v.payloadLen !== undefined) {
      plain = Buffer.from(Array.from({ length: v.payloadLen }, (_, i) => i & 0xff));
      wire = enc.encode(plain);
    } else {
      const parts: Buffer[] = [];
      for (let i = 0; i < v.oneByteCalls!; i++) parts.push(enc.encode(Buffer.from([i & 0xff])));
      wire = Buffer.concat(parts);
      plain = Buffer.from(Array.from({ length: v.oneByteCalls! }, (_, i) => i & 0xff));
    }
    if (v.wireLen !== undefined) {
      assert.equal(wire.length, v.wireLen, v.method);
      assert.equal(sha256(wire), v.wireSha256, v.method);
      assert.equal(wire.subarray(-64).toString('hex'), v.wireTail, v.method);
    }
    assert.deepEqual(decodeAll(m, key, [wire]), plain);
  }
});

/** SIP004 framing written again on @noble/ciphers (pure JS), for differential tests. */
function referenceEncode(m: AeadMethod, key: Uint8Array, salt: Uint8Array, data: Uint8Array): Uint8Array {
  const sub = hkdf(sha1, key, salt, new TextEncoder().encode('ss-subkey'), m.keySize);
  let counter = 0n;
  const seal = (b: Uint8Array) => {
    const nonce = new Uint8Array(12);
    let c = counter++;
    for (let i = 0; i < 12; i++, c >>= 8n) nonce[i] = Number(c & 0xffn);
    return m.cipher === 'chacha20-poly1305'
      ? chacha20poly1305(sub, nonce).encrypt(b)
      : gcm(sub, nonce).encrypt(b);
  };
  const parts: Uint8Array[] = [salt];
  for (let i = 0; i < data.length; i += MAX_PAYLOAD) {
    const piece = data.subarray(i, i + MAX_PAYLOAD);
    parts.push(seal(Uint8Array.from([piece.length >> 8, piece.length & 0xff])), seal(piece));
  }
  return Buffer.concat(parts);
}

const sameBytes = (a: Uint8Array, b: Uint8Array, what: string) =>
  assert.ok(Buffer.compare(a, b) === 0, `${what}: ${a.length} vs ${b.length} bytes differ`);

test('encoder output equals a pure-JS reference (@noble/ciphers) for random data', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...METHODS),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.integer({ min: MAX_PAYLOAD - 2, max: 2 * MAX_PAYLOAD + 2 }),
      ),
      (m, k, s, d) => {
        const data = typeof d === 'number' ? new Uint8Array(d).fill(7) : d;
        const key = k.subarray(0, m.keySize);
        const salt = s.subarray(0, m.saltSize);
        const wire = new AeadEncoder(m, key, salt).encode(data);
        sameBytes(wire, referenceEncode(m, key, salt, data), m.name);
      },
    ),
    { numRuns: 60 },
  );
});

test('decoder: every single split point, and byte-at-a-time, for a small message', () => {
  for (const m of METHODS) {
    const key = keyFor(m);
    const enc = new AeadEncoder(m, key);
    const plain = Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n');
    const wire = Buffer.concat([enc.encode(plain.subarray(0, 10)), enc.encode(plain.subarray(10))]);
    for (let i = 0; i <= wire.length; i++) {
      assert.deepEqual(decodeAll(m, key, [wire.subarray(0, i), wire.subarray(i)]), plain, `split at ${i}`);
    }
    const bytes = Array.from(wire, (b) => Uint8Array.of(b));
    assert.deepEqual(decodeAll(m, key, bytes), plain);
    // Partial input: nothing out, the right amount still needed.
    const d = new AeadDecoder(m, key);
    assert.deepEqual(d.push(wire.subarray(0, m.saltSize + 5)), []);
    assert.equal(d.needed, 2 + 16 - 5);
    assert.deepEqual(d.salt, enc.salt);
  }
});

test('decoder: encoder output split at arbitrary points gives the same bytes (fast-check)', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...METHODS),
      fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 5 }),
      fc.option(fc.integer({ min: MAX_PAYLOAD - 3, max: MAX_PAYLOAD + 40 }), { freq: 4 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (m, writes, big, cutSeeds) => {
        const key = keyFor(m);
        const enc = new AeadEncoder(m, key);
        if (big !== null) writes = [...writes, new Uint8Array(big).fill(0xab)];
        // (big is a length, so a counterexample prints short)
        const wire = Buffer.concat(writes.map((w) => enc.encode(w)));
        const cuts = [...new Set(cutSeeds.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const pieces: Buffer[] = [];
        let prev = 0;
        for (const c of [...cuts, wire.length]) {
          pieces.push(wire.subarray(prev, c));
          prev = c;
        }
        // Copy into plain Uint8Arrays with offsets, not Buffers, to exercise view handling.
        const views = pieces.map((p) => {
          const backing = new Uint8Array(p.length + 8);
          backing.set(p, 4);
          return backing.subarray(4, 4 + p.length);
        });
        sameBytes(decodeAll(m, key, views), Buffer.concat(writes), m.name);
      },
    ),
    { numRuns: 150 },
  );
});

test('tampering any byte fails with ERR_CIPHER', () => {
  for (const m of METHODS) {
    const key = keyFor(m);
    const wire = new AeadEncoder(m, key).encode(Buffer.from('hello, world'));
    for (let i = 0; i < wire.length; i++) {
      const bad = Buffer.from(wire);
      bad[i]! ^= 0x01;
      assert.throws(() => new AeadDecoder(m, key).push(bad), isCode('ERR_CIPHER'), `byte ${i}`);
    }
  }
  fc.assert(
    fc.property(
      fc.constantFrom(...METHODS),
      fc.uint8Array({ minLength: 1, maxLength: 100 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (m, data, pos, x) => {
        const key = keyFor(m);
        const wire = new AeadEncoder(m, key).encode(data);
        wire[pos % wire.length]! ^= x;
        assert.throws(() => new AeadDecoder(m, key).push(wire), isCode('ERR_CIPHER'));
      },
    ),
    { numRuns: 100 },
  );
});

test('wrong key fails with ERR_CIPHER, and a failed decoder stays failed', () => {
  for (const m of METHODS) {
    const wire = new AeadEncoder(m, keyFor(m, 'right')).encode(Buffer.from('x'));
    const d = new AeadDecoder(m, keyFor(m, 'wrong'));
    assert.throws(() => d.push(wire), isCode('ERR_CIPHER'));
    assert.throws(() => d.push(new Uint8Array(0)), isCode('ERR_CIPHER'));
    assert.throws(() => d.push(wire), isCode('ERR_CIPHER'));
  }
});

test('chunk length above 0x3FFF (and zero) fails with ERR_PAYLOAD_SIZE', () => {
  for (const m of METHODS) {
    const key = keyFor(m);
    const salt = fixedSalt(m);
    for (const len of [0x4000, 0x7fff, 0xffff, 0]) {
      const s = new AeadSession(m, deriveSubkey(key, salt));
      const lenField = Buffer.alloc(2);
      lenField.writeUInt16BE(len);
      const wire = Buffer.concat([salt, s.seal(lenField)]);
      assert.throws(() => new AeadDecoder(m, key).push(wire), isCode('ERR_PAYLOAD_SIZE'), `len ${len}`);
    }
    // 0x3FFF itself is fine.
    const s = new AeadSession(m, deriveSubkey(key, salt));
    const body = Buffer.alloc(MAX_PAYLOAD, 1);
    const wire = Buffer.concat([salt, s.seal(Buffer.from([0x3f, 0xff])), s.seal(body)]);
    assert.deepEqual(decodeAll(m, key, [wire]), body);
  }
});

test('encoder details: salt once, empty writes, chunking at MAX_PAYLOAD, salt size check', () => {
  for (const m of METHODS) {
    const key = keyFor(m);
    const enc = new AeadEncoder(m, key);
    assert.equal(enc.salt.length, m.saltSize);
    const first = enc.encode(new Uint8Array(0));
    assert.deepEqual(first, enc.salt);
    assert.equal(enc.encode(new Uint8Array(0)).length, 0);
    assert.equal(enc.encode(new Uint8Array(MAX_PAYLOAD)).length, 2 + 16 + MAX_PAYLOAD + 16);
    assert.equal(enc.encode(new Uint8Array(MAX_PAYLOAD + 1)).length, 2 * (2 + 16 + 16) + MAX_PAYLOAD + 1);
    assert.notDeepEqual(new AeadEncoder(m, key).salt, enc.salt);
    assert.throws(() => new AeadEncoder(m, key, new Uint8Array(m.saltSize - 1)), isCode('ERR_KEY'));
    assert.throws(
      () => new AeadSession(m, deriveSubkey(key, fixedSalt(m))).open(new Uint8Array(15)),
      isCode('ERR_SHORT_HEADER'),
    );
  }
});

test('session seal/open round trip and nonce progression', () => {
  for (const m of METHODS) {
    const sub = deriveSubkey(keyFor(m), fixedSalt(m));
    const a = new AeadSession(m, sub);
    const b = new AeadSession(m, sub);
    const c1 = a.seal(Buffer.from('one'));
    const c2 = a.seal(Buffer.from('one'));
    assert.notDeepEqual(c1, c2); // different nonces
    assert.throws(() => new AeadSession(m, sub).open(c2), isCode('ERR_CIPHER')); // out of order
    assert.deepEqual(b.open(c1), Buffer.from('one'));
    assert.deepEqual(b.open(c2), Buffer.from('one'));
  }
});
