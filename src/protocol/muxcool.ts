import { isIPv4, isIPv6 } from 'node:net';
import { ProtocolError } from './errors.js';
import { ipToBytes } from './socks5/address.js';

/**
 * Mux.Cool (v2ray's multiplexing framing, spoken by v2ray-plugin with mux=1, Clash/mihomo and
 * sing-box): many sessions over one stream. Every frame is
 *
 *   u16 metaLen (4..512) | metadata | [u16 dataLen | data]   (data present iff option & 0x01)
 *   metadata = u16 sessionID | u8 status | u8 option | [New: u8 network | u16 port | u8 addrType | addr]
 *
 * status 1 New (opens a session; carries the target), 2 Keep (data on an open session), 3 End
 * (the sender is done with the session; option 0x02 = it ended in error), 4 KeepAlive (ignored;
 * may carry data, which is discarded). addrType 1 IPv4 (4 bytes), 2 domain (u8 length + bytes),
 * 3 IPv6 (16 bytes). Integers are big-endian. Metadata after what its status needs is ignored
 * (as v2ray does), so extensions such as the UDP address in a Keep frame do not break us.
 */

export const MUX_MAX_META = 512;
/** The most data one frame can carry (u16 length). */
export const MUX_MAX_DATA = 0xffff;

export const MuxStatus = { New: 1, Keep: 2, End: 3, KeepAlive: 4 } as const;
export type MuxStatus = (typeof MuxStatus)[keyof typeof MuxStatus];

export const MUX_OPTION_DATA = 0x01;
/** The shortest New metadata: 4 + network, port, address type + a 1-byte domain with its length. */
const MIN_NEW_META = 4 + 4 + 2;
export const MUX_OPTION_ERROR = 0x02;

export const MuxNetwork = { Tcp: 1, Udp: 2 } as const;
export type MuxNetwork = (typeof MuxNetwork)[keyof typeof MuxNetwork];

export interface MuxTarget {
  network: MuxNetwork;
  /** Dotted IPv4, IPv6 text, or a domain name. */
  host: string;
  port: number;
}

export interface MuxFrameMeta {
  sessionId: number;
  status: MuxStatus;
  /** Option bits other than data (e.g. MUX_OPTION_ERROR); the data bit is implied by `data`. */
  option: number;
  /** Present on New frames. */
  target?: MuxTarget;
}

export interface MuxFrame extends MuxFrameMeta {
  /** The frame's data when option 0x01 was set (possibly empty). */
  data?: Buffer;
}

function fail(msg: string): never {
  throw new ProtocolError('ERR_HEADER', `Mux.Cool: ${msg}`);
}

/** The last target encoded and its bytes: a client names the same (placeholder) one in every New. */
let lastTarget: { network: number; host: string; port: number; bytes: Buffer } | undefined;

/** The target's bytes (network, port, address type, address); callers copy them, never keep them. */
function encodeTarget(t: MuxTarget): Buffer {
  const last = lastTarget;
  if (last && last.network === t.network && last.host === t.host && last.port === t.port) return last.bytes;
  const bytes = encodeTargetBytes(t);
  lastTarget = { network: t.network, host: t.host, port: t.port, bytes };
  return bytes;
}

function encodeTargetBytes(t: MuxTarget): Buffer {
  if (!Number.isInteger(t.port) || t.port < 0 || t.port > 0xffff) fail(`port ${t.port} outside 0..65535`);
  let addr: Buffer;
  let type: number;
  const host = t.host.startsWith('[') && t.host.endsWith(']') ? t.host.slice(1, -1) : t.host;
  if (isIPv4(host)) {
    type = 1;
    addr = ipToBytes(host)!;
  } else if (isIPv6(host)) {
    type = 3;
    addr = ipToBytes(host)!;
  } else {
    const name = Buffer.from(host, 'utf8');
    if (name.length === 0 || name.length > 255) fail('domain name must be 1..255 bytes');
    type = 2;
    addr = Buffer.concat([Buffer.of(name.length), name]);
  }
  const head = Buffer.alloc(4);
  head[0] = t.network;
  head.writeUInt16BE(t.port, 1);
  head[3] = type;
  return Buffer.concat([head, addr]);
}

