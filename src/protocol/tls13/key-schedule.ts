/**
 * The TLS 1.3 key schedule and record protection (RFC 8446 §7.1, §7.3, §5.2, §4.4.4), for the
 * client engine in src/transport/tls13/. Three cipher suites: TLS_AES_128_GCM_SHA256 (0x1301),
 * TLS_AES_256_GCM_SHA384 (0x1302), TLS_CHACHA20_POLY1305_SHA256 (0x1303). Known-answer tested
 * against RFC 8448 §3 ("Simple 1-RTT Handshake").
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  timingSafeEqual,
  type CipherGCMTypes,
} from 'node:crypto';
import { ProtocolError } from '../errors.js';

export interface CipherSuite {
  readonly id: number;
  readonly name: string;
  /** node:crypto digest name. */
  readonly hash: 'sha256' | 'sha384';
  readonly hashLen: number;
  /** node:crypto cipher name. */
  readonly aead: 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';
  readonly keyLen: number;
}

export const SUITES: ReadonlyMap<number, CipherSuite> = new Map(
  (
    [
      {
        id: 0x1301,
        name: 'TLS_AES_128_GCM_SHA256',
        hash: 'sha256',
        hashLen: 32,
        aead: 'aes-128-gcm',
        keyLen: 16,
      },
      {
        id: 0x1302,
        name: 'TLS_AES_256_GCM_SHA384',
        hash: 'sha384',
        hashLen: 48,
        aead: 'aes-256-gcm',
        keyLen: 32,
      },
      {
        id: 0x1303,
        name: 'TLS_CHACHA20_POLY1305_SHA256',
        hash: 'sha256',
        hashLen: 32,
        aead: 'chacha20-poly1305',
        keyLen: 32,
      },
    ] as const
  ).map((s) => [s.id, s]),
);

const IV_LEN = 12;
const TAG_LEN = 16;

export function hkdfExtract(hash: string, salt: Uint8Array, ikm: Uint8Array): Buffer {
  return createHmac(hash, salt).update(ikm).digest();
}

