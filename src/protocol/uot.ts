import { ProtocolError } from './errors.js';
import {
  ATYP_DOMAIN,
  ATYP_IPV4,
  ATYP_IPV6,
  decodeAddress,
  encodeAddress,
  type SocksAddress,
} from './socks5/address.js';

/**
 * sing's UDP-over-TCP (SagerNet/sing common/uot), which mihomo and sing-box speak inside a
 * Shadowsocks stream when `udp-over-tcp` is on: the stream's target is a magic name, and the
 * stream then carries datagrams.
 *
 * v2 (target `sp.v2.udp-over-tcp.arpa`): the client first sends a request,
 *   u8 isConnect (non-zero = true) | destination (SOCKS address: ATYP 1/3/4 | addr | u16 port)
 * then datagrams. In connect mode every datagram, both ways, is `u16 length | payload` to or
 * from that one destination; otherwise each carries its address, as v1 does.
 * v1 (target `sp.udp-over-tcp.arpa`): no request; every datagram, both ways, is
 *   family (0 IPv4, 1 IPv6, 2 domain) | addr | u16 port | u16 length | payload
 * where addr is 4 or 16 bytes, or u8 length + name. Integers are big-endian. The port of the
 * magic target itself is 0 and means nothing.
 */

export const UOT_MAGIC_V2 = 'sp.v2.udp-over-tcp.arpa';
export const UOT_MAGIC_V1 = 'sp.udp-over-tcp.arpa';
export type UotVersion = 1 | 2;

/** The most payload one datagram frame carries (u16 length). */
export const UOT_MAX_PAYLOAD = 0xffff;

/** Which UoT version a Shadowsocks target asks for; undefined when it is an ordinary target. */
export function uotVersion(target: SocksAddress): UotVersion | undefined {
  if (target.type !== 'domain') return undefined;
  // toLowerCase() folds U+212A (Kelvin) to 'k' where the addon's strncasecmp does not: the same
  // answer only while the name has no 'k' (native/tcp_accept.cc SpecialName).
  const name = target.host.toLowerCase();
  return name === UOT_MAGIC_V2 ? 2 : name === UOT_MAGIC_V1 ? 1 : undefined;
}

export interface UotRequest {
  /** Connect mode: datagrams carry no address; all go to (and come from) `destination`. */
  connect: boolean;
  destination: SocksAddress;
}

export interface UotDatagram {
  /** The datagram's address; undefined in connect mode (it is the request's destination). */
  address: SocksAddress | undefined;
  payload: Buffer;
}

/** The per-datagram address family bytes, and the SOCKS ATYP each stands for. */
const FAMILY_TO_ATYP = [ATYP_IPV4, ATYP_IPV6, ATYP_DOMAIN] as const;
const ATYP_TO_FAMILY: Record<number, number> = { [ATYP_IPV4]: 0, [ATYP_IPV6]: 1, [ATYP_DOMAIN]: 2 };

/** The v2 request: u8 isConnect | SOCKS address. */
export function encodeUotRequest(req: UotRequest): Buffer {
  return Buffer.concat([Buffer.of(req.connect ? 1 : 0), encodeAddress(req.destination)]);
}

/** A datagram's address in UoT's own family numbering. */
export function encodeUotAddress(addr: SocksAddress): Buffer {
  const out = encodeAddress(addr);
  out[0] = ATYP_TO_FAMILY[out[0]!]!;
  return out;
}

/**
 * One datagram frame: `[address] | u16 length | payload` (the address only when the association
 * is not in connect mode). Payloads over 65535 bytes are refused.
 */
export function encodeUotDatagram(address: SocksAddress | undefined, payload: Uint8Array): Buffer {
  if (payload.length > UOT_MAX_PAYLOAD) fail(`datagram of ${payload.length} bytes`);
  const head = address ? encodeUotAddress(address) : Buffer.alloc(0);
  const out = Buffer.allocUnsafe(head.length + 2 + payload.length);
  head.copy(out, 0);
  out.writeUInt16BE(payload.length, head.length);
  out.set(payload, head.length + 2);
  return out;
}

function fail(msg: string): never {
  throw new ProtocolError('ERR_ADDRESS', `UDP-over-TCP: ${msg}`);
}

/**
 * A datagram address in UoT numbering at `off`: undefined when more bytes are needed. Translated
 * to the SOCKS form (a copy of at most 259 bytes) and decoded by the SOCKS decoder.
 */
function decodeUotAddress(buf: Buffer, off: number): { address: SocksAddress; length: number } | undefined {
  if (buf.length <= off) return undefined;
  const atyp = FAMILY_TO_ATYP[buf[off]!];
  if (atyp === undefined) fail(`unknown address family ${buf[off]}`);
  const size =
    atyp === ATYP_IPV4 ? 7 : atyp === ATYP_IPV6 ? 19 : buf.length > off + 1 ? 4 + buf[off + 1]! : 2;
  if (buf.length < off + size) return undefined;
  const socks = Buffer.from(buf.subarray(off, off + size));
  socks[0] = atyp;
  return decodeAddress(socks); // throws on an empty name
}

/**
 * Reads the client's side of an association from the decrypted stream, in any slicing: the v2
 * request first, then datagram frames. Holds at most one incomplete frame (under 64 KiB + 261
 * bytes). Garbage (an unknown address type or family, an empty name) throws ERR_ADDRESS; after
 * that the reader must not be used.
 */
export class UotReader {
  readonly version: UotVersion;
  #request: UotRequest | undefined;
  #rest: Buffer | undefined;

  constructor(version: UotVersion) {
    this.version = version;
  }

  /** v2: the request, once read. */
  get request(): UotRequest | undefined {
    return this.#request;
  }

  /** Bytes held back waiting for the rest of a frame. */
  get buffered(): number {
    return this.#rest?.length ?? 0;
  }

  /** Datagrams completed by `chunk` (payloads are views of `chunk` or of a copy). */
  push(chunk: Buffer): UotDatagram[] {
    const buf = this.#rest ? Buffer.concat([this.#rest, chunk]) : chunk;
    this.#rest = undefined;
    let off = 0;
    const out: UotDatagram[] = [];
    if (this.version === 2 && !this.#request) {
      if (buf.length < 2) return this.#keep(buf, 0, out);
      const d = decodeAddress(buf, 1);
      if (!d) return this.#keep(buf, 0, out);
      this.#request = { connect: buf[0] !== 0, destination: d.address };
      off = 1 + d.length;
    }
    const connect = this.#request?.connect === true;
    while (off < buf.length) {
      let address: SocksAddress | undefined;
      let at = off;
      if (!connect) {
        const a = decodeUotAddress(buf, at);
        if (!a) break;
        address = a.address;
        at += a.length;
      }
      if (buf.length < at + 2) break;
      const n = buf.readUInt16BE(at);
      if (buf.length < at + 2 + n) break;
      out.push({ address, payload: buf.subarray(at + 2, at + 2 + n) });
      off = at + 2 + n;
    }
    return this.#keep(buf, off, out);
  }

  #keep(buf: Buffer, off: number, out: UotDatagram[]): UotDatagram[] {
    // A copy, so the stream's buffer (decrypted in place) is not kept alive or read later.
    if (off < buf.length) this.#rest = Buffer.from(buf.subarray(off));
    return out;
  }
}
