import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import { deriveSubkey } from './kdf.js';
import type { AeadMethod } from './methods.js';
import { NativeDecoder, NativeEncoder, NativeSession, nativeAvailable, nativeOneShot } from './native.js';

/** SIP004: the largest payload one chunk may carry. */
export const MAX_PAYLOAD = 0x3fff;
const TAG = 16;
const NONCE = 12;

/**
 * One direction of an AEAD session: a subkey and a 12-byte little-endian counter nonce that
 * starts at zero and increments after every seal/open. Uses the native codec (one reusable
 * cipher context) when it is available at construction, else node:crypto.
 */
export class AeadSession {
  readonly #cipher: AeadMethod['cipher'];
  // Imported once per session: createCipheriv with a KeyObject skips re-importing raw key bytes
  // on every chunk, which is a measurable share of the per-chunk cost.
  readonly #key: KeyObject | undefined;
  readonly #native: NativeSession | undefined;
  readonly #nonce = Buffer.alloc(NONCE);

  constructor(method: AeadMethod, subkey: Uint8Array) {
    this.#cipher = method.cipher;
    if (nativeAvailable()) this.#native = new NativeSession(method.cipher, subkey);
    else this.#key = createSecretKey(subkey);
  }

  #increment(): void {
    const n = this.#nonce;
    for (let i = 0; i < NONCE; i++) {
      n[i] = (n[i]! + 1) & 0xff;
      if (n[i] !== 0) return;
    }
  }

  /** Encrypt `plain` and write ciphertext||tag into `out` at `offset`; returns bytes written. */
  sealInto(plain: Uint8Array, out: Buffer, offset: number): number {
    if (this.#native) return this.#native.sealInto(plain, out, offset);
    const c = createCipheriv(this.#cipher as 'aes-128-gcm', this.#key!, this.#nonce, { authTagLength: TAG });
    const body = c.update(plain);
    c.final();
    body.copy(out, offset);
    c.getAuthTag().copy(out, offset + body.length);
    this.#increment();
    return body.length + TAG;
  }

  seal(plain: Uint8Array): Buffer {
    if (this.#native) return this.#native.seal(plain);
    const out = Buffer.allocUnsafe(plain.length + TAG);
    this.sealInto(plain, out, 0);
    return out;
  }

  /** Decrypt ciphertext||tag; throws ERR_CIPHER when authentication fails. */
  open(sealed: Uint8Array): Buffer {
    if (sealed.length < TAG) throw new ProtocolError('ERR_SHORT_HEADER', 'sealed chunk shorter than its tag');
    if (this.#native) return this.#native.open(sealed);
    const d = createDecipheriv(this.#cipher as 'aes-128-gcm', this.#key!, this.#nonce, {
      authTagLength: TAG,
    });
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    const plain = d.update(sealed.subarray(0, sealed.length - TAG));
    try {
      d.final();
    } catch (cause) {
      throw new ProtocolError('ERR_CIPHER', 'AEAD authentication failed', { cause });
    }
    this.#increment();
    return plain;
  }
}

/**
 * Writer side of a SIP004 stream: [salt][sealed len][sealed payload]... The salt goes out with
 * the first encode() call so that salt, header and first data leave in one write.
 *
 * Uses the native codec (native.ts) when it is available at construction, else node:crypto;
 * the bytes are identical either way.
 */
export class AeadEncoder {
  readonly salt: Buffer;
  readonly #session: AeadSession | undefined;
  readonly #native: NativeEncoder | undefined;
  #saltSent = false;

  constructor(method: AeadMethod, masterKey: Uint8Array, salt: Uint8Array = randomBytes(method.saltSize)) {
    if (salt.length !== method.saltSize) {
      throw new ProtocolError('ERR_KEY', `salt must be ${method.saltSize} bytes for ${method.name}`);
    }
    this.salt = Buffer.from(salt);
    const subkey = deriveSubkey(masterKey, this.salt);
    if (nativeAvailable()) this.#native = new NativeEncoder(method.cipher, subkey);
    else this.#session = new AeadSession(method, subkey);
  }

  /** Encode `data` (any length; empty yields just the salt the first time) into wire bytes. */
  encode(data: Uint8Array): Buffer {
    if (this.#native) {
      if (this.#saltSent) return this.#native.encode(data);
      const out = this.#native.encode(data, this.salt);
      this.#saltSent = true;
      return out;
    }
    const chunks = Math.ceil(data.length / MAX_PAYLOAD);
    const saltLen = this.#saltSent ? 0 : this.salt.length;
    const out = Buffer.allocUnsafe(saltLen + chunks * (2 + TAG * 2) + data.length);
    let o = 0;
    if (!this.#saltSent) {
      this.salt.copy(out, 0);
      o = saltLen;
      this.#saltSent = true;
    }
    const len = Buffer.allocUnsafe(2);
    for (let i = 0; i < data.length; i += MAX_PAYLOAD) {
      const piece = data.subarray(i, Math.min(i + MAX_PAYLOAD, data.length));
      len.writeUInt16BE(piece.length, 0);
      o += this.#session!.sealInto(len, out, o);
      o += this.#session!.sealInto(piece, out, o);
    }
    return out;
  }
}

const enum State {
  Salt,
  Length,
  Payload,
}

/**
 * Reader side of a SIP004 stream as a byte-in state machine: push() any split of the wire
 * bytes, get back the payloads completed so far. Any failure throws a ProtocolError and the
 * decoder must not be used again.
 *
 * With the native codec (when available at construction) the salt is still collected here and
 * everything after it goes to C++, which returns the payloads of one push() as one Buffer and
 * copies the bytes of an incomplete chunk, so push() then keeps no reference to `data`.
 */
export class AeadDecoder {
  readonly #method: AeadMethod;
  readonly #masterKey: Uint8Array;
  readonly #useNative: boolean;
  #native: NativeDecoder | undefined;
  #session: AeadSession | undefined;
  #salt: Buffer | undefined;
  #state = State.Salt;
  #need: number;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #failed = false;

  constructor(method: AeadMethod, masterKey: Uint8Array) {
    this.#method = method;
    this.#masterKey = masterKey;
    this.#need = method.saltSize;
    this.#useNative = nativeAvailable();
  }

  /** The peer's salt, once received. */
  get salt(): Buffer | undefined {
    return this.#salt;
  }

  /** Bytes buffered but not yet decoded. */
  get buffered(): number {
    return this.#native ? this.#native.buffered : this.#pendingLen;
  }

  #take(n: number): Buffer {
    // Fast path: the first pending buffer holds everything.
    const first = this.#pending[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#pending.shift();
      else this.#pending[0] = first.subarray(n);
      this.#pendingLen -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const b = this.#pending[0]!;
      const k = Math.min(b.length, n - o);
      b.copy(out, o, 0, k);
      o += k;
      if (k === b.length) this.#pending.shift();
      else this.#pending[0] = b.subarray(k);
    }
    this.#pendingLen -= n;
    return out;
  }

  /**
   * Feed wire bytes. The decoder keeps a reference to `data` until it is consumed, so the caller
   * must not reuse that memory afterwards (socket 'data' events hand out fresh buffers; a reader
   * with a static `onread` buffer must copy first).
   */
  push(data: Uint8Array): Buffer[] {
    if (this.#failed) throw new ProtocolError('ERR_CIPHER', 'decoder already failed');
    if (this.#useNative) return this.#pushNative(data);
    if (data.length > 0) {
      this.#pending.push(
        Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length),
      );
      this.#pendingLen += data.length;
    }
    const out: Buffer[] = [];
    try {
      while (this.#pendingLen >= this.#need) {
        const bytes = this.#take(this.#need);
        switch (this.#state) {
          case State.Salt:
            this.#salt = Buffer.from(bytes);
            this.#session = new AeadSession(this.#method, deriveSubkey(this.#masterKey, this.#salt));
            this.#state = State.Length;
            this.#need = 2 + TAG;
            break;
          case State.Length: {
            const len = this.#session!.open(bytes).readUInt16BE(0);
            if (len === 0 || len > MAX_PAYLOAD) {
              throw new ProtocolError('ERR_PAYLOAD_SIZE', `chunk length ${len} outside 1..${MAX_PAYLOAD}`);
            }
            this.#state = State.Payload;
            this.#need = len + TAG;
            break;
          }
          case State.Payload:
            out.push(this.#session!.open(bytes));
            this.#state = State.Length;
            this.#need = 2 + TAG;
            break;
        }
      }
    } catch (err) {
      this.#failed = true;
      throw err;
    }
    return out;
  }

  #pushNative(data: Uint8Array): Buffer[] {
    let nat = this.#native;
    const out: Buffer[] = [];
    try {
      if (!nat) {
        // Still reading the salt: collect it in #pending like the node:crypto path.
        if (data.length > 0) {
          this.#pending.push(
            Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length),
          );
          this.#pendingLen += data.length;
        }
        if (this.#pendingLen < this.#need) return out;
        this.#salt = Buffer.from(this.#take(this.#need));
        nat = new NativeDecoder(this.#method.cipher, deriveSubkey(this.#masterKey, this.#salt));
        this.#native = nat;
        this.#state = State.Length;
        const rest = this.#pending;
        this.#pending = [];
        this.#pendingLen = 0;
        for (const b of rest) {
          const plain = nat.decode(b);
          if (plain.length > 0) out.push(plain);
        }
        return out;
      }
      const plain = nat.decode(data);
      if (plain.length > 0) out.push(plain);
      return out;
    } catch (err) {
      this.#failed = true;
      throw err;
    }
  }

  /**
   * push() for a buffer the caller owns and will not read again (a socket read in the relay
   * phase): with the native codec, payloads are opened in place and returned as views of `data`,
   * so no output buffer is allocated per read. Otherwise the same as push().
   */
  pushInPlace(data: Buffer): Buffer[] {
    const nat = this.#native;
    if (!nat || this.#failed) return this.push(data);
    try {
      return nat.decodeInPlace(data);
    } catch (err) {
      this.#failed = true;
      throw err;
    }
  }

  /** True when the decoder sits exactly on a chunk boundary with nothing buffered. */
  get atBoundary(): boolean {
    if (this.#failed) return false;
    if (this.#native) return this.#native.readingLength && this.#native.buffered === 0;
    return this.#state === State.Length && this.#pendingLen === 0;
  }

  /** Bytes still needed to finish the current header or chunk. */
  get needed(): number {
    if (this.#native) return this.#native.elementSize - this.#native.buffered;
    return this.#need - this.#pendingLen;
  }
}

const ZERO_NONCE = new Uint8Array(12);

/**
 * Trial decryption for many keys on one port, without building a decoder or throwing for each
 * wrong key: does `head` (salt + sealed length chunk, at least saltSize + 18 bytes) authenticate
 * under `masterKey`? True or false with the native addon (HKDF and one 2-byte AEAD open, a few
 * µs); undefined without it, and the caller falls back to a decoder.
 */
export function sip004HeadMatches(
  method: AeadMethod,
  masterKey: Uint8Array,
  head: Uint8Array,
): boolean | undefined {
  if (head.length < method.saltSize + 2 + TAG) return false;
  const subkey = nativeOneShot.hkdfSha1(masterKey, head.subarray(0, method.saltSize));
  if (!subkey) return undefined;
  const r = nativeOneShot.openAt(
    method.cipher,
    subkey,
    ZERO_NONCE,
    head.subarray(0, method.saltSize + 2 + TAG),
    method.saltSize,
  );
  return r === undefined ? undefined : r !== null;
}
