/**
 * Optional native SIP004 codec (native/ladder_aead.cc, built by scripts/build-native.mjs into
 * build/Release/ladder_aead.node). It keeps one OpenSSL EVP_CIPHER_CTX per direction and only
 * re-initialises the nonce per AEAD operation, and runs the whole chunking loop in C++; the
 * node:crypto path in aead.ts needs two fresh cipher objects per chunk instead.
 *
 * Loaded lazily on first use. When the addon is missing, fails to load or fails its check,
 * nativeAvailable() is false and aead.ts uses node:crypto; nothing else changes. The CLI turns it
 * off with setNativeEnabled(false) (LADDER_NATIVE=0); this module reads no environment.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ProtocolError } from '../errors.js';
import type { AeadMethod } from './methods.js';

const MAX_PAYLOAD = 0x3fff;

/** What the addon exports (see the comment at the top of native/ladder_aead.cc). */
interface Addon {
  abiVersion: number;
  available(method: number): boolean;
  create(
    method: number,
    key: Uint8Array,
    encrypt: boolean,
    maxPayload?: number,
    minPayload?: number,
    nonceStart?: number,
  ): object;
  encode(codec: object, data: Uint8Array, prefix?: Uint8Array): Buffer;
  decode(codec: object, data: Uint8Array, info: Int32Array): Buffer | number;
  decodeInPlace(codec: object, data: Uint8Array, info: Int32Array): number | [Buffer, number];
  createSession(method: number, key: Uint8Array): object;
  seal(codec: object, plain: Uint8Array): Buffer;
  sealInto(codec: object, plain: Uint8Array, out: Uint8Array, offset: number): number;
  open(codec: object, sealed: Uint8Array): Buffer | number;
  hkdfSha1(key: Uint8Array, salt: Uint8Array): Buffer;
  sealParts(
    method: number,
    key: Uint8Array,
    nonce: Uint8Array,
    prefix: Uint8Array | undefined,
    a: Uint8Array,
    b?: Uint8Array,
  ): Buffer;
  openAt(
    method: number,
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    offset: number,
  ): Buffer | number;
  udpSeal(
    method: number,
    masterKey: Uint8Array,
    head: Uint8Array,
    payload: Uint8Array,
    out?: Uint8Array,
  ): Buffer | number;
  udpOpen(method: number, masterKey: Uint8Array, packet: Uint8Array, out?: Uint8Array): Buffer | number;
  sendTo(fd: number, data: Uint8Array, port: number, ip: string, family: 4 | 6): number;
  sockShared?: () => [Buffer, Int32Array, Uint8Array, number, number];
  sockCreate?: (family: 4 | 6, ip: string, port: number, onBatch: (count: number) => void) => object;
  sockPort?: (sock: object) => number;
  sockSend?: (sock: object, data: Uint8Array, addrs: Uint8Array, offset: number) => number;
  sockSendTo?: (sock: object, data: Uint8Array, port: number, ip: string) => number;
  sockClose?: (sock: object) => void;
  sockRelay?: (
    out: object,
    listener: object,
    method: number,
    masterKey: Uint8Array,
    addrs: Uint8Array,
    offset: number,
  ) => void;
  sockRelayTake?: (out: object) => number;
  sockPolicy?: (listener: object, allowPrivate: boolean, saltCapacity: number) => void;
  sockSaltAdd?: (listener: object, salt: Uint8Array) => boolean;
  sockRoute?: (
    listener: object,
    addrs: Uint8Array,
    offset: number,
    out4: object | null,
    out6: object | null,
    method: number,
    masterKey: Uint8Array,
  ) => void;
  sockUnroute?: (listener: object, addrs: Uint8Array, offset: number) => number;
  sockRouteTake?: (listener: object, addrs: Uint8Array, offset: number) => number;
  sockDropped?: (listener: object) => number;
}

/** The addon's batched UDP sockets (Linux only); see native/ladder_aead.cc. */
export interface NativeSockets {
  sockShared(): [Buffer, Int32Array, Uint8Array, number, number];
  sockCreate(family: 4 | 6, ip: string, port: number, onBatch: (count: number) => void): object;
  sockPort(sock: object): number;
  sockSend(sock: object, data: Uint8Array, addrs: Uint8Array, offset: number): number;
  sockSendTo(sock: object, data: Uint8Array, port: number, ip: string): number;
  sockClose(sock: object): void;
  sockRelay(
    out: object,
    listener: object,
    method: number,
    masterKey: Uint8Array,
    addrs: Uint8Array,
    offset: number,
  ): void;
  sockRelayTake(out: object): number;
  sockPolicy(listener: object, allowPrivate: boolean, saltCapacity: number): void;
  sockSaltAdd(listener: object, salt: Uint8Array): boolean;
  sockRoute(
    listener: object,
    addrs: Uint8Array,
    offset: number,
    out4: object | null,
    out6: object | null,
    method: number,
    masterKey: Uint8Array,
  ): void;
  sockUnroute(listener: object, addrs: Uint8Array, offset: number): number;
  sockRouteTake(listener: object, addrs: Uint8Array, offset: number): number;
  sockDropped(listener: object): number;
}