/** One frame. Data longer than MUX_MAX_DATA is refused: split it first (see encodeMuxData). */
export function encodeMuxFrame(meta: MuxFrameMeta, data?: Uint8Array): Buffer {
  if (!Number.isInteger(meta.sessionId) || meta.sessionId < 0 || meta.sessionId > 0xffff)
    fail(`session id ${meta.sessionId} outside 0..65535`);
  const target =
    meta.status === MuxStatus.New ? encodeTarget(meta.target ?? fail('New needs a target')) : undefined;
  const metaLen = 4 + (target?.length ?? 0);
  const dataLen = data ? data.length : -1;
  if (dataLen > MUX_MAX_DATA) fail(`${dataLen} bytes of data in one frame`);
  const out = Buffer.allocUnsafe(2 + metaLen + (data ? 2 + data.length : 0));
  out.writeUInt16BE(metaLen, 0);
  out.writeUInt16BE(meta.sessionId, 2);
  out[4] = meta.status;
  out[5] = (meta.option & ~MUX_OPTION_DATA) | (data ? MUX_OPTION_DATA : 0);
  let off = 6;
  if (target) off += target.copy(out, off);
  if (data) {
    out.writeUInt16BE(data.length, off);
    out.set(data, off + 2);
  }
  return out;
}

/**
 * `data` for one session as a list of frames of at most `maxChunk` bytes each: the first with
 * `first` (New with its target, or Keep), the rest Keep.
 */
export function encodeMuxData(first: MuxFrameMeta, data: Uint8Array, maxChunk = MUX_MAX_DATA): Buffer[] {
  const out: Buffer[] = [];
  let meta = first;
  let off = 0;
  do {
    const n = Math.min(maxChunk, data.length - off);
    out.push(encodeMuxFrame(meta, data.subarray(off, off + n)));
    off += n;
    meta = { sessionId: first.sessionId, status: MuxStatus.Keep, option: 0 };
  } while (off < data.length);
  return out;
}

/** The bytes of a frame's header (u16 metaLen, metadata, u16 dataLen when data follows). */
function headerLength(meta: MuxFrameMeta, target: Buffer | undefined, withData: boolean): number {
  return 2 + 4 + (meta.status === MuxStatus.New ? target!.length : 0) + (withData ? 2 : 0);
}

/**
 * What `Buffer.concat(encodeMuxData(first, Buffer.concat(pieces), maxChunk))` gives, plus
 * `trailer` (e.g. an End frame) after it, built in one buffer with one copy of the data: a
 * session's write leaves as one carrier write (one WebSocket message) without the per-frame
 * buffers and the concatenation after them.
 */
export function encodeMuxMessage(
  first: MuxFrameMeta,
  pieces: readonly Uint8Array[],
  maxChunk = MUX_MAX_DATA,
  trailer?: Uint8Array,
): Buffer {
  if (!Number.isInteger(first.sessionId) || first.sessionId < 0 || first.sessionId > 0xffff)
    fail(`session id ${first.sessionId} outside 0..65535`);
  if (!(maxChunk >= 1 && maxChunk <= MUX_MAX_DATA)) fail(`frame data limit ${maxChunk}`);
  const target =
    first.status === MuxStatus.New ? encodeTarget(first.target ?? fail('New needs a target')) : undefined;
  let total = 0;
  for (const p of pieces) total += p.length;
  const frames = Math.max(1, Math.ceil(total / maxChunk));
  const keep = { sessionId: first.sessionId, status: MuxStatus.Keep, option: 0 } as const;
  const size =
    headerLength(first, target, true) +
    (frames - 1) * headerLength(keep, undefined, true) +
    total +
    (trailer?.length ?? 0);
  const out = Buffer.allocUnsafe(size);
  let off = 0;
  let piece = 0;
  let pieceOff = 0;
  let left = total;
  for (let f = 0; f < frames; f++) {
    const meta = f === 0 ? first : keep;
    const n = Math.min(maxChunk, left);
    off = out.writeUInt16BE(4 + (f === 0 && target ? target.length : 0), off);
    off = out.writeUInt16BE(meta.sessionId, off);
    out[off++] = meta.status;
    out[off++] = (meta.option & ~MUX_OPTION_DATA) | MUX_OPTION_DATA;
    if (f === 0 && target) off += target.copy(out, off);
    off = out.writeUInt16BE(n, off);
    // Copy n bytes from the pieces.
    let need = n;
    while (need > 0) {
      const p = pieces[piece]!;
      const take = Math.min(need, p.length - pieceOff);
      out.set(take === p.length ? p : p.subarray(pieceOff, pieceOff + take), off);
      off += take;
      need -= take;
      pieceOff += take;
      if (pieceOff === p.length) {
        piece++;
        pieceOff = 0;
      }
    }
    left -= n;
  }
  if (trailer) out.set(trailer, off);
  return out;
}

