import { createCipheriv, createDecipheriv, type Cipher, type Decipher } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import { AEAD_METHODS, type AeadMethod } from './methods.js';

/**
 * The Shadowsocks 2022 edition methods (SIP022). Keys are fixed-length random PSKs given in
 * base64 (never passwords); session subkeys come from BLAKE3 derive_key over key || salt.
 */
export type Aead2022MethodName =
  '2022-blake3-aes-128-gcm' | '2022-blake3-aes-256-gcm' | '2022-blake3-chacha20-poly1305';

export interface Aead2022Method {
  readonly name: Aead2022MethodName;
  /** PSK length in bytes; the salt has the same length (SIP022 §2.1). */
  readonly keySize: 16 | 32;
  readonly saltSize: 16 | 32;
  readonly tagSize: 16;
  /** The SIP004 method with the same AEAD cipher, so AeadSession can be reused for TCP chunks. */
  readonly aead: AeadMethod;
  /** The AES block cipher used for UDP separate headers and SIP023 identity headers (AES methods only). */
  readonly block: 'aes-128-ecb' | 'aes-256-ecb' | undefined;
  /** SIP023 identity headers exist only for the AES methods. */
  readonly supportsIdentity: boolean;
}

export const AEAD_2022_METHODS: Readonly<Record<Aead2022MethodName, Aead2022Method>> = Object.freeze({
  '2022-blake3-aes-128-gcm': {
    name: '2022-blake3-aes-128-gcm',
    keySize: 16,
    saltSize: 16,
    tagSize: 16,
    aead: AEAD_METHODS['aes-128-gcm'],
    block: 'aes-128-ecb',
    supportsIdentity: true,
  },
  '2022-blake3-aes-256-gcm': {
    name: '2022-blake3-aes-256-gcm',
    keySize: 32,
    saltSize: 32,
    tagSize: 16,
    aead: AEAD_METHODS['aes-256-gcm'],
    block: 'aes-256-ecb',
    supportsIdentity: true,
  },
  '2022-blake3-chacha20-poly1305': {
    name: '2022-blake3-chacha20-poly1305',
    keySize: 32,
    saltSize: 32,
    tagSize: 16,
    aead: AEAD_METHODS['chacha20-ietf-poly1305'],
    block: undefined,
    supportsIdentity: false,
  },
});

/** SIP023: every identity header is one AES block. */
export const IDENTITY_HEADER_SIZE = 16;

export function isAead2022MethodName(name: string): name is Aead2022MethodName {
  return Object.hasOwn(AEAD_2022_METHODS, name);
}

