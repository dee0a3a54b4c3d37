/**
 * ShadowTLS v3's running HMAC-SHA1 (ihciah/shadow-tls docs/protocol-v3-en.md; SagerNet/sing-shadowtls
 * v3_*.go). Both implementations keep one HMAC instance per purpose, feed it a stream of bytes and
 * read its current value ("Sum" in Go, a cloned `finalize` in Rust) without ending it, then keep
 * feeding. Node's `createHmac` cannot be read and continued, so this builds HMAC (RFC 2104) from
 * two SHA-1 hashes whose inner state `Hash.copy()` can fork.
 *
 * Tags are the first 4 bytes of the HMAC value.
 */
import { createHash, type Hash } from 'node:crypto';

export const TAG_SIZE = 4;
const BLOCK = 64;

function padKey(key: Buffer, pad: number): Buffer {
  const k = key.length > BLOCK ? createHash('sha1').update(key).digest() : key;
  const out = Buffer.alloc(BLOCK, pad);
  for (let i = 0; i < k.length; i++) out[i] = k[i]! ^ pad;
  return out;
}

/** HMAC-SHA1 keyed by a ShadowTLS password, fed incrementally, readable at any point. */
export class RunningHmac {
  private inner: Hash;
  private readonly outerPad: Buffer;

  /** `key`: the password (UTF-8 as every client encodes it); `init`: bytes fed first. */
  constructor(key: string | Buffer, ...init: Uint8Array[]) {
    const k = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    this.inner = createHash('sha1').update(padKey(k, 0x36));
    this.outerPad = padKey(k, 0x5c);
    for (const b of init) this.inner.update(b);
  }

  update(data: Uint8Array): this {
    this.inner.update(data);
    return this;
  }

  /** The full 20-byte HMAC of everything fed so far; the instance can keep being fed. */
  digest(): Buffer {
    const innerDigest = this.inner.copy().digest();
    return createHash('sha1').update(this.outerPad).update(innerDigest).digest();
  }

  /** The 4-byte tag of everything fed so far (no state change). */
  tag(): Buffer {
    return this.digest().subarray(0, TAG_SIZE);
  }

  /** An independent copy of the current state (for a trial check that must not advance this one). */
  clone(): RunningHmac {
    const c = Object.create(RunningHmac.prototype) as RunningHmac;
    (c as unknown as { inner: Hash }).inner = this.inner.copy();
    (c as unknown as { outerPad: Buffer }).outerPad = this.outerPad;
    return c;
  }
}

/** Constant-time-enough comparison of two 4-byte tags (both sides' tags are public after use). */
export function tagsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== TAG_SIZE || b.length !== TAG_SIZE) return false;
  return ((a[0]! ^ b[0]!) | (a[1]! ^ b[1]!) | (a[2]! ^ b[2]!) | (a[3]! ^ b[3]!)) === 0;
}

/** The handshake-phase XOR key: SHA-256(password ‖ ServerRandom). */
export function xorKey(password: string | Buffer, serverRandom: Uint8Array): Buffer {
  return createHash('sha256')
    .update(typeof password === 'string' ? Buffer.from(password, 'utf8') : password)
    .update(serverRandom)
    .digest();
}

/** XOR `data` in place with `key` repeated from its first byte (each record starts the key afresh). */
export function xorInPlace(data: Uint8Array, key: Uint8Array): void {
  const n = key.length;
  for (let i = 0; i < data.length; i++) data[i] = data[i]! ^ key[i % n]!;
}
