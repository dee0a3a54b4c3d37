import { randomBytes, randomInt } from 'node:crypto';
import type { SaltWindow } from './replay.js';
import { ProtocolError } from '../errors.js';
import { decodeAddress, encodeAddress, encodedAddressLength, type SocksAddress } from '../socks5/address.js';
import { ByteQueue } from './byte-queue.js';
import {
  cipher,
  type ChunkDecoder,
  type ChunkEncoder,
  type CipherBackend,
  type SessionCipher,
} from './cipher.js';
import {
  IDENTITY_HEADER_SIZE,
  tcpIdentityHeaders,
  type IdentityEntry,
  type IdentityTable,
} from './identity.js';
import { deriveSessionSubkey } from './kdf2022.js';
import { checkKeySize, MAX_PADDING, type Aead2022Method } from './methods2022.js';

/**
 * SIP022 TCP (Shadowsocks 2022 edition), pure codecs. All times are milliseconds since the epoch
 * (Clock.now()); the wire carries whole Unix seconds.
 *
 * Request stream:  salt | [identity headers] | seal(type=0 | ts u64be | varLen u16be)
 *                  | seal(ATYP addr port | padLen u16be | padding | initial payload)
 *                  | { seal(len u16be) | seal(payload) }*
 * Response stream: salt | seal(type=1 | ts u64be | request salt | len u16be) | seal(payload)
 *                  | { seal(len u16be) | seal(payload) }*
 * Each seal uses the session subkey derive_key("shadowsocks 2022 session subkey", key || salt)
 * and a 12-byte little-endian counter nonce, exactly like SIP004 (cipher.ts SessionCipher).
 */

export const HEADER_TYPE_CLIENT = 0;
export const HEADER_TYPE_SERVER = 1;
/** A 2022 payload chunk carries up to 0xFFFF bytes (the SIP004 0x3FFF cap does not apply). */
export const MAX_PAYLOAD_2022 = 0xffff;
/**
 * The largest chunk our encoders write (readers accept up to MAX_PAYLOAD_2022). Writes are cut
 * into the fewest chunks of at most this size, all of even size: a 64 KiB write is four 16 KiB
 * chunks (8 seals, against SIP004's 4 x 0x3FFF + 4 bytes, 10 seals). Larger chunks would need
 * fewer seals still, but a reader's 64 KiB socket reads then split them more often, and a split
 * chunk is copied and decrypted into a buffer of its own instead of in place
 * (docs/benchmarks.md).
 */
export const WRITE_CHUNK_2022 = 0x4000;
/** Largest accepted |timestamp - now|, in seconds (SIP022 §3.1.3). */
export const MAX_TIME_DIFF_S = 30;
// The 60 s request-salt window lives with the other replay filters (replay.ts).
export { SALT_TTL_MS, SaltWindow } from './replay.js';

const TAG = 16;
const REQUEST_FIXED = 1 + 8 + 2;

/** Bytes a server must read before it can authenticate a request: salt, identity headers, sealed fixed header. */
export function requestPrefixSize(method: Aead2022Method, identityHeaders = 0): number {
  return method.saltSize + identityHeaders * IDENTITY_HEADER_SIZE + REQUEST_FIXED + TAG;
}

/** Bytes of a response before its first payload chunk: salt and the sealed fixed header. */
export function responsePrefixSize(method: Aead2022Method): number {
  return method.saltSize + 1 + 8 + method.saltSize + 2 + TAG;
}

function unixSeconds(nowMs: number): number {
  return Math.floor(nowMs / 1000);
}

function writeTimestamp(out: Buffer, offset: number, nowMs: number): void {
  out.writeBigUInt64BE(BigInt(unixSeconds(nowMs)), offset);
}

