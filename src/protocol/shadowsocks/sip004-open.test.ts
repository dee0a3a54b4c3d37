// sip004Open (the server's SIP004 key trial and decoder in one addon call, native/stream_codec.cc)
// against known answers from an independent implementation and against the path it replaces
// (sip004HeadMatches, then a new AeadDecoder). Skips loudly without the addon; fails under CI=true.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ProtocolError } from '../errors.js';
import { AeadDecoder, AeadEncoder, sip004HeadMatches, sip004Open } from './aead.js';
import { deriveSubkey, evpBytesToKey } from './kdf.js';
import { AEAD_METHODS, getAeadMethod, type AeadMethod, type AeadMethodName } from './methods.js';
import { nativeAvailable, nativeLoadError, setNativeEnabled } from './native.js';
import { requireOrSkip } from '../../../test/helpers/prereq.js';

const METHODS = Object.values(AEAD_METHODS);
// Made by test/vectors/gen_sip004.py with python `cryptography` and a hand-written framing.
const V = JSON.parse(readFileSync(new URL('../../../test/vectors/sip004.json', import.meta.url), 'utf8')) as {
  chunks: { method: AeadMethodName; password: string; salt: string; calls?: string[]; wire?: string[] }[];
};

const requireNative = (t: TestContext): boolean =>
  requireOrSkip(
    t,
    nativeAvailable(),
    `native addon unavailable (${nativeLoadError() ?? 'unknown'}); run: node scripts/build-native.mjs`,
  );

const headOf = (m: AeadMethod, wire: Buffer): Buffer => wire.subarray(0, m.saltSize + 18);

/** What the path sip004Open replaces says about `head`: the decoder, 'bad-length' or 'wrong-key'. */
function oldPath(m: AeadMethod, key: Buffer, head: Buffer): AeadDecoder | 'bad-length' | 'wrong-key' {
  if (sip004HeadMatches(m, key, head) === false) return 'wrong-key';
  const dec = new AeadDecoder(m, key);
  try {
    dec.push(head);
  } catch (err) {
    return err instanceof ProtocolError && err.code === 'ERR_PAYLOAD_SIZE' ? 'bad-length' : 'wrong-key';
  }
  return dec;
}

/** A head whose length chunk is sealed correctly under `key` but says `length`. */
function headWithLength(m: AeadMethod, key: Buffer, length: number): Buffer {
  const salt = randomBytes(m.saltSize);
  const c = createCipheriv(m.cipher as 'aes-256-gcm', deriveSubkey(key, salt), Buffer.alloc(12), {
    authTagLength: 16,
  });
  const len = Buffer.from([length >> 8, length & 0xff]);
  return Buffer.concat([salt, c.update(len), c.final(), c.getAuthTag()]);
}

test('sip004Open: known-answer streams open to their plaintext (independent python vectors)', (t) => {
  if (!requireNative(t)) return;
  let n = 0;
  for (const v of V.chunks) {
    if (!v.calls || !v.wire) continue;
    const m = getAeadMethod(v.method);
    const key = evpBytesToKey(v.password, m.keySize);
    const wire = Buffer.concat(v.wire.map((w) => Buffer.from(w, 'hex')));
    const plain = Buffer.concat(v.calls.map((c) => Buffer.from(c, 'hex')));
    const dec = sip004Open(m, key, headOf(m, wire));
    assert.ok(dec instanceof AeadDecoder, `${v.method}: opened`);
    assert.deepEqual(dec.salt, Buffer.from(v.salt, 'hex'));
    assert.deepEqual(Buffer.concat(dec.push(wire.subarray(m.saltSize + 18))), plain, v.method);
    assert.ok(dec.atBoundary);
    // The same stream under another password, or with one salt bit flipped: not this key.
    assert.equal(sip004Open(m, evpBytesToKey(`${v.password}x`, m.keySize), headOf(m, wire)), 'wrong-key');
    const flipped = Buffer.from(headOf(m, wire));
    flipped[0]! ^= 1;
    assert.equal(sip004Open(m, key, flipped), 'wrong-key');
    n++;
  }
  assert.ok(n >= 3, `${n} streams with wire bytes in the vectors`);
});

test('sip004Open: the same answer as sip004HeadMatches + AeadDecoder for owners, other keys, bad lengths, garbage', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const keys = Array.from({ length: 4 }, (_, i) => evpBytesToKey(`k${i}-${m.name}`, m.keySize));
    for (let round = 0; round < 12; round++) {
      const owner = round % keys.length;
      const data = randomBytes(1 + round * 700);
      const wire = new AeadEncoder(m, keys[owner]!).encode(data);
      for (const [i, k] of keys.entries()) {
        const got = sip004Open(m, k, headOf(m, wire));
        const want = oldPath(m, k, headOf(m, wire));
        if (i !== owner) {
          assert.equal(got, 'wrong-key', `${m.name}: key ${i}, owner ${owner}`);
          assert.equal(want, 'wrong-key');
          continue;
        }
        assert.ok(got instanceof AeadDecoder && want instanceof AeadDecoder, `${m.name}: owner opens`);
        // Split the rest anywhere: both decoders give the data, chunk by chunk the same.
        const rest = wire.subarray(m.saltSize + 18);
        const cut = Math.floor(rest.length / 3);
        for (const piece of [rest.subarray(0, cut), rest.subarray(cut)])
          assert.deepEqual(Buffer.concat(got.push(piece)), Buffer.concat(want.push(piece)));
        assert.equal(got.buffered, 0);
      }
    }
    for (const length of [0, 0x4000, 0xffff]) {
      const head = headWithLength(m, keys[0]!, length);
      assert.equal(sip004Open(m, keys[0]!, head), 'bad-length', `${m.name}: length ${length}`);
      assert.equal(oldPath(m, keys[0]!, head), 'bad-length');
      assert.equal(sip004Open(m, keys[1]!, head), 'wrong-key');
    }
    for (const length of [1, 0x3fff]) {
      assert.ok(sip004Open(m, keys[0]!, headWithLength(m, keys[0]!, length)) instanceof AeadDecoder);
    }
    for (let i = 0; i < 20; i++)
      assert.equal(sip004Open(m, keys[0]!, randomBytes(m.saltSize + 18)), 'wrong-key');
  }
});

test('sip004Open: a decoder it opened fails like any decoder on a tampered payload', (t) => {
  if (!requireNative(t)) return;
  const m = AEAD_METHODS['aes-256-gcm'];
  const key = evpBytesToKey('tamper', m.keySize);
  const wire = new AeadEncoder(m, key).encode(randomBytes(100));
  wire[wire.length - 1]! ^= 1;
  const dec = sip004Open(m, key, headOf(m, wire));
  assert.ok(dec instanceof AeadDecoder);
  assert.throws(
    () => dec.push(wire.subarray(m.saltSize + 18)),
    (err: unknown) => err instanceof ProtocolError && err.code === 'ERR_CIPHER',
  );
});

test('sip004Open: undefined where the backend cannot (node:crypto) or the head is not salt + 18 bytes', (t) => {
  if (!requireNative(t)) return;
  const m = AEAD_METHODS['chacha20-ietf-poly1305'];
  const key = evpBytesToKey('x', m.keySize);
  const head = headOf(m, new AeadEncoder(m, key).encode(Buffer.from('hello')));
  setNativeEnabled(false);
  try {
    assert.equal(sip004Open(m, key, head), undefined);
  } finally {
    setNativeEnabled(true);
  }
  assert.equal(sip004Open(m, key, head.subarray(0, head.length - 1)), undefined);
  assert.ok(sip004Open(m, key, head) instanceof AeadDecoder);
});