/** The addon's method number for a cipher (sockRelay takes it). */
export function nativeMethodIndex(cipher: AeadMethod['cipher']): number {
  return METHOD_INDEX[cipher];
}

/** The addon ABI this module speaks (native/ladder_aead.cc exports it as abiVersion). */
const ABI_VERSION = 4;

const METHOD_INDEX: Readonly<Record<AeadMethod['cipher'], number>> = {
  'aes-128-gcm': 0,
  'aes-256-gcm': 1,
  'chacha20-poly1305': 2,
};

const ADDON_FILE = 'build/Release/ladder_aead.node';

/**
 * Where the package root may be relative to this module: src/protocol/shadowsocks/ and
 * dist/protocol/shadowsocks/ are both three levels below it; a copy compiled somewhere under
 * <root>/node_modules/ (the bench's cache) finds <root> before the node_modules segment.
 */
function candidateUrls(): URL[] {
  const here = import.meta.url;
  const urls = [new URL(`../../../${ADDON_FILE}`, here)];
  const nm = here.indexOf('/node_modules/');
  if (nm > 0) urls.push(new URL(`${here.slice(0, nm)}/${ADDON_FILE}`));
  return urls;
}

let addon: Addon | null | undefined; // undefined: not tried yet; null: unavailable
let loadError: string | undefined;
let enabled = true;

function load(): Addon | null {
  if (addon !== undefined) return addon;
  addon = null;
  const req = createRequire(import.meta.url);
  const errors: string[] = [];
  for (const url of candidateUrls()) {
    let mod: Addon;
    try {
      mod = req(fileURLToPath(url)) as Addon;
    } catch (err) {
      const code = (err as { code?: string }).code;
      errors.push(
        code === 'MODULE_NOT_FOUND' ? 'not built' : `load failed: ${(err as Error).message.split('\n')[0]}`,
      );
      continue;
    }
    if (mod.abiVersion !== ABI_VERSION || ![0, 1, 2].every((m) => mod.available(m))) {
      errors.push('wrong addon version or a cipher is missing');
      continue;
    }
    addon = mod;
    loadError = undefined;
    return addon;
  }
  loadError = [...new Set(errors)].join('; ');
  return null;
}

/** True when the native codec is loaded and enabled: new encoders and decoders will use it. */
export function nativeAvailable(): boolean {
  return loaded() !== null;
}

/** The addon when it is loaded and enabled, else null. */
function loaded(): Addon | null {
  return enabled ? load() : null;
}

/** Turn the native codec on or off for encoders and decoders created from now on. */
export function setNativeEnabled(on: boolean): void {
  enabled = on;
}

/** Why the addon is not in use (undefined when it is loaded, or not tried yet). */
export function nativeLoadError(): string | undefined {
  return loadError;
}

function need(): Addon {
  const a = loaded();
  if (!a) throw new Error('native AEAD codec not available');
  return a;
}

/** Chunk framing of a stream codec: SIP004 by default; SIP022 passes its own. */
export interface NativeChunkOptions {
  /** Largest chunk payload (default 0x3FFF; SIP022: 0xFFFF). */
  readonly maxPayload?: number;
  /** Decoder: accept chunks of length 0 (SIP004 refuses them). */
  readonly allowEmpty?: boolean;
  /** The nonce counter starts after this many AEAD operations (SIP022 header chunks). */
  readonly nonceStart?: number;
}

function createCodec(
  a: Addon,
  cipher: AeadMethod['cipher'],
  subkey: Uint8Array,
  enc: boolean,
  o: NativeChunkOptions,
): object {
  return a.create(
    METHOD_INDEX[cipher],
    subkey,
    enc,
    o.maxPayload ?? MAX_PAYLOAD,
    o.allowEmpty ? 0 : 1,
    o.nonceStart ?? 0,
  );
}

/** Writer side of one SIP004 direction: a subkey and a nonce counter held in C++. */
export class NativeEncoder {
  readonly #a: Addon;
  readonly #codec: object;

  constructor(cipher: AeadMethod['cipher'], subkey: Uint8Array, options: NativeChunkOptions = {}) {
    this.#a = need();
    this.#codec = createCodec(this.#a, cipher, subkey, true, options);
  }

  /** [prefix][sealed len][sealed payload]... for `data` of any length, in one new Buffer. */
  encode(data: Uint8Array, prefix?: Uint8Array): Buffer {
    try {
      return this.#a.encode(this.#codec, data, prefix);
    } catch (cause) {
      throw new ProtocolError('ERR_CIPHER', 'native AEAD seal failed', { cause });
    }
  }

