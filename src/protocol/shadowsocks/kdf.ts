import { createHash } from 'node:crypto';
import { cipher } from './cipher.js';

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

/** HKDF-SHA1(key, salt, info="ss-subkey") -> per-session subkey of key.length bytes (SIP004). */
export function deriveSubkey(key: Uint8Array, salt: Uint8Array): Buffer {
  return cipher().hkdfSha1(key, salt);
}
