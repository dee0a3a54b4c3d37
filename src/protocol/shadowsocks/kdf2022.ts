/**
 * SIP022's BLAKE3 key derivation (session and identity subkeys, the PSK hash of an identity
 * header), apart from methods2022.ts so that what only names or checks a 2022 key (the client's
 * key parsing and shaping, the defaults) does not load @noble/hashes: a client with a SIP004 key
 * never derives a 2022 subkey, and the BLAKE3 module costs some 1.5 MiB of idle RSS.
 */
import { blake3 } from '@noble/hashes/blake3.js';

const SESSION_CONTEXT = new TextEncoder().encode('shadowsocks 2022 session subkey');
const IDENTITY_CONTEXT = new TextEncoder().encode('shadowsocks 2022 identity subkey');

// derive_key hashes its context string into a key first; that part is the same for every call,
// so keep one hasher per (context, length) with the context absorbed and clone it per call.
const bases = new Map<string, ReturnType<typeof blake3.create>>();

function deriveKey(context: Uint8Array, name: string, key: Uint8Array, salt: Uint8Array): Buffer {
  const id = `${name}/${key.length}`;
  let base = bases.get(id);
  if (base === undefined) {
    base = blake3.create({ context, dkLen: key.length });
    bases.set(id, base);
  }
  return Buffer.from(base.clone().update(key).update(salt).digest());
}

/** SIP022 §2.2: blake3::derive_key("shadowsocks 2022 session subkey", key || salt), key-length output. */
export function deriveSessionSubkey(key: Uint8Array, salt: Uint8Array): Buffer {
  return deriveKey(SESSION_CONTEXT, 'session', key, salt);
}

/** SIP023 TCP: blake3::derive_key("shadowsocks 2022 identity subkey", iPSK || salt). */
export function deriveIdentitySubkey(identityKey: Uint8Array, salt: Uint8Array): Buffer {
  return deriveKey(IDENTITY_CONTEXT, 'identity', identityKey, salt);
}

/** SIP023: the first 16 bytes of blake3::hash(psk), the plaintext of an identity header. */
export function pskHash(psk: Uint8Array): Buffer {
  return Buffer.from(blake3(psk).subarray(0, 16));
}