  /** One AEAD seal (ciphertext || tag) with the next nonce. */
  seal(plain: Uint8Array): Buffer {
    try {
      return this.#a.seal(this.#codec, plain);
    } catch (cause) {
      throw new ProtocolError('ERR_CIPHER', 'native AEAD seal failed', { cause });
    }
  }
}

const ERR_CIPHER = 1;
const ERR_PAYLOAD_SIZE = 2;

/**
 * Reader side of one SIP004 direction (after the salt). decode() takes any split of the wire
 * bytes and returns the plaintext of every chunk they complete, concatenated. Bytes of an
 * incomplete chunk are copied into the codec, so the caller may reuse `data` at once. Throws
 * ProtocolError ERR_CIPHER / ERR_PAYLOAD_SIZE; after that every call throws ERR_CIPHER.
 */
export class NativeDecoder {
  readonly #a: Addon;
  readonly #codec: object;
  // [buffered, size of the element being read, state (0 length, 1 payload), bad length]
  readonly #info = new Int32Array([0, 18, 0, 0]);
  readonly #maxPayload: number;

  constructor(cipher: AeadMethod['cipher'], subkey: Uint8Array, options: NativeChunkOptions = {}) {
    this.#a = need();
    this.#codec = createCodec(this.#a, cipher, subkey, false, options);
    this.#maxPayload = options.maxPayload ?? MAX_PAYLOAD;
  }

  decode(data: Uint8Array): Buffer {
    const r = this.#a.decode(this.#codec, data, this.#info);
    if (typeof r !== 'number') return r;
    if (r === ERR_PAYLOAD_SIZE) {
      throw new ProtocolError(
        'ERR_PAYLOAD_SIZE',
        `chunk length ${this.#info[3]} outside 1..${this.#maxPayload}`,
      );
    }
    throw new ProtocolError(
      'ERR_CIPHER',
      r === ERR_CIPHER ? 'AEAD authentication failed' : `native decode status ${r}`,
    );
  }

  /** One AEAD open of ciphertext || tag with the next nonce; ERR_CIPHER when it fails. */
  open(sealed: Uint8Array): Buffer {
    if (sealed.length < 16) throw new ProtocolError('ERR_SHORT_HEADER', 'sealed chunk shorter than its tag');
    const r = this.#a.open(this.#codec, sealed);
    if (typeof r === 'number') throw new ProtocolError('ERR_CIPHER', 'AEAD authentication failed');
    return r;
  }

  /**
   * decode() without an output allocation: payloads that lie whole inside `data` are opened in
   * place and returned as a view of its front, so `data` must be a buffer the caller owns and
   * does not read again (a socket read, in the relay phase). A payload begun in an earlier call
   * comes first, in a buffer of its own. Errors as decode(); `data` then holds garbage.
   */
  decodeInPlace(data: Buffer): Buffer[] {
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
    return new ProtocolError('ERR_CIPHER', 'AEAD authentication failed');
  }

  /** Bytes of the current, incomplete length or payload held in the codec. */
  get buffered(): number {
    return this.#info[0]!;
  }

  /** Size of the element being read: 18 for a length, payload length + 16 for a payload. */
  get elementSize(): number {
    return this.#info[1]!;
  }

  /** True while reading a length field (a chunk boundary when nothing is buffered). */
  get readingLength(): boolean {
    return this.#info[2] === 0;
  }
}

/**
 * Single AEAD operations in either direction with one nonce counter (AeadSession's contract):
 * each successful seal or open uses the next nonce; a failed open does not advance it.
 */
export class NativeSession {
  readonly #a: Addon;
  readonly #codec: object;

  constructor(cipher: AeadMethod['cipher'], subkey: Uint8Array) {
    this.#a = need();
    this.#codec = this.#a.createSession(METHOD_INDEX[cipher], subkey);
  }

  seal(plain: Uint8Array): Buffer {
    try {
      return this.#a.seal(this.#codec, plain);
    } catch (cause) {
      throw new ProtocolError('ERR_CIPHER', 'native AEAD seal failed', { cause });
    }
  }

  /** Writes ciphertext || tag into `out` at `offset`; throws RangeError when it does not fit. */
  sealInto(plain: Uint8Array, out: Uint8Array, offset: number): number {
    if (!Number.isInteger(offset) || offset < 0 || offset + plain.length + 16 > out.length) {
      throw new RangeError(
        `sealInto: ${plain.length} + 16 bytes do not fit at offset ${offset} of ${out.length}`,
      );
    }
    try {
      return this.#a.sealInto(this.#codec, plain, out, offset);
    } catch (cause) {
      throw new ProtocolError('ERR_CIPHER', 'native AEAD seal failed', { cause });
    }
  }

