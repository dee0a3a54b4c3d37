/**
 * The native CipherBackend (cipher.ts) over the addon native.ts loads: the stream codecs keep one
 * OpenSSL EVP_CIPHER_CTX per direction in C++, re-initialise only the nonce per AEAD operation
 * and run the whole chunking loop there; the stateless operations use one context per method,
 * keyed per call. Same bytes and errors as cipher-node.ts.
 */
import { ProtocolError } from '../errors.js';
import type {
  AeadCipher,
  ChunkDecoder,
  ChunkEncoder,
  ChunkOptions,
  CipherBackend,
  SessionCipher,
} from './cipher-types.js';
import { MAX_PAYLOAD, SIP004_BAD_LENGTH, SIP004_WRONG_KEY, TAG } from './cipher-types.js';
import type { AeadMethod } from './methods.js';
import { NATIVE_METHOD, nativeAddon, type NativeAddon } from './native.js';

const ZERO_NONCE = new Uint8Array(12);
const NO_KEY = new Uint8Array(0);

/** The addon, for codecs built without one given (tests); throws when it is not in use. */
function need(): NativeAddon {
  const a = nativeAddon();
  if (!a) throw new ProtocolError('ERR_USAGE', 'native AEAD codec not available');
  return a;
}

function sealFailed(cause: unknown): ProtocolError {
  return new ProtocolError('ERR_CIPHER', 'native AEAD seal failed', { cause });
}

function tooShort(): ProtocolError {
  return new ProtocolError('ERR_SHORT_HEADER', 'sealed chunk shorter than its tag');
}

function authFailed(): ProtocolError {
  return new ProtocolError('ERR_CIPHER', 'AEAD authentication failed');
}

/**
 * The subkey derived in C++ with the codec (createSalted) where the addon has it, unless
 * LADDER_SUBKEY_IN_CODEC=0 (read once): then hkdfSha1 and create, two calls and a Buffer.
 */
const SUBKEY_IN_CODEC = process.env.LADDER_SUBKEY_IN_CODEC !== '0';

/** A codec keyed with `subkey`, or with hkdfSha1(subkey, salt) when `salt` is given (createSalted). */
function createCodec(
  a: NativeAddon,
  cipher: AeadCipher,
  subkey: Uint8Array,
  enc: boolean,
  o: ChunkOptions,
  salt?: Uint8Array,
): object {
  if (salt) {
    return a.createSalted!(
      NATIVE_METHOD[cipher],
      subkey,
      salt,
      enc,
      o.maxPayload ?? MAX_PAYLOAD,
      o.allowEmpty ? 0 : 1,
      o.nonceStart ?? 0,
    );
  }
  return a.create(
    NATIVE_METHOD[cipher],
    subkey,
    enc,
    o.maxPayload ?? MAX_PAYLOAD,
    o.allowEmpty ? 0 : 1,
    o.nonceStart ?? 0,
  );
}

/** Writer side of one stream direction: a subkey and a nonce counter held in C++. */
export class NativeEncoder implements ChunkEncoder {
  readonly #a: NativeAddon;
  readonly #codec: object;

  constructor(
    cipher: AeadCipher,
    subkey: Uint8Array,
    options: ChunkOptions = {},
    addon: NativeAddon = need(),
    salt?: Uint8Array,
  ) {
    this.#a = addon;
    this.#codec = createCodec(addon, cipher, subkey, true, options, salt);
  }

  get native(): object {
    return this.#codec;
  }

  /** [prefix][sealed len][sealed payload]... for `data` of any length, in one new Buffer. */
  encode(data: Uint8Array, prefix?: Uint8Array): Buffer {
    try {
      return this.#a.encode(this.#codec, data, prefix);
    } catch (cause) {
      throw sealFailed(cause);
    }
  }

  encodeWith(prefix: readonly Uint8Array[], pieces: readonly Uint8Array[], rest: Uint8Array): Buffer {
    const parts = [...prefix];
    for (const p of pieces) parts.push(this.seal(p));
    if (rest.length > 0) parts.push(this.encode(rest));
    return Buffer.concat(parts);
  }

  /** One AEAD seal (ciphertext || tag) with the next nonce. */
  seal(plain: Uint8Array): Buffer {
    try {
      return this.#a.seal(this.#codec, plain);
    } catch (cause) {
      throw sealFailed(cause);
    }
  }
}

const ERR_CIPHER = 1;
const ERR_PAYLOAD_SIZE = 2;

/**
 * Reader side of one stream direction (after the salt and headers). decode() takes any split of
 * the wire bytes and returns the plaintext of every chunk they complete, concatenated. Bytes of
 * an incomplete chunk are copied into the codec, so the caller may reuse `data` at once. Throws
 * ProtocolError ERR_CIPHER / ERR_PAYLOAD_SIZE; after that every call throws ERR_CIPHER.
 */