/** Parse the metadata (without its u16 length) of one frame. */
function parseMeta(m: Buffer): { meta: MuxFrameMeta; hasData: boolean } {
  if (m.length < 4) fail(`metadata of ${m.length} bytes`);
  const sessionId = m.readUInt16BE(0);
  const status = m[2]!;
  const option = m[3]!;
  if (status < 1 || status > 4) fail(`unknown status ${status}`);
  const meta: MuxFrameMeta = { sessionId, status: status as MuxStatus, option: option & ~MUX_OPTION_DATA };
  if (status === MuxStatus.New) meta.target = parseTarget(m, 4) ?? fail('truncated target');
  return { meta, hasData: (option & MUX_OPTION_DATA) !== 0 };
}

/** The target at `off` in `m`, or undefined when truncated; throws when malformed. */
function parseTarget(m: Uint8Array, off: number): MuxTarget | undefined {
  if (m.length < off + 4) return undefined;
  const network = m[off]!;
  if (network !== MuxNetwork.Tcp && network !== MuxNetwork.Udp) fail(`unknown network ${network}`);
  const port = (m[off + 1]! << 8) | m[off + 2]!;
  const type = m[off + 3]!;
  const a = off + 4;
  let host: string;
  if (type === 1) {
    if (m.length < a + 4) return undefined;
    host = `${m[a]}.${m[a + 1]}.${m[a + 2]}.${m[a + 3]}`;
  } else if (type === 3) {
    if (m.length < a + 16) return undefined;
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((m[a + i]! << 8) | m[a + i + 1]!).toString(16));
    host = groups.join(':');
  } else if (type === 2) {
    if (m.length < a + 1) return undefined;
    const n = m[a]!;
    if (n === 0) fail('empty domain name');
    if (m.length < a + 1 + n) return undefined;
    host = Buffer.from(m.buffer, m.byteOffset + a + 1, n).toString('utf8');
  } else {
    fail(`unknown address type ${type}`);
  }
  return { network: network as MuxNetwork, host, port };
}

/**
 * Whether a stream that starts with `first` is Mux.Cool: 'yes' when it begins with a complete,
 * well-formed New frame header (metaLen 4..512 covering the target, status New, option 0 or 1,
 * network TCP or UDP, a known address type), 'no' as soon as any of that fails, 'more' while the
 * bytes so far are a prefix of such a header. A random Shadowsocks salt passes with probability
 * around 2^-35.
 */
export function looksLikeMuxCoolNew(first: Uint8Array): 'yes' | 'no' | 'more' {
  if (first.length < 2) return 'more';
  const metaLen = (first[0]! << 8) | first[1]!;
  if (metaLen < MIN_NEW_META || metaLen > MUX_MAX_META) return 'no';
  if (first.length >= 5 && first[4] !== MuxStatus.New) return 'no';
  if (first.length >= 6 && first[5]! > MUX_OPTION_DATA) return 'no';
  const body = first.subarray(2, Math.min(first.length, 2 + metaLen));
  let target: MuxTarget | undefined;
  try {
    target = body.length >= 4 ? parseTarget(body, 4) : undefined;
  } catch {
    return 'no';
  }
  if (target === undefined) return body.length < metaLen ? 'more' : 'no';
  return 'yes';
}

