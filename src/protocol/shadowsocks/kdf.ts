import { createHash, hkdfSync } from 'node:crypto';
import { nativeOneShot } from './native.js';

/**
 * OpenSSL's EVP_BytesToKey with MD5, one iteration, no salt: the SIP004 password-to-key rule.
 * D_i = MD5(D_{i-1} || password); key = D_1 || D_2 || ... truncated to keyLen.
 */
export function evpBytesToKey(password: string | Uint8Array, keyLen: number): Buffer {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : Buffer.from(password);
  const parts: Buffer[] = [];
  let total = 0;
  let prev = Buffer.alloc(0);
  while (total < keyLen) {
    prev = createHash('md5').update(prev).update(pw).digest();
    parts.push(prev);
    total += prev.length;
  }
  return Buffer.concat(parts, total).subarray(0, keyLen);
}

const SS_SUBKEY_INFO = Buffer.from('ss-subkey');

/** HKDF-SHA1(key, salt, info="ss-subkey") -> per-session subkey of key.length bytes (SIP004). */
export function deriveSubkey(key: Uint8Array, salt: Uint8Array): Buffer {
  // The native HKDF costs about 2 µs; node's hkdfSync about 12 µs (it imports a KeyObject per call).
  return (
    nativeOneShot.hkdfSha1(key, salt) ?? Buffer.from(hkdfSync('sha1', key, salt, SS_SUBKEY_INFO, key.length))
  );
}
