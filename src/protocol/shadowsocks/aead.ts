import { ProtocolError } from '../errors.js';
import { ByteQueue } from './byte-queue.js';
import { poolRandomBytes } from './random-pool.js';
import {
  cipher,
  MAX_PAYLOAD,
  SIP004_BAD_LENGTH,
  TAG,
  SIP004_WRONG_KEY,
  type ChunkDecoder,
  type ChunkEncoder,
  type CipherBackend,
  type SessionCipher,
} from './cipher.js';
import { deriveSubkey } from './kdf.js';
import { checkSalt, type AeadMethod } from './methods.js';

/**
 * AeadDecoder.pushInPlace starts on a first read holding the whole salt without its queue,
 * unless LADDER_SALT_IN_PLACE=0 (read once).
 */
const SALT_IN_PLACE = process.env.LADDER_SALT_IN_PLACE !== '0';

/** SIP004: the largest payload one chunk may carry. */
export { MAX_PAYLOAD };

/**
 * One direction of an AEAD session: a subkey and a 12-byte little-endian counter nonce that
 * starts at zero and increments after every seal/open, on the cipher backend in use at
 * construction (cipher.ts).
 */
export class AeadSession {
  readonly #s: SessionCipher;

  constructor(method: AeadMethod, subkey: Uint8Array) {
    this.#s = cipher().session(method.cipher, subkey);
  }

  /** Encrypt `plain` and write ciphertext||tag into `out` at `offset`; returns bytes written. */
  sealInto(plain: Uint8Array, out: Buffer, offset: number): number {
    return this.#s.sealInto(plain, out, offset);
  }

  seal(plain: Uint8Array): Buffer {
    return this.#s.seal(plain);
  }

  /** Decrypt ciphertext||tag; throws ERR_SHORT_HEADER when shorter than a tag, ERR_CIPHER when authentication fails. */
  open(sealed: Uint8Array): Buffer {
    return this.#s.open(sealed);
  }
}

/**
 * a || b in Node's pooled memory: what Buffer.concat([a, b]) returns, without its list, checks and
 * per-part copies in JS (a first write's header and data, once per connection in baseline code).
 */
