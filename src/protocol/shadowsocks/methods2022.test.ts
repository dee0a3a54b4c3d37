import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { blake3 } from '@noble/hashes/blake3.js';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { deriveIdentitySubkey, deriveSessionSubkey } from './kdf2022.js';
import {
  AEAD_2022_METHODS,
  aesDecryptBlock,
  aesEncryptBlock,
  decodePsk,
  getAead2022Method,
  parsePsk2022,
} from './methods2022.js';

function code(c: string) {
  return (err: unknown) => err instanceof ProtocolError && err.code === c;
}

/**
 * Official BLAKE3 test vectors (BLAKE3-team/BLAKE3 test_vectors/test_vectors.json): input is
 * bytes 0,1,2,...,250,0,1,... of the given length; derive_key uses the context string below.
 * Checked before we trust @noble/hashes for the SIP022 subkeys and SIP023 hashes.
 */
const BLAKE3_CONTEXT = 'BLAKE3 2019-12-27 16:29:52 test vectors context';
const BLAKE3_CASES = [
  {
    len: 0,
    hash: 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262e00f03e7b69af26b7faaf09fcd333050338ddfe085b8cc869ca98b206c08243a26f5487789e8f660afe6c99ef9e0c52b92e7393024a80459cf91f476f9ffdbda7001c22e159b402631f277ca96f2defdf1078282314e763699a31c5363165421cce14d',
    deriveKey:
      '2cc39783c223154fea8dfb7c1b1660f2ac2dcbd1c1de8277b0b0dd39b7e50d7d905630c8be290dfcf3e6842f13bddd573c098c3f17361f1f206b8cad9d088aa4a3f746752c6b0ce6a83b0da81d59649257cdf8eb3e9f7d4998e41021fac119deefb896224ac99f860011f73609e6e0e4540f93b273e56547dfd3aa1a035ba6689d89a0',
  },
  {
    len: 1,
    hash: '2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213c3a6cb8bf623e20cdb535f8d1a5ffb86342d9c0b64aca3bce1d31f60adfa137b358ad4d79f97b47c3d5e79f179df87a3b9776ef8325f8329886ba42f07fb138bb502f4081cbcec3195c5871e6c23e2cc97d3c69a613eba131e5f1351f3f1da786545e5',
    deriveKey:
      'b3e2e340a117a499c6cf2398a19ee0d29cca2bb7404c73063382693bf66cb06c5827b91bf889b6b97c5477f535361caefca0b5d8c4746441c57617111933158950670f9aa8a05d791daae10ac683cbef8faf897c84e6114a59d2173c3f417023a35d6983f2c7dfa57e7fc559ad751dbfb9ffab39c2ef8c4aafebc9ae973a64f0c76551',
  },
  {
    len: 1023,
    hash: '10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11a182d27a591b05592b15607500e1e8dd56bc6c7fc063715b7a1d737df5bad3339c56778957d870eb9717b57ea3d9fb68d1b55127bba6a906a4a24bbd5acb2d123a37b28f9e9a81bbaae360d58f85e5fc9d75f7c370a0cc09b6522d9c8d822f2f28f485',
    deriveKey:
      '74a16c1c3d44368a86e1ca6df64be6a2f64cce8f09220787450722d85725dea59c413264404661e9e4d955409dfe4ad3aa487871bcd454ed12abfe2c2b1eb7757588cf6cb18d2eccad49e018c0d0fec323bec82bf1644c6325717d13ea712e6840d3e6e730d35553f59eff5377a9c350bcc1556694b924b858f329c44ee64b884ef00d',
  },
  {
    len: 1024,
    hash: '42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af71cf8107265ecdaf8505b95d8fcec83a98a6a96ea5109d2c179c47a387ffbb404756f6eeae7883b446b70ebb144527c2075ab8ab204c0086bb22b7c93d465efc57f8d917f0b385c6df265e77003b85102967486ed57db5c5ca170ba441427ed9afa684e',
    deriveKey:
      '7356cd7720d5b66b6d0697eb3177d9f8d73a4a5c5e968896eb6a6896843027066c23b601d3ddfb391e90d5c8eccdef4ae2a264bce9e612ba15e2bc9d654af1481b2e75dbabe615974f1070bba84d56853265a34330b4766f8e75edd1f4a1650476c10802f22b64bd3919d246ba20a17558bc51c199efdec67e80a227251808d8ce5bad',
  },
];

describe('BLAKE3 (@noble/hashes) against the official test vectors', () => {
  for (const c of BLAKE3_CASES) {
    it(`input length ${c.len}: hash, derive_key, and their 16/32-byte prefixes`, () => {
      const input = Uint8Array.from({ length: c.len }, (_, i) => i % 251);
      const context = new TextEncoder().encode(BLAKE3_CONTEXT);
      const full = c.hash.length / 2;
      assert.equal(Buffer.from(blake3(input, { dkLen: full })).toString('hex'), c.hash);
      assert.equal(Buffer.from(blake3(input)).toString('hex'), c.hash.slice(0, 64));
      assert.equal(Buffer.from(blake3(input, { context, dkLen: full })).toString('hex'), c.deriveKey);
      assert.equal(
        Buffer.from(blake3(input, { context, dkLen: 16 })).toString('hex'),
        c.deriveKey.slice(0, 32),
      );
      assert.equal(Buffer.from(blake3(input, { context })).toString('hex'), c.deriveKey.slice(0, 64));
    });
  }
});

