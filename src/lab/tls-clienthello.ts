/**
 * A pure TLS ClientHello parser for the lab's SNI filter (C4), written against RFC 8446 §4.1.2
 * and RFC 6066 §3. Bytes in, a typed result out; never throws on malformed input.
 *
 * Two modes, as measured (docs/glossary.md C4): the GFW parses only the *first TLS record*
 * (a ClientHello split across several records evades it, as of April 2024), while stricter
 * networks reassemble records (`reassembleRecords`).
 */
import { CONTENT_HANDSHAKE, EXT_SERVER_NAME, HANDSHAKE_CLIENT_HELLO } from '../protocol/tls/clienthello.js';

// The wire constants are the protocol parser's; the lab keeps its own parser (it never throws).
export { CONTENT_HANDSHAKE, EXT_SERVER_NAME, HANDSHAKE_CLIENT_HELLO };
export const EXT_ALPN = 0x0010;
/** The 2020 ESNI draft extension the GFW dropped on (net4people/bbs #43). */
export const EXT_ESNI = 0xffce;
export const EXT_ECH = 0xfe0d;

export interface TlsRecord {
  readonly type: number;
  readonly version: number;
  readonly fragment: Buffer;
}

export interface ClientHello {
  readonly legacyVersion: number;
  readonly serverName?: string;
  readonly alpn: readonly string[];
  readonly extensions: readonly number[];
  readonly hasEsni: boolean;
  readonly hasEch: boolean;
}

export type InspectResult =
  /** More bytes are needed before anything can be said. */
  | { readonly status: 'need-more' }
  /** The stream does not start with a TLS handshake record. */
  | { readonly status: 'not-tls' }
  /** The first record is a handshake record, but the ClientHello does not fit in what is parsed. */
  | { readonly status: 'partial'; readonly records: number }
  /** The bytes look like TLS but the ClientHello is malformed. */
  | { readonly status: 'malformed'; readonly reason: string }
  | { readonly status: 'ok'; readonly hello: ClientHello; readonly records: number };

/** Split complete TLS records off the front of `buf`; `rest` is the unconsumed tail. */
export function splitRecords(buf: Uint8Array): { records: TlsRecord[]; rest: Buffer } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: TlsRecord[] = [];
  let off = 0;
  while (b.length - off >= 5) {
    const len = b.readUInt16BE(off + 3);
    if (b.length - off < 5 + len) break;
    records.push({
      type: b[off]!,
      version: b.readUInt16BE(off + 1),
      fragment: b.subarray(off + 5, off + 5 + len),
    });
    off += 5 + len;
  }
  return { records, rest: b.subarray(off) };
}

/**
 * Look for a ClientHello at the start of a client->server byte stream.
 * With `reassembleRecords` false only the first record is parsed.
 */
export function inspectClientHello(
  stream: Uint8Array,
  opts: { reassembleRecords?: boolean } = {},
): InspectResult {
  if (stream.length === 0) return { status: 'need-more' };
  if (stream[0] !== CONTENT_HANDSHAKE) return { status: 'not-tls' };
  if (stream.length >= 2 && stream[1] !== 0x03) return { status: 'not-tls' };
  const { records } = splitRecords(stream);
  if (records.length === 0) return { status: 'need-more' };
  const max = opts.reassembleRecords ? records.length : 1;
  const parts: Buffer[] = [];
  let used = 0;
  for (let i = 0; i < max; i++) {
    const r = records[i]!;
    if (r.type !== CONTENT_HANDSHAKE) break;
    parts.push(r.fragment);
    used++;
    const hs = Buffer.concat(parts);
    if (hs.length >= 4) {
      if (hs[0] !== HANDSHAKE_CLIENT_HELLO)
        return { status: 'malformed', reason: `handshake type ${hs[0]} is not ClientHello` };
      const msgLen = hs.readUIntBE(1, 3);
      if (hs.length >= 4 + msgLen) {
        const parsed = parseClientHelloBody(hs.subarray(4, 4 + msgLen));
        return typeof parsed === 'string'
          ? { status: 'malformed', reason: parsed }
          : { status: 'ok', hello: parsed, records: used };
      }
    }
  }
  if (!opts.reassembleRecords) return { status: 'partial', records: 1 };
  // With reassembly, more records may still arrive.
  return { status: 'need-more' };
}

