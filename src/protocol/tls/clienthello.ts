/**
 * Pure TLS record and ClientHello helpers (RFC 8446 §5.1, §4.1.2; RFC 6066 §3 server_name).
 *
 * API:
 *   readRecordHeader(buf)      -> { type, version, length } | undefined (fewer than 5 bytes)
 *   parseClientHelloRecord(buf)-> ClientHelloInfo for ONE complete handshake record holding a
 *                                 whole ClientHello; ProtocolError('ERR_TLS') otherwise
 *   encodeRecord(type, version, fragment) -> a record with its 5-byte header
 *
 * Offsets in ClientHelloInfo are relative to the start of the handshake message (the record's
 * fragment), so they stay valid when the message is re-framed into other records.
 */
import { ProtocolError } from '../errors.js';

export const RECORD_HEADER = 5;
export const CONTENT_HANDSHAKE = 0x16;
export const HANDSHAKE_CLIENT_HELLO = 0x01;
export const EXT_SERVER_NAME = 0x0000;
/** RFC 8446 §5.1: a record fragment is at most 2^14 bytes. */
export const MAX_FRAGMENT = 0x4000;

export interface RecordHeader {
  readonly type: number;
  readonly version: number;
  readonly length: number;
}

export function readRecordHeader(buf: Uint8Array): RecordHeader | undefined {
  if (buf.length < RECORD_HEADER) return undefined;
  return { type: buf[0]!, version: (buf[1]! << 8) | buf[2]!, length: (buf[3]! << 8) | buf[4]! };
}

export interface ServerNameInfo {
  /** The host name (ASCII). */
  readonly name: string;
  /** Offset of the first byte of the name within the handshake message. */
  readonly nameOffset: number;
  readonly nameLength: number;
  /** Offset of the server_name extension's type field within the handshake message. */
  readonly extensionOffset: number;
}

export interface ClientHelloInfo {
  /** Record-layer version (usually 0x0301 for a first ClientHello). */
  readonly recordVersion: number;
  /** The whole handshake message (type, 3-byte length, body). */
  readonly handshake: Buffer;
  /** Extension types in order. */
  readonly extensions: readonly number[];
  readonly serverName?: ServerNameInfo | undefined;
}

function bad(msg: string): ProtocolError {
  return new ProtocolError('ERR_TLS', msg);
}

export function encodeRecord(type: number, version: number, fragment: Uint8Array): Buffer {
  if (fragment.length > MAX_FRAGMENT) throw bad(`record fragment of ${fragment.length} bytes exceeds 2^14`);
  const out = Buffer.allocUnsafe(RECORD_HEADER + fragment.length);
  out[0] = type;
  out.writeUInt16BE(version, 1);
  out.writeUInt16BE(fragment.length, 3);
  out.set(fragment, RECORD_HEADER);
  return out;
}

/** Parse the handshake message of a ClientHello (no record header). */
export function parseClientHelloMessage(hs: Uint8Array, recordVersion = 0x0301): ClientHelloInfo {
  const b = Buffer.from(hs.buffer, hs.byteOffset, hs.length);
  if (b.length < 4) throw bad('handshake message shorter than its header');
  if (b[0] !== HANDSHAKE_CLIENT_HELLO) throw bad(`handshake type ${b[0]} is not ClientHello`);
  const bodyLen = b.readUIntBE(1, 3);
  if (b.length !== 4 + bodyLen)
    throw bad(`ClientHello length ${bodyLen} does not match ${b.length - 4} bytes`);
  let o = 4;
  const need = (n: number, what: string): void => {
    if (o + n > b.length) throw bad(`ClientHello truncated in ${what}`);
  };
  need(2 + 32, 'version/random');
  o += 2 + 32;
  need(1, 'session id');
  o += 1 + b[o]!;
  need(2, 'cipher suites');
  o += 2 + b.readUInt16BE(o);
  need(1, 'compression methods');
  o += 1 + b[o]!;
  const extensions: number[] = [];
  let serverName: ServerNameInfo | undefined;
  if (o === b.length) return { recordVersion, handshake: Buffer.from(b), extensions };
  need(2, 'extensions length');
  const extEnd = o + 2 + b.readUInt16BE(o);
  o += 2;
  if (extEnd !== b.length) throw bad('extensions length does not match the message');
  while (o < extEnd) {
    need(4, 'extension header');
    const type = b.readUInt16BE(o);
    const len = b.readUInt16BE(o + 2);
    const start = o + 4;
    if (start + len > extEnd) throw bad('extension overruns the message');
    extensions.push(type);
    if (type === EXT_SERVER_NAME && len >= 5) {
      // server_name_list length (2), then entries: name_type (1), length (2), name.
      const listEnd = start + 2 + b.readUInt16BE(start);
      if (listEnd > start + len) throw bad('server_name list overruns its extension');
      let p = start + 2;
      while (p + 3 <= listEnd) {
        const nameType = b[p]!;
        const nameLen = b.readUInt16BE(p + 1);
        if (p + 3 + nameLen > listEnd) throw bad('server_name entry overruns its list');
        if (nameType === 0 && serverName === undefined) {
          serverName = {
            name: b.toString('latin1', p + 3, p + 3 + nameLen),
            nameOffset: p + 3,
            nameLength: nameLen,
            extensionOffset: o,
          };
        }
        p += 3 + nameLen;
      }
    }
    o = start + len;
  }
  return { recordVersion, handshake: Buffer.from(b), extensions, serverName };
}

/** Parse one complete handshake record carrying a whole ClientHello. */
export function parseClientHelloRecord(record: Uint8Array): ClientHelloInfo {
  const h = readRecordHeader(record);
  if (!h) throw bad('TLS record shorter than its header');
  if (h.type !== CONTENT_HANDSHAKE) throw bad(`record type ${h.type} is not handshake`);
  if (record.length !== RECORD_HEADER + h.length) {
    throw bad(`record length ${h.length} does not match ${record.length - RECORD_HEADER} bytes`);
  }
  return parseClientHelloMessage(record.subarray(RECORD_HEADER), h.version);
}
