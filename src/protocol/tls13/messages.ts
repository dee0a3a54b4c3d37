/**
 * TLS 1.3 handshake messages a client reads (RFC 8446 §4): reassembly of handshake messages from
 * record contents, ServerHello (and HelloRetryRequest), EncryptedExtensions, Certificate (and
 * RFC 8879 CompressedCertificate's header), CertificateVerify's signed content. Malformed input is
 * a ProtocolError('ERR_TLS') naming what was wrong.
 */
import { createHash } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import {
  EXT_ALPN,
  EXT_APPLICATION_SETTINGS,
  EXT_COOKIE,
  EXT_KEY_SHARE,
  EXT_SUPPORTED_VERSIONS,
  HANDSHAKE_SERVER_HELLO,
} from './client-hello.js';

function bad(msg: string): ProtocolError {
  return new ProtocolError('ERR_TLS', msg);
}

/** Bounds-checked reader over one message. */
export class Reader {
  #b: Buffer;
  #at = 0;
  readonly #what: string;

  constructor(b: Buffer, what: string) {
    this.#b = b;
    this.#what = what;
  }

  get left(): number {
    return this.#b.length - this.#at;
  }

  #need(n: number): void {
    if (this.#at + n > this.#b.length) throw bad(`truncated ${this.#what}`);
  }

  u8(): number {
    this.#need(1);
    return this.#b[this.#at++]!;
  }

  u16(): number {
    this.#need(2);
    const v = this.#b.readUInt16BE(this.#at);
    this.#at += 2;
    return v;
  }

  bytes(n: number): Buffer {
    this.#need(n);
    const v = this.#b.subarray(this.#at, this.#at + n);
    this.#at += n;
    return v;
  }

  /** A vector with a 1-, 2- or 3-byte length. */
  vec(lenBytes: 1 | 2 | 3): Buffer {
    this.#need(lenBytes);
    const n = this.#b.readUIntBE(this.#at, lenBytes);
    this.#at += lenBytes;
    return this.bytes(n);
  }

  end(): void {
    if (this.left !== 0) throw bad(`${this.#what} has ${this.left} trailing bytes`);
  }
}

/** Extensions as type → body; a repeated type is an error (§4.2). */
export function readExtensions(r: Reader, what: string): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  const all = new Reader(r.vec(2), `${what} extensions`);
  while (all.left > 0) {
    const type = all.u16();
    const body = all.vec(2);
    if (out.has(type)) throw bad(`${what} repeats extension ${type}`);
    out.set(type, body);
  }
  return out;
}

/** Handshake messages out of record contents, in order, each whole with its 4-byte header. */
export class HandshakeReader {
  #buf: Buffer = Buffer.alloc(0);

  push(content: Buffer): void {
    this.#buf = this.#buf.length === 0 ? content : Buffer.concat([this.#buf, content]);
  }

  /** Bytes of a message begun and not finished (must be 0 when the keys change, §5.1). */
  get pending(): number {
    return this.#buf.length;
  }