/** Throws ERR_TIMESTAMP when the wire timestamp (seconds) is more than 30 s away from now. */
export function checkTimestamp(timestampS: bigint, nowMs: number): void {
  const diff = timestampS - BigInt(unixSeconds(nowMs));
  if (diff > BigInt(MAX_TIME_DIFF_S) || diff < -BigInt(MAX_TIME_DIFF_S)) {
    throw new ProtocolError(
      'ERR_TIMESTAMP',
      `timestamp is ${diff} s away from local time (limit ${MAX_TIME_DIFF_S} s)`,
    );
  }
}

function checkSalt(method: Aead2022Method, salt: Uint8Array): Buffer {
  if (salt.length !== method.saltSize) {
    throw new ProtocolError(
      'ERR_KEY',
      `salt must be ${method.saltSize} bytes for ${method.name}, got ${salt.length}`,
    );
  }
  return Buffer.from(salt);
}

/**
 * Both header chunks of either direction come first in the session's nonce sequence (request:
 * fixed and variable header; response: fixed header and first payload), so bulk chunks start
 * at nonce 2.
 */
const HEADER_SEALS = 2;

/** The session's writer: header pieces and chunks of at most WRITE_CHUNK_2022 bytes, one nonce counter. */
function chunkWriter(method: Aead2022Method, subkey: Buffer): ChunkEncoder {
  return cipher().chunkEncoder(method.aead.cipher, subkey, { maxPayload: WRITE_CHUNK_2022 });
}

export interface RequestEncoderOptions {
  /** Fixed salt (tests and vectors); random otherwise. */
  readonly salt?: Uint8Array;
  /** SIP023 identity keys, outermost first; one identity header is written per key. */
  readonly identityKeys?: readonly Uint8Array[];
}

/**
 * Client side of a 2022 TCP request. encodeHeader() returns salt, identity headers and both
 * header chunks in one buffer (SIP022 §3.1.4: one write); encode() returns later chunks.
 */
export class Aead2022RequestEncoder {
  readonly method: Aead2022Method;
  readonly salt: Buffer;
  readonly #chunks: ChunkEncoder;
  readonly #identity: Buffer;
  #headerSent = false;

  constructor(method: Aead2022Method, key: Uint8Array, options: RequestEncoderOptions = {}) {
    checkKeySize(method, key);
    this.method = method;
    // randomBytes' buffer is this encoder's own: only a given salt is copied.
    this.salt = options.salt === undefined ? randomBytes(method.saltSize) : checkSalt(method, options.salt);
    this.#identity = tcpIdentityHeaders(method, options.identityKeys ?? [], key, this.salt);
    this.#chunks = chunkWriter(method, deriveSessionSubkey(key, this.salt));
  }

