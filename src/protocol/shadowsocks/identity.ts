import { ProtocolError } from '../errors.js';
import {
  AesBlock,
  aesDecryptBlock,
  aesEncryptBlock,
  checkKeySize,
  IDENTITY_HEADER_SIZE,
  type Aead2022Method,
} from './methods2022.js';
import { deriveIdentitySubkey, pskHash } from './kdf2022.js';

export { IDENTITY_HEADER_SIZE };

function requireIdentity(method: Aead2022Method): void {
  if (!method.supportsIdentity) {
    throw new ProtocolError(
      'ERR_METHOD',
      `${method.name} has no identity headers (SIP023 needs an AES method)`,
    );
  }
}

/**
 * One identity header per identity key, outermost first: header n is `seal(iPSK_n, hash)`, where
 * hash is blake3(next key)[0..16] (a new Buffer the caller may change) and "next key" is
 * iPSK_{n+1}, or the user PSK after the last identity key.
 */
function identityHeaders(
  method: Aead2022Method,
  identityKeys: readonly Uint8Array[],
  userKey: Uint8Array,
  seal: (ipsk: Uint8Array, nextHash: Buffer) => Buffer,
): Buffer {
  if (identityKeys.length === 0) return Buffer.alloc(0);
  requireIdentity(method);
  const out = Buffer.allocUnsafe(identityKeys.length * IDENTITY_HEADER_SIZE);
  identityKeys.forEach((ipsk, i) => {
    checkKeySize(method, ipsk, `identity key ${i + 1}`);
    seal(ipsk, pskHash(identityKeys[i + 1] ?? userKey)).copy(out, i * IDENTITY_HEADER_SIZE);
  });
  return out;
}

/**
 * Client side, TCP (SIP023):
 *   identity_subkey = derive_key("shadowsocks 2022 identity subkey", iPSK_n || salt)
 *   header_n        = AES-ECB(identity_subkey, blake3(next key)[0..16])
 */
export function tcpIdentityHeaders(
  method: Aead2022Method,
  identityKeys: readonly Uint8Array[],
  userKey: Uint8Array,
  salt: Uint8Array,
): Buffer {
  return identityHeaders(method, identityKeys, userKey, (ipsk, next) =>
    aesEncryptBlock(method, deriveIdentitySubkey(ipsk, salt), next),
  );
}

/**
 * Client side, UDP (SIP023): header_n = AES-ECB(iPSK_n, blake3(next key)[0..16] XOR separate
 * header plaintext (session id || packet id)).
 */
export function udpIdentityHeaders(
  method: Aead2022Method,
  identityKeys: readonly Uint8Array[],
  userKey: Uint8Array,
  separateHeader: Uint8Array,
): Buffer {
  return identityHeaders(method, identityKeys, userKey, (ipsk, next) => {
    for (let j = 0; j < 16; j++) next[j]! ^= separateHeader[j]!;
    return aesEncryptBlock(method, ipsk, next);
  });
}

export interface IdentityEntry<U> {
  /** The user's PSK: it keys the session (TCP subkey, UDP subkey and reply headers). */
  readonly key: Buffer;
  readonly user: U;
}

/**
 * Server side of SIP023 for one identity key: users indexed by the first 16 bytes of the BLAKE3
 * hash of their PSK, so finding the user of a connection costs one AES block decryption and one
 * Map lookup, whatever the number of users (no trial decryption).
 */
export class IdentityTable<U> {
  readonly method: Aead2022Method;
  readonly #identityKey: Buffer;
  readonly #block: AesBlock;
  readonly #byHash = new Map<string, IdentityEntry<U>>();

  constructor(method: Aead2022Method, identityKey: Uint8Array) {
    requireIdentity(method);
    checkKeySize(method, identityKey, 'identity key');
    this.method = method;
    this.#identityKey = Buffer.from(identityKey);
    this.#block = new AesBlock(method, identityKey);
  }

  get size(): number {
    return this.#byHash.size;
  }

  /** Add or replace a user. Two users can't share a PSK: the second replaces the first. */
  set(userKey: Uint8Array, user: U): void {
    checkKeySize(this.method, userKey, 'user key');
    this.#byHash.set(pskHash(userKey).toString('latin1'), { key: Buffer.from(userKey), user });
  }

  delete(userKey: Uint8Array): boolean {
    return this.#byHash.delete(pskHash(userKey).toString('latin1'));
  }

  /** Find a user by the 16-byte PSK hash. */
  lookup(hash: Uint8Array): IdentityEntry<U> | undefined {
    if (hash.length !== 16) return undefined;
    return this.#byHash.get(Buffer.from(hash.buffer, hash.byteOffset, 16).toString('latin1'));
  }

  /** TCP: decrypt an identity header that follows `salt`; undefined when no user matches. */
  resolveTcp(salt: Uint8Array, header: Uint8Array): IdentityEntry<U> | undefined {
    if (header.length !== IDENTITY_HEADER_SIZE) return undefined;
    return this.lookup(aesDecryptBlock(this.method, deriveIdentitySubkey(this.#identityKey, salt), header));
  }

  /** UDP: decrypt an identity header given the decrypted separate header; undefined when no user matches. */
  resolveUdp(separateHeader: Uint8Array, header: Uint8Array): IdentityEntry<U> | undefined {
    if (header.length !== IDENTITY_HEADER_SIZE || separateHeader.length < 16) return undefined;
    const plain = this.#block.decrypt(header);
    for (let j = 0; j < 16; j++) plain[j]! ^= separateHeader[j]!;
    return this.lookup(plain);
  }

  /** The identity key, for decrypting UDP separate headers (they are encrypted with the first iPSK). */
  get identityKey(): Buffer {
    return this.#identityKey;
  }
}
