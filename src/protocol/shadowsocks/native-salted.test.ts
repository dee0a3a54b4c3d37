// createSalted (native/stream_codec.cc): a codec keyed with HKDF-SHA1(masterKey, salt) in C++ is
// the codec keyed with the subkey derived in JS: the same bytes out, each opens the other's, and
// bad arguments throw. Skips loudly without the addon (fails under CI=true).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NativeDecoder, NativeEncoder } from './cipher-native.js';
import { deriveSubkey } from './kdf.js';
import { AEAD_METHODS } from './methods.js';
import { nativeAddon, nativeAvailable, nativeLoadError } from './native.js';
import { requireOrSkip } from '../../../test/helpers/prereq.js';

test('createSalted keys the codec as hkdfSha1 then create', (t) => {
  if (!requireOrSkip(t, nativeAvailable(), `native addon unavailable (${nativeLoadError() ?? 'unknown'})`))
    return;
  const a = nativeAddon()!;
  assert.equal(typeof a.createSalted, 'function');
  for (const m of Object.values(AEAD_METHODS)) {
    const master = randomBytes(m.keySize);
    const salt = randomBytes(m.saltSize);
    const data = randomBytes(40_000);
    const two = new NativeEncoder(m.cipher, deriveSubkey(master, salt), {}, a);
    const one = new NativeEncoder(m.cipher, master, {}, a, salt);
    const wire = one.encode(data);
    assert.deepEqual(wire, two.encode(data), m.name);
    const dec = new NativeDecoder(m.cipher, deriveSubkey(master, salt), {}, a);
    assert.deepEqual(dec.decode(wire), data);
    const dec1 = new NativeDecoder(m.cipher, master, {}, a, salt);
    assert.deepEqual(
      dec1.decode(new NativeEncoder(m.cipher, deriveSubkey(master, salt), {}, a).encode(data)),
      data,
    );
    // Another salt is another key.
    const other = new NativeDecoder(m.cipher, master, {}, a, randomBytes(m.saltSize));
    assert.throws(() => other.decode(wire), /authentication/);
  }
  assert.throws(
    () => a.createSalted!(1, new Uint8Array(0), randomBytes(32), true),
    /masterKey must be 1..64 bytes/,
  );
  assert.throws(
    () => a.createSalted!(1, randomBytes(32), 'salt' as never, true),
    /salt must be a Uint8Array/,
  );
  assert.throws(() => a.createSalted!(1, randomBytes(16), randomBytes(32), true), /wrong length/);
});