  /**
   * The first write. `padding` overrides the padding policy (random 1..900 bytes when there is
   * no initial payload, none otherwise); it must be 0..900 bytes, and non-empty when the initial
   * payload is empty. Initial payload that does not fit in the variable-length header (whose
   * length is a u16) follows as ordinary chunks in the same buffer.
   */
  encodeHeader(
    target: SocksAddress,
    initialPayload: Uint8Array,
    nowMs: number,
    padding?: Uint8Array,
  ): Buffer {
    if (this.#headerSent) throw new ProtocolError('ERR_USAGE', 'Aead2022RequestEncoder: header already sent');
    const pad =
      padding ??
      (initialPayload.length === 0 ? Buffer.alloc(randomInt(1, MAX_PADDING + 1)) : Buffer.alloc(0));
    if (pad.length > MAX_PADDING)
      throw new ProtocolError('ERR_HEADER', `padding of ${pad.length} bytes exceeds ${MAX_PADDING}`);
    if (pad.length === 0 && initialPayload.length === 0) {
      throw new ProtocolError('ERR_HEADER', 'a request needs an initial payload or non-empty padding');
    }
    const addrLen = encodedAddressLength(target);
    const room = MAX_PAYLOAD_2022 - addrLen - 2 - pad.length;
    const first = initialPayload.subarray(0, Math.min(room, initialPayload.length));
    const rest = initialPayload.subarray(first.length);
    const varLen = addrLen + 2 + pad.length + first.length;

    const variable = Buffer.allocUnsafe(varLen);
    encodeAddress(target).copy(variable, 0);
    variable.writeUInt16BE(pad.length, addrLen);
    variable.set(pad, addrLen + 2);
    variable.set(first, addrLen + 2 + pad.length);

    const fixed = Buffer.allocUnsafe(REQUEST_FIXED);
    fixed[0] = HEADER_TYPE_CLIENT;
    writeTimestamp(fixed, 1, nowMs);
    fixed.writeUInt16BE(varLen, 9);

    const out = this.#chunks.encodeWith([this.salt, this.#identity], [fixed, variable], rest);
    this.#headerSent = true;
    return out;
  }

  /** Later data as length/payload chunk pairs (empty input gives an empty buffer). */
  encode(data: Uint8Array): Buffer {
    if (!this.#headerSent)
      throw new ProtocolError('ERR_USAGE', 'Aead2022RequestEncoder: encodeHeader() must come first');
    return this.#chunks.encode(data);
  }
}

/**
 * Server side of a 2022 TCP response. encodeHeader() returns salt, the fixed header (echoing the
 * request salt) and the first payload chunk in one buffer; encode() returns later chunks.
 */
export class Aead2022ResponseEncoder {
  readonly method: Aead2022Method;
  readonly salt: Buffer;
  readonly #requestSalt: Buffer;
  readonly #chunks: ChunkEncoder;
  #headerSent = false;

  constructor(
    method: Aead2022Method,
    key: Uint8Array,
    requestSalt: Uint8Array,
    options: { readonly salt?: Uint8Array } = {},
  ) {
    checkKeySize(method, key);
    this.method = method;
    this.#requestSalt = checkSalt(method, requestSalt);
    // randomBytes' buffer is this encoder's own: only a given salt is copied.
    this.salt = options.salt === undefined ? randomBytes(method.saltSize) : checkSalt(method, options.salt);
    this.#chunks = chunkWriter(method, deriveSessionSubkey(key, this.salt));
  }

  /** The first write; `firstPayload` should be non-empty (the spec sends the header with data). */
  encodeHeader(firstPayload: Uint8Array, nowMs: number): Buffer {
    if (this.#headerSent)
      throw new ProtocolError('ERR_USAGE', 'Aead2022ResponseEncoder: header already sent');
    const first = firstPayload.subarray(0, Math.min(MAX_PAYLOAD_2022, firstPayload.length));
    const rest = firstPayload.subarray(first.length);
    const fixedLen = 1 + 8 + this.#requestSalt.length + 2;
    const fixed = Buffer.allocUnsafe(fixedLen);
    fixed[0] = HEADER_TYPE_SERVER;
    writeTimestamp(fixed, 1, nowMs);
    this.#requestSalt.copy(fixed, 9);
    fixed.writeUInt16BE(first.length, fixedLen - 2);

    const out = this.#chunks.encodeWith([this.salt], [fixed, first], rest);
    this.#headerSent = true;
    return out;
  }

  encode(data: Uint8Array): Buffer {
    if (!this.#headerSent)
      throw new ProtocolError('ERR_USAGE', 'Aead2022ResponseEncoder: encodeHeader() must come first');
    return this.#chunks.encode(data);
  }
}

const enum St {
  Salt,
  Identity,
  Fixed,
  Variable,
  Length,
  Payload,
  Failed,
}

export interface RequestHeader2022 {
  readonly target: SocksAddress;
  /** Wire timestamp, Unix seconds. */
  readonly timestamp: number;
  readonly paddingLength: number;
}

export interface RequestDecoderOptions<U> {
  /** The PSK of a single-user port. Exactly one of `key` and `identity` is required. */
  readonly key?: Uint8Array;
  /** SIP023: the identity table of a multi-user port; the user is found from the identity header. */
  readonly identity?: IdentityTable<U>;
  /**
   * Replay filter. When given, the salt is checked and remembered right after the fixed header
   * authenticates and its timestamp passes (SIP022 §3.1.5), and a repeat throws ERR_REPLAY.
   */
  readonly salts?: SaltWindow;
}

/** Shared header reading for both directions; the chunks after the headers go to the backend's chunk decoder. */
abstract class ChunkReader {
  protected readonly method: Aead2022Method;
  protected readonly queue = new ByteQueue();
  protected session: SessionCipher | undefined;
  protected state: St = St.Salt;
  protected need: number;
  /** The backend in use at construction. */
  readonly #cipher: CipherBackend = cipher();
  /** The session subkey (set with `session`), for the bulk decoder. */
  #subkey: Buffer | undefined;
  /** After the headers: the chunk decoder. */
  #bulk: ChunkDecoder | undefined;

  constructor(method: Aead2022Method) {
    this.method = method;
    this.need = method.saltSize;
  }

  protected startSession(subkey: Buffer): void {
    this.#subkey = subkey;
    this.session = this.#cipher.session(this.method.aead.cipher, subkey);
  }

  /** Bytes buffered but not yet decoded. */
  get buffered(): number {
    return this.#bulk ? this.#bulk.buffered : this.queue.length;
  }

  /** Bytes still needed to complete the current header or chunk. */
  get needed(): number {
    if (this.#bulk) return this.#bulk.elementSize - this.#bulk.buffered;
    return Math.max(0, this.need - this.queue.length);
  }

  /** True when the decoder has passed its header(s) and sits on a chunk boundary with nothing buffered. */
  get atBoundary(): boolean {
    const b = this.#bulk;
    return b !== undefined && this.state !== St.Failed && b.readingLength && b.buffered === 0;
  }

  /**
   * push() for a buffer the caller owns and will not read again (a socket read in the relay
   * phase): once past the headers, the native backend opens payloads in place.
   */
  pushInPlace(data: Buffer, nowMs: number): Buffer[] {
    const bulk = this.#bulk;
    if (!bulk || this.state === St.Failed) return this.push(data, nowMs);
    try {
      return bulk.pushInPlace(data);
    } catch (err) {
      this.state = St.Failed;
      throw err;
    }
  }

  /** At the first chunk boundary after the headers: hand the chunk stream to the chunk decoder. */
  #toBulk(): boolean {
    if (this.#bulk) return true;
    if (this.state !== St.Length) return false;
    this.#bulk = this.#cipher.chunkDecoder(this.method.aead.cipher, this.#subkey!, {
      maxPayload: MAX_PAYLOAD_2022,
      allowEmpty: true,
      nonceStart: HEADER_SEALS,
    });
    this.session = undefined;
    return true;
  }

  protected abstract step(bytes: Buffer, nowMs: number, out: Buffer[]): void;

  /**
   * Feed wire bytes (any split); returns the payloads completed so far. The decoder may keep a
   * reference to `data` (no copy) until those bytes are consumed, so don't reuse the buffer
   * (e.g. net's `onread` static buffer) while `buffered > 0`.
   */
  push(data: Uint8Array, nowMs: number): Buffer[] {
    if (this.state === St.Failed) throw new ProtocolError('ERR_CIPHER', 'decoder already failed');
    try {
      if (this.#bulk) return this.#bulk.push(data);
      const out: Buffer[] = [];
      this.queue.push(data);
      while (this.queue.length >= this.need) {
        if (this.#toBulk()) break;
        const bytes = this.queue.take(this.need);
        if (this.state === St.Payload) {
          // The response's first payload, sealed with the header's nonces.
          const p = this.session!.open(bytes);
          if (p.length > 0) out.push(p);
          this.state = St.Length;
          this.need = 2 + TAG;
        } else {
          this.step(bytes, nowMs, out);
        }
      }
      if (this.#toBulk())
        for (const b of this.queue.drain()) for (const p of this.#bulk!.push(b)) out.push(p);
      return out;
    } catch (err) {
      this.state = St.Failed;
      throw err;
    }
  }
}

/**
 * Server side: decodes a 2022 request stream. push() any split of the wire bytes with the current
 * time; returns payloads (the initial payload first). `header` is set once the variable header is
 * decoded. Failures throw ProtocolError: ERR_CIPHER (bad tag, unknown identity), ERR_HEADER (type
 * byte, lengths, padding rules), ERR_TIMESTAMP (> 30 s off), ERR_REPLAY (with `salts`),
 * ERR_ADDRESS; the decoder is unusable afterwards.
 */
export class Aead2022RequestDecoder<U = never> extends ChunkReader {
  readonly #identity: IdentityTable<U> | undefined;
  readonly #salts: SaltWindow | undefined;
  #key: Buffer | undefined;
  #user: U | undefined;
  #salt: Buffer | undefined;
  #timestamp = 0;
  #header: RequestHeader2022 | undefined;
  #authenticated = false;

  constructor(method: Aead2022Method, options: RequestDecoderOptions<U>) {
    super(method);
    if ((options.key === undefined) === (options.identity === undefined)) {
      throw new ProtocolError('ERR_USAGE', 'Aead2022RequestDecoder: give exactly one of key and identity');
    }
    if (options.key !== undefined) {
      checkKeySize(method, options.key);
      this.#key = Buffer.from(options.key);
    }
    if (options.identity !== undefined && options.identity.method !== method) {
      throw new ProtocolError(
        'ERR_METHOD',
        `identity table is for ${options.identity.method.name}, not ${method.name}`,
      );
    }
    this.#identity = options.identity;
    this.#salts = options.salts;
  }

  /** The request salt (once read); the response must echo it. */
  get salt(): Buffer | undefined {
    return this.#salt;
  }

  /** The session PSK: the single key, or the user's key found by the identity header. */
  get key(): Buffer | undefined {
    return this.#key;
  }

  /** The user found by the identity header (multi-user ports). */
  get user(): U | undefined {
    return this.#user;
  }

  get header(): RequestHeader2022 | undefined {
    return this.#header;
  }

  /**
   * True once salt, identity header and fixed header have been read, authenticated, and passed
   * the type, timestamp and replay checks. SIP022 §3.1.4: a server reads the first `prefixSize`
   * bytes in one read; if this is still false after pushing that read, treat it as a failure.
   */
  get authenticated(): boolean {
    return this.#authenticated;
  }

  /** Bytes the server must read before the request can be authenticated. */
  get prefixSize(): number {
    return requestPrefixSize(this.method, this.#identity ? 1 : 0);
  }

  protected step(bytes: Buffer, nowMs: number, out: Buffer[]): void {
    switch (this.state) {
      case St.Salt:
        this.#salt = Buffer.from(bytes);
        if (this.#identity) {
          this.state = St.Identity;
          this.need = IDENTITY_HEADER_SIZE;
        } else {
          this.#startSession();
        }
        break;
      case St.Identity: {
        const entry: IdentityEntry<U> | undefined = this.#identity!.resolveTcp(this.#salt!, bytes);
        if (!entry) throw new ProtocolError('ERR_CIPHER', 'identity header matches no user');
        this.#key = entry.key;
        this.#user = entry.user;
        this.#startSession();
        break;
      }
      case St.Fixed: {
        const fixed = this.session!.open(bytes);
        if (fixed[0] !== HEADER_TYPE_CLIENT) {
          throw new ProtocolError(
            'ERR_HEADER',
            `request header type ${fixed[0]} (expected ${HEADER_TYPE_CLIENT})`,
          );
        }
        const ts = fixed.readBigUInt64BE(1);
        checkTimestamp(ts, nowMs);
        this.#timestamp = Number(ts);
        const varLen = fixed.readUInt16BE(9);
        if (varLen < 1 + 2)
          throw new ProtocolError('ERR_HEADER', `variable header length ${varLen} is too short`);
        if (this.#salts && !this.#salts.add(this.#salt!, nowMs)) {
          throw new ProtocolError('ERR_REPLAY', 'request salt seen within the last 60 s');
        }
        this.#authenticated = true;
        this.state = St.Variable;
        this.need = varLen + TAG;
        break;
      }
      case St.Variable: {
        const v = this.session!.open(bytes);
        const decoded = decodeAddress(v, 0);
        if (!decoded) throw new ProtocolError('ERR_HEADER', 'target address runs past the variable header');
        let o = decoded.length;
        if (o + 2 > v.length)
          throw new ProtocolError('ERR_HEADER', 'padding length runs past the variable header');
        const padLen = v.readUInt16BE(o);
        o += 2;
        if (o + padLen > v.length)
          throw new ProtocolError('ERR_HEADER', `padding of ${padLen} bytes runs past the variable header`);
        o += padLen;
        const initial = v.subarray(o);
        if (initial.length === 0 && padLen === 0) {
          throw new ProtocolError('ERR_HEADER', 'request has neither initial payload nor padding');
        }
        this.#header = { target: decoded.address, timestamp: this.#timestamp, paddingLength: padLen };
        if (initial.length > 0) out.push(initial);
        this.state = St.Length;
        this.need = 2 + TAG;
        break;
      }
      default:
        throw new ProtocolError('ERR_USAGE', 'unreachable decoder state');
    }
  }

  #startSession(): void {
    this.startSession(deriveSessionSubkey(this.#key!, this.#salt!));
    this.state = St.Fixed;
    this.need = REQUEST_FIXED + TAG;
  }
}

/**
 * Client side: decodes a 2022 response stream and checks that it echoes our request salt.
 * Throws ERR_CIPHER, ERR_HEADER (type byte, request salt mismatch) or ERR_TIMESTAMP.
 */
export class Aead2022ResponseDecoder extends ChunkReader {
  readonly #key: Buffer;
  readonly #requestSalt: Buffer;
  #salt: Buffer | undefined;
  #timestamp: number | undefined;

  constructor(method: Aead2022Method, key: Uint8Array, requestSalt: Uint8Array) {
    super(method);
    checkKeySize(method, key);
    this.#key = Buffer.from(key);
    this.#requestSalt = checkSalt(method, requestSalt);
  }

  get salt(): Buffer | undefined {
    return this.#salt;
  }

  /** The response timestamp, Unix seconds, once the header is read. */
  get timestamp(): number | undefined {
    return this.#timestamp;
  }

  protected step(bytes: Buffer, nowMs: number): void {
    switch (this.state) {
      case St.Salt:
        this.#salt = Buffer.from(bytes);
        this.startSession(deriveSessionSubkey(this.#key, this.#salt));
        this.state = St.Fixed;
        this.need = 1 + 8 + this.method.saltSize + 2 + TAG;
        break;
      case St.Fixed: {
        const fixed = this.session!.open(bytes);
        if (fixed[0] !== HEADER_TYPE_SERVER) {
          throw new ProtocolError(
            'ERR_HEADER',
            `response header type ${fixed[0]} (expected ${HEADER_TYPE_SERVER})`,
          );
        }
        const ts = fixed.readBigUInt64BE(1);
        checkTimestamp(ts, nowMs);
        if (!fixed.subarray(9, 9 + this.method.saltSize).equals(this.#requestSalt)) {
          throw new ProtocolError('ERR_HEADER', 'response does not echo our request salt');
        }
        this.#timestamp = Number(ts);
        this.state = St.Payload;
        this.need = fixed.readUInt16BE(9 + this.method.saltSize) + TAG;
        break;
      }
      default:
        throw new ProtocolError('ERR_USAGE', 'unreachable decoder state');
    }
  }
}