export function hkdfExpand(hash: string, prk: Uint8Array, info: Uint8Array, length: number): Buffer {
  const out: Buffer[] = [];
  let prev: Buffer = Buffer.alloc(0);
  let got = 0;
  for (let i = 1; got < length; i++) {
    prev = createHmac(hash, prk).update(prev).update(info).update(Buffer.of(i)).digest();
    out.push(prev);
    got += prev.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

/** HKDF-Expand-Label(secret, label, context, length) with the "tls13 " prefix. */
export function expandLabel(
  hash: string,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Buffer {
  const l = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.alloc(2 + 1 + l.length + 1 + context.length);
  info.writeUInt16BE(length, 0);
  info[2] = l.length;
  l.copy(info, 3);
  info[3 + l.length] = context.length;
  info.set(context, 4 + l.length);
  return hkdfExpand(hash, secret, info, length);
}

/**
 * The schedule for one connection without PSK: early → handshake → master secret, each traffic
 * secret from a transcript hash the caller gives.
 */
export class KeySchedule {
  readonly suite: CipherSuite;
  #handshakeSecret: Buffer | undefined;
  #masterSecret: Buffer | undefined;

  constructor(suite: CipherSuite) {
    this.suite = suite;
  }

  #derive(secret: Uint8Array, label: string, transcriptHash: Uint8Array): Buffer {
    return expandLabel(this.suite.hash, secret, label, transcriptHash, this.suite.hashLen);
  }

  #emptyHash(): Buffer {
    return createHash(this.suite.hash).digest();
  }

  /** From the (EC)DHE shared secret; returns the client and server handshake traffic secrets. */
  handshake(shared: Uint8Array, helloHash: Uint8Array): { client: Buffer; server: Buffer } {
    const zeros = Buffer.alloc(this.suite.hashLen);
    const early = hkdfExtract(this.suite.hash, zeros, zeros);
    const derived = this.#derive(early, 'derived', this.#emptyHash());
    this.#handshakeSecret = hkdfExtract(this.suite.hash, derived, shared);
    return {
      client: this.#derive(this.#handshakeSecret, 'c hs traffic', helloHash),
      server: this.#derive(this.#handshakeSecret, 's hs traffic', helloHash),
    };
  }

  /** After the server's Finished; returns the application traffic secrets. */
  application(serverFinishedHash: Uint8Array): { client: Buffer; server: Buffer } {
    if (!this.#handshakeSecret) throw new Error('KeySchedule.application before handshake');
    const derived = this.#derive(this.#handshakeSecret, 'derived', this.#emptyHash());
    this.#masterSecret = hkdfExtract(this.suite.hash, derived, Buffer.alloc(this.suite.hashLen));
    return {
      client: this.#derive(this.#masterSecret, 'c ap traffic', serverFinishedHash),
      server: this.#derive(this.#masterSecret, 's ap traffic', serverFinishedHash),
    };
  }

  /** The handshake secret and master secret (for the known-answer test). */
  get secrets(): { handshake?: Buffer; master?: Buffer } {
    return {
      ...(this.#handshakeSecret ? { handshake: this.#handshakeSecret } : {}),
      ...(this.#masterSecret ? { master: this.#masterSecret } : {}),
    };
  }

  /** Finished verify_data of `baseKey` (a handshake traffic secret) over `transcriptHash`. */
  finished(baseKey: Uint8Array, transcriptHash: Uint8Array): Buffer {
    const key = expandLabel(this.suite.hash, baseKey, 'finished', Buffer.alloc(0), this.suite.hashLen);
    return createHmac(this.suite.hash, key).update(transcriptHash).digest();
  }

  /** The next application traffic secret (KeyUpdate, §7.2). */
  nextSecret(secret: Uint8Array): Buffer {
    return expandLabel(this.suite.hash, secret, 'traffic upd', Buffer.alloc(0), this.suite.hashLen);
  }
}

/** Whether two verify_data values are equal, in constant time. */
export function verifyDataEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export const CONTENT_CHANGE_CIPHER_SPEC = 20;
export const CONTENT_ALERT = 21;
export const CONTENT_HANDSHAKE = 22;
export const CONTENT_APPLICATION_DATA = 23;
/** RFC 8446 §5.1: the most plaintext in one record. */
export const MAX_PLAINTEXT = 0x4000;

/**
 * One direction's record protection under one traffic secret: the key and IV from it, the
 * sequence number from 0. A new secret (handshake → application, KeyUpdate) is a new instance.
 */
export class RecordProtection {
  readonly #suite: CipherSuite;
  readonly #key: Buffer;
  readonly #iv: Buffer;
  #seq = 0n;

  constructor(suite: CipherSuite, secret: Uint8Array) {
    this.#suite = suite;
    this.#key = expandLabel(suite.hash, secret, 'key', Buffer.alloc(0), suite.keyLen);
    this.#iv = expandLabel(suite.hash, secret, 'iv', Buffer.alloc(0), IV_LEN);
  }

  #nonce(): Buffer {
    const n = Buffer.from(this.#iv);
    const seq = this.#seq;
    this.#seq += 1n;
    for (let i = 0; i < 8; i++) n[IV_LEN - 1 - i]! ^= Number((seq >> BigInt(8 * i)) & 0xffn);
    return n;
  }

  /** A whole TLSCiphertext record (header included) holding `content` of `type`. */
  seal(type: number, content: Uint8Array): Buffer {
    const len = content.length + 1 + TAG_LEN;
    const header = Buffer.of(CONTENT_APPLICATION_DATA, 3, 3, len >> 8, len & 0xff);
    const c = createCipheriv(this.#suite.aead as CipherGCMTypes, this.#key, this.#nonce(), {
      authTagLength: TAG_LEN,
    });
    c.setAAD(header);
    const body = Buffer.concat([c.update(content), c.update(Buffer.of(type)), c.final(), c.getAuthTag()]);
    return Buffer.concat([header, body]);
  }

  /** A whole TLSCiphertext record in; its inner content type and content out. ERR_TLS when it does not open. */
  open(record: Buffer): { type: number; content: Buffer } {
    if (record.length < 5 + 1 + TAG_LEN)
      throw new ProtocolError('ERR_TLS', 'TLS record too short to be protected');
    if (record.length - 5 > MAX_PLAINTEXT + 256)
      throw new ProtocolError('ERR_TLS', 'TLS record over 2^14+256 bytes');
    const header = record.subarray(0, 5);
    const body = record.subarray(5, record.length - TAG_LEN);
    const d = createDecipheriv(this.#suite.aead as CipherGCMTypes, this.#key, this.#nonce(), {
      authTagLength: TAG_LEN,
    });
    d.setAAD(header);
    d.setAuthTag(record.subarray(record.length - TAG_LEN));
    let plain: Buffer;
    try {
      plain = Buffer.concat([d.update(body), d.final()]);
    } catch {
      throw new ProtocolError('ERR_TLS', 'TLS record failed authentication (bad_record_mac)');
    }
    let end = plain.length;
    while (end > 0 && plain[end - 1] === 0) end--;
    if (end === 0) throw new ProtocolError('ERR_TLS', 'TLS record with no content type');
    return { type: plain[end - 1]!, content: plain.subarray(0, end - 1) };
  }
}