/** Parse the body of a ClientHello handshake message (after its 4-byte header). Returns an error string on failure. */
export function parseClientHelloBody(body: Buffer): ClientHello | string {
  let off = 0;
  const need = (n: number): boolean => off + n <= body.length;
  if (!need(2 + 32 + 1)) return 'truncated before session id';
  const legacyVersion = body.readUInt16BE(0);
  off = 34;
  const sidLen = body[off]!;
  off += 1;
  if (!need(sidLen + 2)) return 'truncated session id';
  off += sidLen;
  const csLen = body.readUInt16BE(off);
  off += 2;
  if (!need(csLen + 1)) return 'truncated cipher suites';
  off += csLen;
  const cmLen = body[off]!;
  off += 1;
  if (!need(cmLen)) return 'truncated compression methods';
  off += cmLen;
  const extensions: number[] = [];
  let serverName: string | undefined;
  const alpn: string[] = [];
  if (off === body.length) return { legacyVersion, alpn, extensions, hasEsni: false, hasEch: false };
  if (!need(2)) return 'truncated extensions length';
  const extTotal = body.readUInt16BE(off);
  off += 2;
  if (!need(extTotal)) return 'truncated extensions';
  const end = off + extTotal;
  while (off + 4 <= end) {
    const type = body.readUInt16BE(off);
    const len = body.readUInt16BE(off + 2);
    off += 4;
    if (off + len > end) return `extension ${type} overruns`;
    const data = body.subarray(off, off + len);
    off += len;
    extensions.push(type);
    if (type === EXT_SERVER_NAME && serverName === undefined) {
      const name = parseServerName(data);
      if (typeof name === 'string') serverName = name;
    } else if (type === EXT_ALPN && data.length >= 2) {
      let p = 2;
      const listEnd = Math.min(data.length, 2 + data.readUInt16BE(0));
      while (p < listEnd) {
        const l = data[p]!;
        if (p + 1 + l > listEnd) break;
        alpn.push(data.subarray(p + 1, p + 1 + l).toString('latin1'));
        p += 1 + l;
      }
    }
  }
  return {
    legacyVersion,
    ...(serverName !== undefined ? { serverName } : {}),
    alpn,
    extensions,
    hasEsni: extensions.includes(EXT_ESNI),
    hasEch: extensions.includes(EXT_ECH),
  };
}

function parseServerName(data: Buffer): string | undefined {
  if (data.length < 2) return undefined;
  const listLen = data.readUInt16BE(0);
  let p = 2;
  const end = Math.min(data.length, 2 + listLen);
  while (p + 3 <= end) {
    const nameType = data[p]!;
    const l = data.readUInt16BE(p + 1);
    p += 3;
    if (p + l > end) return undefined;
    if (nameType === 0)
      return data
        .subarray(p, p + l)
        .toString('latin1')
        .toLowerCase();
    p += l;
  }
  return undefined;
}

/**
 * Rewrite one TLS handshake record into several records carrying the same handshake bytes,
 * split at the given offsets of the record's fragment. The receiver reassembles them; a censor
 * that parses only the first record sees an incomplete ClientHello. Used by tests (and usable
 * by the client's record-fragmentation dialer).
 */
export function fragmentRecord(record: Uint8Array, splitAt: readonly number[]): Buffer {
  const { records, rest } = splitRecords(record);
  const r = records[0];
  if (!r || records.length !== 1 || rest.length !== 0)
    throw new RangeError('fragmentRecord expects exactly one complete record');
  const cuts = [...new Set(splitAt.filter((n) => n > 0 && n < r.fragment.length))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, r.fragment.length]) {
    const piece = r.fragment.subarray(prev, c);
    const h = Buffer.alloc(5);
    h[0] = r.type;
    h.writeUInt16BE(r.version, 1);
    h.writeUInt16BE(piece.length, 3);
    out.push(h, piece);
    prev = c;
  }
  return Buffer.concat(out);
}

/**
 * Build a minimal, well-formed ClientHello record (TLS 1.2 legacy version, one cipher suite, no
 * session id) carrying server_name and any extra extensions, e.g. the 2020 ESNI extension
 * 0xffce. For tests and probes; not meant to complete a handshake.
 */
export function buildClientHello(
  opts: {
    serverName?: string;
    extensions?: ReadonlyArray<{ type: number; data: Uint8Array }>;
    random?: Uint8Array;
  } = {},
): Buffer {
  const exts: Buffer[] = [];
  const ext = (type: number, data: Uint8Array): Buffer => {
    const h = Buffer.alloc(4);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(data.length, 2);
    return Buffer.concat([h, data]);
  };
  if (opts.serverName !== undefined) {
    const name = Buffer.from(opts.serverName, 'latin1');
    const sn = Buffer.alloc(5);
    sn.writeUInt16BE(name.length + 3, 0);
    sn[2] = 0;
    sn.writeUInt16BE(name.length, 3);
    exts.push(ext(EXT_SERVER_NAME, Buffer.concat([sn, name])));
  }
  for (const e of opts.extensions ?? []) exts.push(ext(e.type, e.data));
  const extBlock = Buffer.concat(exts);
  const extLen = Buffer.alloc(2);
  extLen.writeUInt16BE(extBlock.length);
  const random = Buffer.alloc(32);
  if (opts.random) Buffer.from(opts.random).copy(random);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    random,
    Buffer.from([0x00]), // session id
    Buffer.from([0x00, 0x02, 0x13, 0x01]), // cipher suites: TLS_AES_128_GCM_SHA256
    Buffer.from([0x01, 0x00]), // compression: null
    extLen,
    extBlock,
  ]);
  const hs = Buffer.alloc(4);
  hs[0] = HANDSHAKE_CLIENT_HELLO;
  hs.writeUIntBE(body.length, 1, 3);
  const rec = Buffer.alloc(5);
  rec[0] = CONTENT_HANDSHAKE;
  rec.writeUInt16BE(0x0301, 1);
  rec.writeUInt16BE(hs.length + body.length, 3);
  return Buffer.concat([rec, hs, body]);
}