type State = 'metaLen' | 'meta' | 'dataLen' | 'data';

/**
 * Incremental frame decoder: feed any slicing of the stream to push(), get whole frames back.
 * Frame data is a view of the pushed buffer when it arrived in one piece (the caller owns both),
 * else a fresh copy. Throws a ProtocolError on a malformed frame; the stream is then unusable.
 */
export class MuxCoolDecoder {
  #state: State = 'metaLen';
  #need = 2;
  #parts: Buffer[] = [];
  #have = 0;
  #meta: MuxFrameMeta | undefined;

  push(chunk: Buffer): MuxFrame[] {
    const out: MuxFrame[] = [];
    let off = 0;
    for (;;) {
      // At a frame boundary, whole frames in the chunk are read in place (the usual case: a
      // WebSocket message holds whole frames); the rest goes through the state machine below.
      if (off >= chunk.length) return out;
      if (this.#state !== 'metaLen' || this.#have > 0) break;
      const end = this.#whole(chunk, off, out);
      if (end === off) break;
      off = end;
    }
    while (off < chunk.length) {
      const take = Math.min(this.#need - this.#have, chunk.length - off);
      const piece = chunk.subarray(off, off + take);
      off += take;
      this.#parts.push(piece);
      this.#have += take;
      if (this.#have < this.#need) break;
      const whole = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#have);
      this.#parts = [];
      this.#have = 0;
      this.#step(whole, out);
    }
    return out;
  }

  /**
   * The frame at `off` when all of it is in `chunk`: pushed to `out`, returns where it ends;
   * returns `off` when it is not all there (a malformed frame throws as the state machine would).
   */
  #whole(chunk: Buffer, off: number, out: MuxFrame[]): number {
    const left = chunk.length - off;
    if (left < 2) return off;
    const metaLen = (chunk[off]! << 8) | chunk[off + 1]!;
    if (metaLen < 4 || metaLen > MUX_MAX_META) fail(`metadata length ${metaLen}`);
    const metaEnd = off + 2 + metaLen;
    if (metaEnd > chunk.length) return off;
    if ((chunk[off + 5]! & MUX_OPTION_DATA) === 0) {
      out.push(parseMeta(chunk.subarray(off + 2, metaEnd)).meta);
      return metaEnd;
    }
    if (metaEnd + 2 > chunk.length) return off;
    const dataEnd = metaEnd + 2 + ((chunk[metaEnd]! << 8) | chunk[metaEnd + 1]!);
    if (dataEnd > chunk.length) return off;
    const frame: MuxFrame = parseMeta(chunk.subarray(off + 2, metaEnd)).meta;
    frame.data = dataEnd === metaEnd + 2 ? Buffer.alloc(0) : chunk.subarray(metaEnd + 2, dataEnd);
    out.push(frame);
    return dataEnd;
  }

  /** Whether an unfinished frame is held (false at a frame boundary). */
  get pending(): boolean {
    return this.#state !== 'metaLen' || this.#have > 0;
  }

  #step(b: Buffer, out: MuxFrame[]): void {
    switch (this.#state) {
      case 'metaLen': {
        const n = b.readUInt16BE(0);
        if (n < 4 || n > MUX_MAX_META) fail(`metadata length ${n}`);
        this.#state = 'meta';
        this.#need = n;
        return;
      }
      case 'meta': {
        const { meta, hasData } = parseMeta(b);
        if (hasData) {
          this.#meta = meta;
          this.#state = 'dataLen';
          this.#need = 2;
        } else {
          out.push(meta);
          this.#state = 'metaLen';
          this.#need = 2;
        }
        return;
      }
      case 'dataLen': {
        const n = b.readUInt16BE(0);
        if (n === 0) {
          out.push({ ...this.#meta!, data: Buffer.alloc(0) });
          this.#meta = undefined;
          this.#state = 'metaLen';
          this.#need = 2;
        } else {
          this.#state = 'data';
          this.#need = n;
        }
        return;
      }
      case 'data':
        out.push({ ...this.#meta!, data: b });
        this.#meta = undefined;
        this.#state = 'metaLen';
        this.#need = 2;
    }
  }
}