export class NativeDecoder implements ChunkDecoder {
  readonly #a: NativeAddon;
  readonly #codec: object;
  // [buffered, size of the element being read, state (0 length, 1 payload), bad length]
  readonly #info: Int32Array;
  readonly #maxPayload: number;
  /** What the addon's decode of the next bytes gave already (`opened.after`), until push() takes it. */
  #after: Buffer | number | undefined;

  /**
   * `opened`: a codec the addon made and advanced (sip004Open) and its state; `subkey` unused.
   * `opened.after`: the addon decoded the bytes the first push() will be given already (the
   * server's trial at the accept, native/tcp_accept.cc): that push() returns or throws what it gave.
   */
  constructor(
    cipher: AeadCipher,
    subkey: Uint8Array,
    options: ChunkOptions = {},
    addon: NativeAddon = need(),
    salt?: Uint8Array,
    opened?: { codec: object; info: Int32Array; after?: Buffer | number | undefined },
  ) {
    this.#a = addon;
    this.#codec = opened ? opened.codec : createCodec(addon, cipher, subkey, false, options, salt);
    this.#info = opened ? opened.info : new Int32Array([0, 18, 0, 0]);
    this.#maxPayload = options.maxPayload ?? MAX_PAYLOAD;
    this.#after = opened?.after;
  }

  get native(): object {
    return this.#codec;
  }

  decode(data: Uint8Array): Buffer {
    if (this.#after !== undefined) return this.push(data)[0] ?? Buffer.alloc(0);
    const r = this.#a.decode(this.#codec, data, this.#info);
    if (typeof r !== 'number') return r;
    throw this.#error(r);
  }

  /** decode() as a list: empty, or the one buffer of payloads. */
  push(data: Uint8Array): Buffer[] {
    const r = this.#after ?? this.#a.decode(this.#codec, data, this.#info);
    this.#after = undefined;
    if (typeof r !== 'number') return r.length > 0 ? [r] : [];
    throw this.#error(r);
  }

  /** One AEAD open of ciphertext || tag with the next nonce; ERR_CIPHER when it fails. */
  open(sealed: Uint8Array): Buffer {
    if (sealed.length < TAG) throw tooShort();
    const r = this.#a.open(this.#codec, sealed);
    if (typeof r === 'number') throw authFailed();
    return r;
  }

  /**
   * decode() without an output allocation: payloads that lie whole inside `data` are opened in
   * place and returned as a view of its front, so `data` must be a buffer the caller owns and
   * does not read again (a socket read, in the relay phase). A payload begun in an earlier call
   * comes first, in a buffer of its own. Errors as decode(); `data` then holds garbage.
   */
  decodeInPlace(data: Buffer): Buffer[] {
    return this.pushInPlace(data);
  }

  /** decodeInPlace(), under the name the codecs call (ChunkDecoder). */
  pushInPlace(data: Buffer): Buffer[] {
    if (this.#after !== undefined) return this.push(data);
    const r = this.#a.decodeInPlace(this.#codec, data, this.#info);
    if (typeof r === 'number') {
      if (r > 0) return [data.subarray(0, r)];
      if (r === 0) return [];
      throw this.#error(r === -2 ? ERR_PAYLOAD_SIZE : ERR_CIPHER);
    }
    const [carried, n] = r;
    return n > 0 ? [carried, data.subarray(0, n)] : [carried];
  }

  #error(status: number): ProtocolError {
    if (status === ERR_PAYLOAD_SIZE) {
      return new ProtocolError(
        'ERR_PAYLOAD_SIZE',
        `chunk length ${this.#info[3]} outside 1..${this.#maxPayload}`,
      );
    }
    return new ProtocolError(
      'ERR_CIPHER',
      status === ERR_CIPHER ? 'AEAD authentication failed' : `native decode status ${status}`,
    );
  }

  get buffered(): number {
    return this.#info[0]!;
  }

  get elementSize(): number {
    return this.#info[1]!;
  }

  get readingLength(): boolean {
    return this.#info[2] === 0;
  }
}

/** SessionCipher with the nonce counter and the OpenSSL context held in C++. */
export class NativeSession implements SessionCipher {
  readonly #a: NativeAddon;
  readonly #codec: object;

  constructor(cipher: AeadCipher, subkey: Uint8Array, addon: NativeAddon = need()) {
    this.#a = addon;
    this.#codec = addon.createSession(NATIVE_METHOD[cipher], subkey);
  }

  seal(plain: Uint8Array): Buffer {
    try {
      return this.#a.seal(this.#codec, plain);
    } catch (cause) {
      throw sealFailed(cause);
    }
  }