  open(sealed: Uint8Array): Buffer {
    if (sealed.length < 16) throw new ProtocolError('ERR_SHORT_HEADER', 'sealed chunk shorter than its tag');
    const r = this.#a.open(this.#codec, sealed);
    if (typeof r === 'number') throw new ProtocolError('ERR_CIPHER', 'AEAD authentication failed');
    return r;
  }
}

/**
 * Stateless one-shot operations (datagrams and key derivation): one OpenSSL context per method
 * in C++, keyed per call. Each returns undefined when the addon is not in use, so callers keep
 * their node:crypto path as the fallback.
 */
export const nativeOneShot = {
  /** HKDF-SHA1(key, salt, "ss-subkey") of key.length bytes: the SIP004 subkey. */
  hkdfSha1(key: Uint8Array, salt: Uint8Array): Buffer | undefined {
    const a = loaded();
    return a ? a.hkdfSha1(key, salt) : undefined;
  },

  /** prefix || AEAD(key, nonce, a || b) || tag. */
  sealParts(
    cipher: AeadMethod['cipher'],
    key: Uint8Array,
    nonce: Uint8Array,
    prefix: Uint8Array | undefined,
    a: Uint8Array,
    b?: Uint8Array,
  ): Buffer | undefined {
    const x = loaded();
    if (!x) return undefined;
    try {
      return x.sealParts(METHOD_INDEX[cipher], key, nonce, prefix, a, b);
    } catch (cause) {
      throw new ProtocolError('ERR_CIPHER', 'native AEAD seal failed', { cause });
    }
  },

  /**
   * The plaintext of sealed[offset..] (ciphertext then a 16-byte tag); null when it is too short
   * or does not authenticate; undefined without the addon.
   */
  openAt(
    cipher: AeadMethod['cipher'],
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    offset: number,
  ): Buffer | null | undefined {
    const x = loaded();
    if (!x) return undefined;
    const r = x.openAt(METHOD_INDEX[cipher], key, nonce, sealed, offset);
    return typeof r === 'number' ? null : r;
  },

  /** A SIP004 datagram: random salt || AEAD(HKDF(masterKey, salt), zero nonce, head || payload) || tag. */
  udpSeal(
    cipher: AeadMethod['cipher'],
    masterKey: Uint8Array,
    head: Uint8Array,
    payload: Uint8Array,
  ): Buffer | undefined {
    const x = loaded();
    if (!x) return undefined;
    try {
      // Into node's pooled allocUnsafe memory: cheaper than a fresh backing store per datagram.
      // The salt is as long as the key for every SIP004 method.
      const out = Buffer.allocUnsafe(masterKey.length + head.length + payload.length + 16);
      x.udpSeal(METHOD_INDEX[cipher], masterKey, head, payload, out);
      return out;
    } catch (cause) {
      throw new ProtocolError('ERR_CIPHER', 'native datagram seal failed', { cause });
    }
  },

  /** The plaintext of a SIP004 datagram; null when too short or not authentic; undefined without the addon. */
  udpOpen(
    cipher: AeadMethod['cipher'],
    masterKey: Uint8Array,
    packet: Uint8Array,
  ): Buffer | null | undefined {
    const x = loaded();
    if (!x) return undefined;
    const size = packet.length - masterKey.length - 16;
    if (size < 0) return null;
    const out = Buffer.allocUnsafe(size);
    return x.udpOpen(METHOD_INDEX[cipher], masterKey, packet, out) === size ? out : null;
  },
};

/**
 * The addon's datagram send (one non-blocking sendto(2) on a socket fd; returns bytes sent or
 * -errno), for src/transport/fast-udp.ts. It is I/O, so nothing in src/protocol calls it; it is
 * exported from here only because this module owns loading the addon. Undefined without it.
 */
export function nativeSendTo():
  ((fd: number, data: Uint8Array, port: number, ip: string, family: 4 | 6) => number) | undefined {
  const a = loaded();
  return a ? a.sendTo : undefined;
}

/**
 * The addon's batched UDP sockets (recvmmsg into a shared area, one JS call per batch), for
 * src/transport/batch-udp.ts; undefined without the addon or off Linux. I/O, like nativeSendTo.
 */
export function nativeSockets(): NativeSockets | undefined {
  const a = loaded();
  if (
    !a ||
    !a.sockShared ||
    !a.sockCreate ||
    !a.sockPort ||
    !a.sockSend ||
    !a.sockSendTo ||
    !a.sockClose ||
    !a.sockRelay ||
    !a.sockRelayTake ||
    !a.sockPolicy ||
    !a.sockSaltAdd ||
    !a.sockRoute ||
    !a.sockUnroute ||
    !a.sockRouteTake ||
    !a.sockDropped
  )
    return undefined;
  return a as unknown as NativeSockets;
}