describe('2022 methods and PSKs', () => {
  it('looks up the three methods and refuses others clearly', () => {
    assert.equal(getAead2022Method('2022-blake3-aes-128-gcm').keySize, 16);
    assert.equal(getAead2022Method('2022-blake3-aes-256-gcm').keySize, 32);
    assert.equal(getAead2022Method('2022-blake3-chacha20-poly1305').keySize, 32);
    assert.throws(() => getAead2022Method('2022-blake3-chacha8-poly1305'), code('ERR_METHOD'));
    assert.throws(() => getAead2022Method('aes-128-gcm'), code('ERR_METHOD'));
  });

  it('accepts base64 keys of the exact length only, with a message naming the lengths', () => {
    const m = AEAD_2022_METHODS['2022-blake3-aes-128-gcm'];
    const k16 = Buffer.alloc(16, 0xab);
    assert.deepEqual(decodePsk(m, k16.toString('base64')), k16);
    assert.deepEqual(decodePsk(m, k16.toString('base64url')), k16);
    assert.throws(
      () => decodePsk(m, Buffer.alloc(32).toString('base64')),
      (e: unknown) =>
        e instanceof ProtocolError && e.code === 'ERR_KEY' && /32 bytes.*exactly 16/.test(e.message),
    );
    assert.throws(() => decodePsk(m, Buffer.alloc(15).toString('base64')), code('ERR_KEY'));
    assert.throws(() => decodePsk(m, 'not base64 !!'), code('ERR_KEY'));
    assert.throws(() => decodePsk(m, ''), code('ERR_KEY'));
    assert.throws(
      () => decodePsk(AEAD_2022_METHODS['2022-blake3-aes-256-gcm'], k16.toString('base64')),
      code('ERR_KEY'),
    );
    assert.throws(
      () => decodePsk(m, 'password'),
      (e: unknown) => e instanceof ProtocolError && !e.message.includes('password'),
    );
  });

  it('parses iPSK:uPSK passwords', () => {
    const m = AEAD_2022_METHODS['2022-blake3-aes-256-gcm'];
    const i = Buffer.alloc(32, 1);
    const u = Buffer.alloc(32, 2);
    const p = parsePsk2022(m, `${i.toString('base64')}:${u.toString('base64')}`);
    assert.deepEqual(p.identityKeys, [i]);
    assert.deepEqual(p.userKey, u);
    assert.deepEqual(parsePsk2022(m, u.toString('base64')).identityKeys, []);
    assert.throws(
      () => parsePsk2022(m, `${i.toString('base64')}:${Buffer.alloc(16).toString('base64')}`),
      (e: unknown) => e instanceof ProtocolError && e.code === 'ERR_KEY' && e.message.startsWith('user key'),
    );
    assert.throws(
      () =>
        parsePsk2022(
          AEAD_2022_METHODS['2022-blake3-chacha20-poly1305'],
          `${i.toString('base64')}:${u.toString('base64')}`,
        ),
      code('ERR_KEY'),
    );
  });

  it('AES block helpers invert each other (FIPS-197 C.1 for AES-128)', () => {
    const m = AEAD_2022_METHODS['2022-blake3-aes-128-gcm'];
    const key = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    const pt = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const ct = aesEncryptBlock(m, key, pt);
    assert.equal(ct.toString('hex'), '69c4e0d86a7b0430d8cdb78070b4c55a');
    assert.deepEqual(aesDecryptBlock(m, key, ct), pt);
  });
});

describe('subkey derivation', () => {
  it('property: the cached-context hasher equals one-shot blake3 derive_key over key || salt', () => {
    const ctx = new TextEncoder().encode('shadowsocks 2022 session subkey');
    const idCtx = new TextEncoder().encode('shadowsocks 2022 identity subkey');
    fc.assert(
      fc.property(
        fc.constantFrom(16, 32),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 0, maxLength: 32 }),
        (n, k, salt) => {
          const key = k.subarray(0, n);
          const material = Buffer.concat([key, salt]);
          assert.deepEqual(
            deriveSessionSubkey(key, salt),
            Buffer.from(blake3(material, { context: ctx, dkLen: n })),
          );
          assert.deepEqual(
            deriveIdentitySubkey(key, salt),
            Buffer.from(blake3(material, { context: idCtx, dkLen: n })),
          );
          assert.deepEqual(deriveSessionSubkey(key, salt), deriveSessionSubkey(key, salt));
        },
      ),
      { numRuns: 100 },
    );
  });
});