  /** Writes ciphertext || tag into `out` at `offset`; throws RangeError when it does not fit. */
  sealInto(plain: Uint8Array, out: Uint8Array, offset: number): number {
    if (!Number.isInteger(offset) || offset < 0 || offset + plain.length + TAG > out.length) {
      throw new RangeError(
        `sealInto: ${plain.length} + 16 bytes do not fit at offset ${offset} of ${out.length}`,
      );
    }
    try {
      return this.#a.sealInto(this.#codec, plain, out, offset);
    } catch (cause) {
      throw sealFailed(cause);
    }
  }

  open(sealed: Uint8Array): Buffer {
    if (sealed.length < TAG) throw tooShort();
    const r = this.#a.open(this.#codec, sealed);
    if (typeof r === 'number') throw authFailed();
    return r;
  }
}

/** The native backend over a loaded addon (cipher.ts creates it when it chooses this backend). */
export function createNativeCipher(a: NativeAddon): CipherBackend {
  const sealParts = (
    cipher: AeadCipher,
    key: Uint8Array,
    nonce: Uint8Array,
    prefix: Uint8Array | undefined,
    x: Uint8Array,
    y?: Uint8Array,
  ): Buffer => {
    try {
      return a.sealParts(NATIVE_METHOD[cipher], key, nonce, prefix, x, y);
    } catch (cause) {
      throw sealFailed(cause);
    }
  };
  const openAt = (
    cipher: AeadCipher,
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    offset: number,
  ): Buffer | null => {
    const r = a.openAt(NATIVE_METHOD[cipher], key, nonce, sealed, offset);
    return typeof r === 'number' ? null : r;
  };
  const sip004Open = a.sip004Open?.bind(a);
  const open004: CipherBackend['sip004Open'] = sip004Open
    ? (method: AeadMethod, masterKey: Uint8Array, head: Uint8Array) => {
        const info = new Int32Array(4);
        const r = sip004Open(NATIVE_METHOD[method.cipher], masterKey, head, info);
        if (typeof r === 'number') return r === SIP004_BAD_LENGTH ? SIP004_BAD_LENGTH : SIP004_WRONG_KEY;
        return new NativeDecoder(method.cipher, NO_KEY, {}, a, undefined, { codec: r, info });
      }
    : undefined;
  return {
    name: 'native',
    session: (cipher, subkey) => new NativeSession(cipher, subkey, a),
    chunkEncoder: (cipher, subkey, options) => new NativeEncoder(cipher, subkey, options, a),
    chunkDecoder: (cipher, subkey, options) => new NativeDecoder(cipher, subkey, options, a),
    ...(SUBKEY_IN_CODEC && typeof a.createSalted === 'function'
      ? {
          saltedEncoder: (cipher: AeadCipher, masterKey: Uint8Array, salt: Uint8Array) =>
            new NativeEncoder(cipher, masterKey, {}, a, salt),
          saltedDecoder: (cipher: AeadCipher, masterKey: Uint8Array, salt: Uint8Array) =>
            new NativeDecoder(cipher, masterKey, {}, a, salt),
        }
      : {}),
    // About 2 µs; node's hkdfSync about 12 µs (it imports a KeyObject per call).
    hkdfSha1: (key, salt) => a.hkdfSha1(key, salt),
    sealParts,
    openAt,
    udpSeal(method: AeadMethod, masterKey, head, payload, salt) {
      // A given salt (tests, vectors): HKDF and one AEAD like any datagram, salt as the prefix.
      if (salt) return sealParts(method.cipher, a.hkdfSha1(masterKey, salt), ZERO_NONCE, salt, head, payload);
      try {
        // Into node's pooled allocUnsafe memory: cheaper than a fresh backing store per datagram.
        // The salt is as long as the key for every SIP004 method.
        const out = Buffer.allocUnsafe(masterKey.length + head.length + payload.length + TAG);
        a.udpSeal(NATIVE_METHOD[method.cipher], masterKey, head, payload, out);
        return out;
      } catch (cause) {
        throw new ProtocolError('ERR_CIPHER', 'native datagram seal failed', { cause });
      }
    },
    udpOpen(method: AeadMethod, masterKey, packet) {
      const size = packet.length - masterKey.length - TAG;
      if (size < 0) return null;
      const out = Buffer.allocUnsafe(size);
      return a.udpOpen(NATIVE_METHOD[method.cipher], masterKey, packet, out) === size ? out : null;
    },
    ...(open004 ? { sip004Open: open004 } : {}),
    sip004HeadMatches(method: AeadMethod, masterKey, head) {
      const subkey = a.hkdfSha1(masterKey, head.subarray(0, method.saltSize));
      const end = method.saltSize + 2 + TAG;
      return openAt(method.cipher, subkey, ZERO_NONCE, head.subarray(0, end), method.saltSize) !== null;
    },
  };
}
