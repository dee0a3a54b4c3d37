/**
 * The types of the cipher seam (cipher.ts): what a backend offers the codecs. Kept apart from
 * cipher.ts so the two backends can name them without importing the module that picks between them.
 */
import type { AeadMethod } from './methods.js';

export type AeadCipher = AeadMethod['cipher'];

/** Chunk framing of a stream: SIP004 by default; SIP022 passes its own. */
export interface ChunkOptions {
  /** Largest chunk payload (default 0x3FFF; SIP022: 0xFFFF to read, 0x4000 to write). */
  readonly maxPayload?: number;
  /** Decoder: accept chunks of length 0 (SIP004 refuses them). */
  readonly allowEmpty?: boolean;
  /** The nonce counter starts after this many AEAD operations (SIP022 header chunks). */
  readonly nonceStart?: number;
}

/**
 * Single AEAD operations in either direction with one 12-byte little-endian counter nonce,
 * starting at zero: each successful seal or open uses the next nonce; a failed open does not
 * advance it.
 */
export interface SessionCipher {
  /** ciphertext || tag in a new buffer. */
  seal(plain: Uint8Array): Buffer;
  /** Writes ciphertext || tag into `out` at `offset`; returns the bytes written. */
  sealInto(plain: Uint8Array, out: Uint8Array, offset: number): number;
  /** Throws ProtocolError ERR_SHORT_HEADER (shorter than the tag) or ERR_CIPHER. */
  open(sealed: Uint8Array): Buffer;
}

/** Writer side of a chunked AEAD stream (after the key is derived): [sealed len][sealed payload]... */
export interface ChunkEncoder {
  /**
   * `prefix` (if any) then `data` of any length as length/payload chunk pairs, in one new
   * buffer. Chunks are at most maxPayload bytes: greedy cuts up to 0x3FFF (SIP004), the fewest
   * chunks of equal size above it (SIP022).
   */
  encode(data: Uint8Array, prefix?: Uint8Array): Buffer;
  /** Each of `prefix` as is, then each of `pieces` sealed whole (one nonce each), then `rest` as chunks. */
  encodeWith(prefix: readonly Uint8Array[], pieces: readonly Uint8Array[], rest: Uint8Array): Buffer;
  /** The addon's codec under this encoder (native backend only), for the native TCP relay. */
  readonly native?: object;
}

/**
 * Reader side of a chunked AEAD stream (after the salt and any headers). Throws ProtocolError
 * ERR_CIPHER or ERR_PAYLOAD_SIZE; the caller must not use it again after a throw.
 */
export interface ChunkDecoder {
  /**
   * The non-empty payloads that `data` (any split of the wire) completes. The node:crypto
   * decoder keeps a reference to `data` until it is consumed; the native one copies the bytes
   * of an incomplete chunk.
   */
  push(data: Uint8Array): Buffer[];
  /**
   * push() for a buffer the caller owns and does not read again (a socket read): the native
   * decoder opens payloads inside it and returns views of it.
   */
  pushInPlace(data: Buffer): Buffer[];
  /** The addon's codec under this decoder (native backend only), for the native TCP relay. */
  readonly native?: object;
  /** Bytes of the current, incomplete length or payload held. */
  readonly buffered: number;
  /** Size of the element being read: 18 for a length, payload length + 16 for a payload. */
  readonly elementSize: number;
  /** True while reading a length field (a chunk boundary when nothing is buffered). */
  readonly readingLength: boolean;
}

export interface CipherBackend {
  /** 'native' for the addon, 'node' for node:crypto (diagnostics only; codecs never branch on it). */
  readonly name: 'native' | 'node';
  session(cipher: AeadCipher, subkey: Uint8Array): SessionCipher;
  chunkEncoder(cipher: AeadCipher, subkey: Uint8Array, options?: ChunkOptions): ChunkEncoder;
  chunkDecoder(cipher: AeadCipher, subkey: Uint8Array, options?: ChunkOptions): ChunkDecoder;
  /**
   * chunkEncoder / chunkDecoder keyed with hkdfSha1(masterKey, salt), in one step where the
   * backend has it (the addon's createSalted: no subkey Buffer, one call); absent otherwise.
   */
  saltedEncoder?(cipher: AeadCipher, masterKey: Uint8Array, salt: Uint8Array): ChunkEncoder;
  saltedDecoder?(cipher: AeadCipher, masterKey: Uint8Array, salt: Uint8Array): ChunkDecoder;
  /** HKDF-SHA1(key, salt, "ss-subkey") of key.length bytes: the SIP004 subkey. */
  hkdfSha1(key: Uint8Array, salt: Uint8Array): Buffer;
  /** prefix || AEAD(key, nonce, a || b) || tag, in one new buffer. */
  sealParts(
    cipher: AeadCipher,
    key: Uint8Array,
    nonce: Uint8Array,
    prefix: Uint8Array | undefined,
    a: Uint8Array,
    b?: Uint8Array,
  ): Buffer;
  /** The plaintext of sealed[offset..] (ciphertext then a 16-byte tag); null when too short or not authentic. */
  openAt(
    cipher: AeadCipher,
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    offset: number,
  ): Buffer | null;
  /**
   * A SIP004 datagram: salt || AEAD(HKDF(masterKey, salt), zero nonce, head || payload) || tag,
   * with a random salt unless one is given (the caller checks its length).
   */
  udpSeal(
    method: AeadMethod,
    masterKey: Uint8Array,
    head: Uint8Array,
    payload: Uint8Array,
    salt?: Uint8Array,
  ): Buffer;
  /** The plaintext of a SIP004 datagram; null when too short or not authentic. */
  udpOpen(method: AeadMethod, masterKey: Uint8Array, packet: Uint8Array): Buffer | null;
  /**
   * Does `head` (salt + sealed length chunk, at least saltSize + 18 bytes) authenticate under
   * `masterKey`? A cheap trial decryption where the backend has one (native: HKDF and one 2-byte
   * AEAD open); undefined when it has none, and the caller builds a decoder instead.
   */
  sip004HeadMatches(method: AeadMethod, masterKey: Uint8Array, head: Uint8Array): boolean | undefined;
  /**
   * sip004HeadMatches and the matching key's chunk decoder in one, deriving the subkey once:
   * `head` is exactly salt + sealed length chunk. The decoder (having read that chunk), or
   * SIP004_WRONG_KEY, or SIP004_BAD_LENGTH (authentic, length outside 1..0x3FFF). Absent where
   * the backend has no such operation.
   */
  sip004Open?(method: AeadMethod, masterKey: Uint8Array, head: Uint8Array): ChunkDecoder | Sip004Refusal;
}

/** SIP004's chunk limit (the default framing) and the AEAD tag every method here appends. */
export const MAX_PAYLOAD = 0x3fff;
export const TAG = 16;

/** sip004Open's answers other than a decoder. */
export const SIP004_WRONG_KEY = 0;
export const SIP004_BAD_LENGTH = 2;
export type Sip004Refusal = typeof SIP004_WRONG_KEY | typeof SIP004_BAD_LENGTH;