export function getAead2022Method(name: string): Aead2022Method {
  if (isAead2022MethodName(name)) return AEAD_2022_METHODS[name];
  if (name === '2022-blake3-chacha8-poly1305' || name === '2022-blake3-chacha12-poly1305') {
    throw new ProtocolError(
      'ERR_METHOD',
      `method "${name}" is not supported; use one of ${Object.keys(AEAD_2022_METHODS).join(', ')}`,
    );
  }
  throw new ProtocolError(
    'ERR_METHOD',
    `unknown 2022 method "${name}"; expected one of ${Object.keys(AEAD_2022_METHODS).join(', ')}`,
  );
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * Decode one base64 PSK and check it has exactly the method's key length. `field` names the
 * key in error messages (never the key itself).
 */
export function decodePsk(method: Aead2022Method, text: string, field = 'key'): Buffer {
  const t = text.trim();
  if (t.length === 0)
    throw new ProtocolError(
      'ERR_KEY',
      `${field} is empty; ${method.name} needs a base64 key of ${method.keySize} bytes (openssl rand -base64 ${method.keySize})`,
    );
  const std = BASE64.test(t);
  if (!std && !BASE64URL.test(t)) {
    throw new ProtocolError(
      'ERR_KEY',
      `${field} is not base64; ${method.name} needs a base64 key of ${method.keySize} bytes (openssl rand -base64 ${method.keySize})`,
    );
  }
  const key = Buffer.from(t, std ? 'base64' : 'base64url');
  if (key.length !== method.keySize) {
    throw new ProtocolError(
      'ERR_KEY',
      `${field} decodes to ${key.length} bytes but ${method.name} needs exactly ${method.keySize} (openssl rand -base64 ${method.keySize})`,
    );
  }
  return key;
}

export interface Psk2022 {
  /** SIP023 identity PSKs, outermost first (empty without identity headers). */
  readonly identityKeys: readonly Buffer[];
  /** The user PSK: the key that encrypts the session itself. */
  readonly userKey: Buffer;
}

/**
 * Parse a 2022 password: "uPSK", or "iPSK0:iPSK1:...:uPSK" with SIP023 identity keys. Each part
 * is base64 of exactly the method's key size. Identity keys need an AES method.
 */
export function parsePsk2022(method: Aead2022Method, password: string): Psk2022 {
  const parts = password.split(':');
  const keys = parts.map((p, i) =>
    decodePsk(
      method,
      p,
      parts.length === 1 ? 'key' : i === parts.length - 1 ? 'user key (last part)' : `identity key ${i + 1}`,
    ),
  );
  if (keys.length > 1 && !method.supportsIdentity) {
    throw new ProtocolError(
      'ERR_KEY',
      `identity keys (iPSK:uPSK) need an AES method; ${method.name} has no identity headers`,
    );
  }
  return { identityKeys: keys.slice(0, -1), userKey: keys[keys.length - 1]! };
}

/** Throws ERR_KEY unless `key` (named `field` in the message) has the method's key length. */
export function checkKeySize(method: Aead2022Method, key: Uint8Array, field = 'key'): void {
  if (key.length !== method.keySize) {
    throw new ProtocolError(
      'ERR_KEY',
      `${field} must be ${method.keySize} bytes for ${method.name}, got ${key.length}`,
    );
  }
}

/**
 * A reusable raw AES block cipher for one key (UDP separate headers, identity headers). ECB with
 * padding off is stateless per block, so the OpenSSL contexts are created once and update() is
 * called per block, which is several times cheaper than a fresh cipher per packet.
 */
export class AesBlock {
  readonly #block: 'aes-128-ecb' | 'aes-256-ecb';
  readonly #key: Buffer;
  #enc: Cipher | undefined;
  #dec: Decipher | undefined;

  constructor(method: Aead2022Method, key: Uint8Array) {
    if (method.block === undefined)
      throw new ProtocolError('ERR_METHOD', `${method.name} has no AES block cipher`);
    checkKeySize(method, key);
    this.#block = method.block;
    this.#key = Buffer.from(key);
  }

  encrypt(block: Uint8Array): Buffer {
    if (block.length !== 16) throw new ProtocolError('ERR_HEADER', 'an AES block is 16 bytes');
    this.#enc ??= createCipheriv(this.#block, this.#key, null).setAutoPadding(false);
    return this.#enc.update(block);
  }

  decrypt(block: Uint8Array): Buffer {
    if (block.length !== 16) throw new ProtocolError('ERR_HEADER', 'an AES block is 16 bytes');
    this.#dec ??= createDecipheriv(this.#block, this.#key, null).setAutoPadding(false);
    return this.#dec.update(block);
  }
}

/** One raw AES block encryption with a one-off key (identity headers keyed per salt). */
export function aesEncryptBlock(method: Aead2022Method, key: Uint8Array, block: Uint8Array): Buffer {
  return new AesBlock(method, key).encrypt(block);
}

export function aesDecryptBlock(method: Aead2022Method, key: Uint8Array, block: Uint8Array): Buffer {
  return new AesBlock(method, key).decrypt(block);
}

/** Client padding policy (SIP022 §3.1.4): random 1..900 bytes when there is no initial payload, else none. */
export const MAX_PADDING = 900;