  next(): { type: number; body: Buffer; message: Buffer } | undefined {
    if (this.#buf.length < 4) return undefined;
    const len = this.#buf.readUIntBE(1, 3);
    if (len > 0x20000) throw bad(`handshake message of ${len} bytes is too long`);
    if (this.#buf.length < 4 + len) return undefined;
    const message = this.#buf.subarray(0, 4 + len);
    this.#buf = this.#buf.subarray(4 + len);
    return { type: message[0]!, body: message.subarray(4), message };
  }
}

/** SHA-256("HelloRetryRequest"): a ServerHello with this random is a HelloRetryRequest (§4.1.3). */
export const HRR_RANDOM = createHash('sha256').update('HelloRetryRequest').digest();
/** The last 8 bytes of a TLS 1.3 server's random when it negotiates 1.2 or below (§4.1.3). */
const DOWNGRADE_TLS12 = Buffer.from('444f574e47524401', 'hex');
const DOWNGRADE_TLS11 = Buffer.from('444f574e47524400', 'hex');

export interface ServerHello {
  readonly retry: boolean;
  readonly random: Buffer;
  readonly sessionId: Buffer;
  readonly suite: number;
  /** supported_versions' choice, or the legacy version when the extension is absent. */
  readonly version: number;
  /** key_share: the server's share (ServerHello) or the group asked for (HelloRetryRequest). */
  readonly keyShare?: { group: number; data?: Buffer };
  readonly cookie?: Buffer;
}

export function parseServerHello(body: Buffer): ServerHello {
  const r = new Reader(body, 'ServerHello');
  const legacyVersion = r.u16();
  const random = Buffer.from(r.bytes(32));
  const sessionId = r.vec(1);
  const suite = r.u16();
  if (r.u8() !== 0) throw bad('ServerHello chose a compression method');
  const exts = r.left > 0 ? readExtensions(r, 'ServerHello') : new Map<number, Buffer>();
  r.end();
  const retry = random.equals(HRR_RANDOM);
  const sv = exts.get(EXT_SUPPORTED_VERSIONS);
  const version = sv && sv.length === 2 ? sv.readUInt16BE(0) : legacyVersion;
  const tail = random.subarray(24);
  if (version !== 0x0304 && (tail.equals(DOWNGRADE_TLS12) || tail.equals(DOWNGRADE_TLS11)))
    throw bad('the server signals a downgrade from TLS 1.3 (a middlebox may be in the way)');
  let keyShare: ServerHello['keyShare'];
  const ks = exts.get(EXT_KEY_SHARE);
  if (ks) {
    const k = new Reader(ks, 'key_share');
    const group = k.u16();
    keyShare = retry ? { group } : { group, data: k.vec(2) };
    k.end();
  }
  const ck = exts.get(EXT_COOKIE);
  const cookie = ck ? new Reader(ck, 'cookie').vec(2) : undefined;
  return {
    retry,
    random,
    sessionId,
    suite,
    version,
    ...(keyShare ? { keyShare } : {}),
    ...(cookie ? { cookie } : {}),
  };
}

/** The handshake message type of a ServerHello (also the HelloRetryRequest's). */
export const SERVER_HELLO = HANDSHAKE_SERVER_HELLO;

export interface EncryptedExtensions {
  readonly alpn?: string;
  /** The server answered ALPS (application_settings): the client must send its own. */
  readonly alps: boolean;
}

export function parseEncryptedExtensions(body: Buffer, offeredAlpn: readonly string[]): EncryptedExtensions {
  const r = new Reader(body, 'EncryptedExtensions');
  const exts = readExtensions(r, 'EncryptedExtensions');
  r.end();
  let alpn: string | undefined;
  const a = exts.get(EXT_ALPN);
  if (a) {
    const list = new Reader(new Reader(a, 'ALPN').vec(2), 'ALPN list');
    alpn = list.vec(1).toString('latin1');
    list.end();
    if (!offeredAlpn.includes(alpn)) throw bad('the server chose an ALPN protocol we did not offer');
  }
  return { ...(alpn !== undefined ? { alpn } : {}), alps: exts.has(EXT_APPLICATION_SETTINGS) };
}

/** The DER certificates of a Certificate message body (leaf first); a request context must be empty. */
export function parseCertificate(body: Buffer): Buffer[] {
  const r = new Reader(body, 'Certificate');
  if (r.vec(1).length !== 0) throw bad('Certificate with a request context');
  const list = new Reader(r.vec(3), 'certificate_list');
  r.end();
  const out: Buffer[] = [];
  while (list.left > 0) {
    out.push(list.vec(3));
    list.vec(2); // per-certificate extensions (OCSP, SCT): not used
  }
  if (out.length === 0) throw bad('the server sent no certificate');
  return out;
}

/** RFC 8879 CompressedCertificate: the algorithm, the announced length, the compressed bytes. */
export function parseCompressedCertificate(body: Buffer): {
  algorithm: number;
  length: number;
  data: Buffer;
} {
  const r = new Reader(body, 'CompressedCertificate');
  const algorithm = r.u16();
  const hi = r.u8();
  const length = (hi << 16) | r.u16();
  const data = r.vec(3);
  r.end();
  return { algorithm, length, data };
}

export function parseCertificateVerify(body: Buffer): { scheme: number; signature: Buffer } {
  const r = new Reader(body, 'CertificateVerify');
  const scheme = r.u16();
  const signature = r.vec(2);
  r.end();
  return { scheme, signature };
}

/** What the server's CertificateVerify signs over the transcript hash (§4.4.3). */
export function serverSignedContent(transcriptHash: Buffer): Buffer {
  return Buffer.concat([
    Buffer.alloc(64, 0x20),
    Buffer.from('TLS 1.3, server CertificateVerify\0', 'latin1'),
    transcriptHash,
  ]);
}

/** A handshake message: type, 3-byte length, body. */
export function handshakeMessage(type: number, body: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + body.length);
  out[0] = type;
  out.writeUIntBE(body.length, 1, 3);
  out.set(body, 4);
  return out;
}

/** The alert descriptions a user might see, by number (RFC 8446 §6). */
export const ALERT_NAMES: Readonly<Record<number, string>> = {
  0: 'close_notify',
  10: 'unexpected_message',
  20: 'bad_record_mac',
  40: 'handshake_failure',
  42: 'bad_certificate',
  47: 'illegal_parameter',
  48: 'unknown_ca',
  50: 'decode_error',
  51: 'decrypt_error',
  70: 'protocol_version',
  71: 'insufficient_security',
  80: 'internal_error',
  86: 'inappropriate_fallback',
  90: 'user_canceled',
  109: 'missing_extension',
  110: 'unsupported_extension',
  112: 'unrecognized_name',
  116: 'certificate_required',
  120: 'no_application_protocol',
};
