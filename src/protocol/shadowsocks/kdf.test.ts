import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { hkdf } from '@noble/hashes/hkdf.js';
import { md5, sha1 } from '@noble/hashes/legacy.js';
import { deriveSubkey, evpBytesToKey } from './kdf.js';

// Known answers made by test/vectors/gen_sip004.py (python hashlib/hmac, openssl CLI cross-check).
const V = JSON.parse(readFileSync(new URL('../../../test/vectors/sip004.json', import.meta.url), 'utf8')) as {
  evpBytesToKey: Array<{ password: string; keyLen: number; key: string }>;
  hkdfSha1: Array<{ key: string; salt: string; subkey: string }>;
};

test('EVP_BytesToKey(MD5) known answers (python hashlib + openssl enc -P)', () => {
  assert.ok(V.evpBytesToKey.length >= 12);
  for (const v of V.evpBytesToKey) {
    assert.equal(
      evpBytesToKey(v.password, v.keyLen).toString('hex'),
      v.key,
      `password ${JSON.stringify(v.password)}`,
    );
    assert.equal(evpBytesToKey(Buffer.from(v.password, 'utf8'), v.keyLen).toString('hex'), v.key);
  }
});

test('HKDF-SHA1 "ss-subkey" known answers (hand-written python HKDF)', () => {
  assert.ok(V.hkdfSha1.length >= 4);
  for (const v of V.hkdfSha1) {
    assert.equal(
      deriveSubkey(Buffer.from(v.key, 'hex'), Buffer.from(v.salt, 'hex')).toString('hex'),
      v.subkey,
    );
  }
});

test('kdf agrees with an independent pure-JS implementation (@noble/hashes)', () => {
  const refEvp = (pw: Uint8Array, n: number): Uint8Array => {
    const out = new Uint8Array(Math.ceil(n / 16) * 16);
    let prev = new Uint8Array(0);
    for (let o = 0; o < n; o += 16) {
      const d = new Uint8Array(prev.length + pw.length);
      d.set(prev);
      d.set(pw, prev.length);
      prev = md5(d);
      out.set(prev, o);
    }
    return out.subarray(0, n);
  };
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 64 }),
      fc.constantFrom(16, 32),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      (pw, n, saltBytes) => {
        const key = evpBytesToKey(pw, n);
        assert.deepEqual(new Uint8Array(key), refEvp(pw, n));
        const salt = saltBytes.subarray(0, n);
        const sub = deriveSubkey(key, salt);
        assert.equal(sub.length, n);
        assert.deepEqual(
          new Uint8Array(sub),
          hkdf(sha1, key, salt, new TextEncoder().encode('ss-subkey'), n),
        );
      },
    ),
    { numRuns: 200 },
  );
});
