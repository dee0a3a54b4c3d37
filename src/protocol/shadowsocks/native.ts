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
  create(method: number, key: Uint8Array, encrypt: boolean): object;
  encode(codec: object, data: Uint8Array, prefix?: Uint8Array): Buffer;
  decode(codec: object, data: Uint8Array, info: Int32Array): Buffer | number;
  createSession(method: number, key: Uint8Array): object;
  seal(codec: object, plain: Uint8Array): Buffer;
  sealInto(codec: object, plain: Uint8Array, out: Uint8Array, offset: number): number;
  open(codec: object, sealed: Uint8Array): Buffer | number;
}

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
    if (mod.abiVersion !== 2 || ![0, 1, 2].every((m) => mod.available(m))) {
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
  return enabled && load() !== null;
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
  const a = enabled ? load() : null;
  if (!a) throw new Error('native AEAD codec not available');
  return a;
}

/** Writer side of one SIP004 direction: a subkey and a nonce counter held in C++. */
export class NativeEncoder {
  readonly #a: Addon;
  readonly #codec: object;

  constructor(cipher: AeadMethod['cipher'], subkey: Uint8Array) {
    this.#a = need();
    this.#codec = this.#a.create(METHOD_INDEX[cipher], subkey, true);
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

  constructor(cipher: AeadMethod['cipher'], subkey: Uint8Array) {
    this.#a = need();
    this.#codec = this.#a.create(METHOD_INDEX[cipher], subkey, false);
  }

  decode(data: Uint8Array): Buffer {
    const r = this.#a.decode(this.#codec, data, this.#info);
    if (typeof r !== 'number') return r;
    if (r === ERR_PAYLOAD_SIZE) {
      throw new ProtocolError('ERR_PAYLOAD_SIZE', `chunk length ${this.#info[3]} outside 1..${MAX_PAYLOAD}`);
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
