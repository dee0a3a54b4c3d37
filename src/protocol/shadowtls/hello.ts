/**
 * ShadowTLS v3 handshake checks on plain TLS records (ihciah/shadow-tls docs/protocol-v3-en.md
 * "Handshake"; the same offsets as SagerNet/sing-shadowtls v3_server.go / v3_client.go):
 *
 *  - the client's ClientHello carries a 32-byte session id: 28 random bytes, then the first 4
 *    bytes of HMAC-SHA1(password) over the ClientHello handshake message (the record's body,
 *    without the 5-byte record header) with those 4 bytes zeroed;
 *  - the handshake server's ServerHello gives the ServerRandom (bytes 11..43 of its record);
 *  - strict mode: the ServerHello must select TLS 1.3 (supported_versions = 0x0304).
 */
import { randomBytes } from 'node:crypto';
import { RECORD_HEADER, TYPE_HANDSHAKE } from './record.js';
import { RunningHmac, TAG_SIZE } from './hmac.js';

export const HANDSHAKE_CLIENT_HELLO = 1;
export const HANDSHAKE_SERVER_HELLO = 2;
export const RANDOM_SIZE = 32;
export const SESSION_ID_SIZE = 32;
/** Offset of the session-id length byte within a hello message: type(1) length(3) version(2) random(32). */
export const SESSION_ID_LENGTH_OFFSET = 1 + 3 + 2 + RANDOM_SIZE;
/** Offset of the 4-byte tag within the ClientHello message (the session id's last 4 bytes). */
export const CLIENT_HELLO_TAG_OFFSET = SESSION_ID_LENGTH_OFFSET + 1 + SESSION_ID_SIZE - TAG_SIZE;
const EXT_SUPPORTED_VERSIONS = 43;
const TLS13 = 0x0304;

function helloTag(message: Uint8Array, password: string | Buffer): Buffer {
  const h = new RunningHmac(password);
  h.update(message.subarray(0, CLIENT_HELLO_TAG_OFFSET));
  h.update(new Uint8Array(TAG_SIZE));
  h.update(message.subarray(CLIENT_HELLO_TAG_OFFSET + TAG_SIZE));
  return h.tag();
}

/**
 * Client side: write the session id of a ClientHello handshake message (no record header) in
 * place: 28 random bytes (or `random28`) and the 4-byte tag. The message must already have a
 * 32-byte session id field; everything else in it is final (the tag covers all of it).
 */
export function signClientHello(message: Buffer, password: string | Buffer, random28?: Uint8Array): Buffer {
  if (
    message.length < SESSION_ID_LENGTH_OFFSET + 1 + SESSION_ID_SIZE ||
    message[0] !== HANDSHAKE_CLIENT_HELLO
  ) {
    throw new RangeError('signClientHello: not a ClientHello message with room for a session id');
  }
  if (message[SESSION_ID_LENGTH_OFFSET] !== SESSION_ID_SIZE) {
    throw new RangeError('signClientHello: the ClientHello session id must be 32 bytes long');
  }
  const r = random28 ?? randomBytes(SESSION_ID_SIZE - TAG_SIZE);
  if (r.length !== SESSION_ID_SIZE - TAG_SIZE)
    throw new RangeError('signClientHello: random28 must be 28 bytes');
  message.set(r, SESSION_ID_LENGTH_OFFSET + 1);
  message.set(helloTag(message, password), CLIENT_HELLO_TAG_OFFSET);
  return message;
}

/**
 * Server side, for many passwords: the ClientHello message of this first record (a whole record
 * with its header) with its tag zeroed (a copy: what HMAC-SHA1(password) runs over) and the tag,
 * or undefined when it is no ClientHello with a 32-byte session id. A password signed it when the
 * first 4 bytes of HMAC-SHA1(password, message) are the tag.
 */
export function clientHelloTagInput(record: Uint8Array): { message: Buffer; tag: Buffer } | undefined {
  if (record.length < RECORD_HEADER + SESSION_ID_LENGTH_OFFSET + 1 + SESSION_ID_SIZE) return undefined;
  if (record[0] !== TYPE_HANDSHAKE || record[RECORD_HEADER] !== HANDSHAKE_CLIENT_HELLO) return undefined;
  if (record[RECORD_HEADER + SESSION_ID_LENGTH_OFFSET] !== SESSION_ID_SIZE) return undefined;
  const message = Buffer.from(record.subarray(RECORD_HEADER));
  const tag = Buffer.from(message.subarray(CLIENT_HELLO_TAG_OFFSET, CLIENT_HELLO_TAG_OFFSET + TAG_SIZE));
  message.fill(0, CLIENT_HELLO_TAG_OFFSET, CLIENT_HELLO_TAG_OFFSET + TAG_SIZE);
  return { message, tag };
}

/** The ServerRandom of a record holding a ServerHello (a copy), or undefined if it holds none. */
export function serverRandomOf(record: Uint8Array): Buffer | undefined {
  if (record.length < RECORD_HEADER + SESSION_ID_LENGTH_OFFSET) return undefined;
  if (record[0] !== TYPE_HANDSHAKE || record[RECORD_HEADER] !== HANDSHAKE_SERVER_HELLO) return undefined;
  const at = RECORD_HEADER + 1 + 3 + 2;
  return Buffer.from(record.subarray(at, at + RANDOM_SIZE));
}

/**
 * Whether a ServerHello record selects TLS 1.3 (a supported_versions extension of 0x0304). Parsed
 * within the ServerHello message's own length; anything malformed is "no".
 */
export function serverHelloSelectsTls13(record: Uint8Array): boolean {
  if (record.length < RECORD_HEADER + 4 || record[RECORD_HEADER] !== HANDSHAKE_SERVER_HELLO) return false;
  const b = record.subarray(RECORD_HEADER);
  const end = Math.min(b.length, 4 + ((b[1]! << 16) | (b[2]! << 8) | b[3]!));
  let o = SESSION_ID_LENGTH_OFFSET;
  if (o >= end) return false;
  o += 1 + b[o]!; // session id
  o += 2 + 1; // cipher suite, compression method
  if (o + 2 > end) return false;
  const extEnd = Math.min(end, o + 2 + ((b[o]! << 8) | b[o + 1]!));
  o += 2;
  while (o + 4 <= extEnd) {
    const type = (b[o]! << 8) | b[o + 1]!;
    const len = (b[o + 2]! << 8) | b[o + 3]!;
    o += 4;
    if (o + len > extEnd) return false;
    if (type === EXT_SUPPORTED_VERSIONS) return len === 2 && ((b[o]! << 8) | b[o + 1]!) === TLS13;
    o += len;
  }
  return false;
}