export function join2(a: Uint8Array, b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Writer side of a SIP004 stream: [salt][sealed len][sealed payload]... The salt goes out with
 * the first encode() call so that salt, header and first data leave in one write. The bytes are
 * the same on either cipher backend.
 */
export class AeadEncoder {
  readonly salt: Buffer;
  readonly #chunks: ChunkEncoder;
  #saltSent = false;

  /**
   * `owned`: `salt` is a Buffer made for this encoder that nothing else holds (a dialer's fresh
   * salt): kept as it is, not copied.
   */
  constructor(method: AeadMethod, masterKey: Uint8Array, salt?: Uint8Array, owned = false) {
    if (salt !== undefined) checkSalt(method, salt);
    // A given salt is copied (its buffer stays the caller's) unless it is owned; a drawn one is
    // already this encoder's own (poolRandomBytes hands out a copy): not copied again.
    this.salt =
      salt === undefined
        ? poolRandomBytes(method.saltSize)
        : owned && Buffer.isBuffer(salt)
          ? salt
          : Buffer.from(salt);
    const b = cipher();
    this.#chunks = b.saltedEncoder
      ? b.saltedEncoder(method.cipher, masterKey, this.salt)
      : b.chunkEncoder(method.cipher, deriveSubkey(masterKey, this.salt));
  }

  /**
   * The addon's codec (native backend), for a relay that encodes in C++ from here on (the salt,
   * if not sent yet, is then the caller's to send first); undefined on node:crypto.
   */
  get nativeCodec(): object | undefined {
    return this.#chunks.native;
  }

  /** Encode `data` (any length; empty yields just the salt the first time) into wire bytes. */
  encode(data: Uint8Array): Buffer {
    if (this.#saltSent) return this.#chunks.encode(data);
    const out = this.#chunks.encode(data, this.salt);
    this.#saltSent = true;
    return out;
  }
}

/**
 * Reader side of a SIP004 stream as a byte-in state machine: push() any split of the wire
 * bytes, get back the payloads completed so far. Any failure throws a ProtocolError and the
 * decoder must not be used again.
 *
 * The salt is collected here; everything after it goes to the backend's chunk decoder (chosen
 * at construction). On the native backend that returns the payloads of one push() as one Buffer
 * and copies the bytes of an incomplete chunk, so push() then keeps no reference to `data`.
 */
export class AeadDecoder {
  readonly #method: AeadMethod;
  readonly #masterKey: Uint8Array;
  readonly #cipher: CipherBackend;
  readonly #saltQueue = new ByteQueue();
  #chunks: ChunkDecoder | undefined;
  #salt: Buffer | undefined;
  #failed = false;

  /** `opened`: the peer's salt and a chunk decoder already keyed for it (sip004Open). */
  constructor(method: AeadMethod, masterKey: Uint8Array, opened?: { salt: Buffer; chunks: ChunkDecoder }) {
    this.#method = method;
    this.#masterKey = masterKey;
    this.#cipher = cipher();
    if (opened) [this.#salt, this.#chunks] = [opened.salt, opened.chunks];
  }

  /** The peer's salt, once received. */
  get salt(): Buffer | undefined {
    return this.#salt;
  }

  /** Bytes buffered but not yet decoded. */
  get buffered(): number {
    return this.#chunks ? this.#chunks.buffered : this.#saltQueue.length;
  }

  /**
   * Feed wire bytes. The decoder may keep a reference to `data` until it is consumed, so the
   * caller must not reuse that memory afterwards (socket 'data' events hand out fresh buffers; a
   * reader with a static `onread` buffer must copy first).
   */
  push(data: Uint8Array): Buffer[] {
    if (this.#failed) throw new ProtocolError('ERR_CIPHER', 'decoder already failed');
    try {
      return this.#chunks ? this.#chunks.push(data) : this.#readSalt(data);
    } catch (err) {
      this.#failed = true;
      throw err;
    }
  }

  /** Still reading the salt: once it is complete, start the chunk decoder on what follows. */
  #readSalt(data: Uint8Array): Buffer[] {
    const q = this.#saltQueue;
    q.push(data);
    const out: Buffer[] = [];
    if (q.length < this.#method.saltSize) return out;
    this.#salt = Buffer.from(q.take(this.#method.saltSize));
    const chunks = this.#chunksFor(this.#salt);
    this.#chunks = chunks;
    for (const b of q.drain()) for (const p of chunks.push(b)) out.push(p);
    return out;
  }

  /**
   * push() for a buffer the caller owns and will not read again (a socket read in the relay
   * phase): with the native codec, payloads are opened in place and returned as views of `data`,
   * so no output buffer is allocated per read. Otherwise the same as push().
   */
  pushInPlace(data: Buffer): Buffer[] {
    const chunks = this.#chunks;
    if (!chunks && SALT_IN_PLACE && !this.#failed && this.#saltQueue.length === 0) {
      const n = this.#method.saltSize;
      if (data.length >= n) return this.#startInPlace(data, n);
    }
    if (!chunks || this.#failed) return this.push(data);
    try {
      return chunks.pushInPlace(data);
    } catch (err) {
      this.#failed = true;
      throw err;
    }
  }

  /** The chunk decoder for the peer's salt, on this decoder's backend. */
  #chunksFor(salt: Buffer): ChunkDecoder {
    const b = this.#cipher;
    if (b.saltedDecoder) return b.saltedDecoder(this.#method.cipher, this.#masterKey, salt);
    return b.chunkDecoder(this.#method.cipher, b.hkdfSha1(this.#masterKey, salt)); // deriveSubkey on this backend
  }

  /**
   * A first read that holds the whole salt (the usual case): the salt copied out, the chunk
   * decoder started on the rest in place, no queue. What #readSalt does, with fewer copies.
   */
  #startInPlace(data: Buffer, saltSize: number): Buffer[] {
    try {
      const salt = Buffer.from(data.subarray(0, saltSize));
      this.#salt = salt;
      const chunks = this.#chunksFor(salt);
      this.#chunks = chunks;
      return chunks.pushInPlace(data.subarray(saltSize));
    } catch (err) {
      this.#failed = true;
      throw err;
    }
  }

  /**
   * The addon's codec once the salt is read (native backend), for a relay that decodes in C++
   * from here on (it continues from any chunk begun here); undefined otherwise or once failed.
   */
  get nativeCodec(): object | undefined {
    return this.#failed ? undefined : this.#chunks?.native;
  }

  /** True when the decoder sits exactly on a chunk boundary with nothing buffered. */
  get atBoundary(): boolean {
    const c = this.#chunks;
    return !this.#failed && c !== undefined && c.readingLength && c.buffered === 0;
  }

  /** Bytes still needed to finish the current header or chunk. */
  get needed(): number {
    const c = this.#chunks;
    return c ? c.elementSize - c.buffered : this.#method.saltSize - this.#saltQueue.length;
  }
}

/**
 * The server's trial of one SIP004 key and, when it is the key, its decoder, deriving the subkey
 * once (sip004HeadMatches then a new decoder derive it twice): `head` is exactly salt + sealed
 * length chunk. The decoder has read `head` (push the bytes after it); 'wrong-key' when the tag
 * does not verify; 'bad-length' when it does but the length is invalid (what a decoder's push
 * throws as ERR_PAYLOAD_SIZE); undefined on a backend without the operation (node:crypto, an
 * older addon): the caller then tests as before.
 */
export function sip004Open(
  method: AeadMethod,
  masterKey: Uint8Array,
  head: Buffer,
): AeadDecoder | 'wrong-key' | 'bad-length' | undefined {
  const open = cipher().sip004Open;
  if (!open || head.length !== method.saltSize + 2 + TAG) return undefined;
  const r = open(method, masterKey, head);
  if (r === SIP004_WRONG_KEY) return 'wrong-key';
  if (r === SIP004_BAD_LENGTH) return 'bad-length';
  const salt = Buffer.from(head.subarray(0, method.saltSize));
  return new AeadDecoder(method, masterKey, { salt, chunks: r });
}

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
  return cipher().sip004HeadMatches(method, masterKey, head);
}
