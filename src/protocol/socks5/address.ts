import { isIPv4, isIPv6 } from 'node:net';
import { ProtocolError } from '../errors.js';

/**
 * The SOCKS address format (RFC 1928 §5), shared by SOCKS5 requests and the Shadowsocks target
 * header: ATYP (1) | address | port (2, big-endian).
 *   ATYP 0x01: IPv4, 4 bytes; 0x03: domain, 1 length byte + 1..255 bytes; 0x04: IPv6, 16 bytes.
 */
export type AddressType = 'ipv4' | 'domain' | 'ipv6';

export interface SocksAddress {
  readonly type: AddressType;
  /** Dotted IPv4, a domain name, or IPv6 text (no brackets). */
  readonly host: string;
  readonly port: number;
}

export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

/** Build a SocksAddress from host text, choosing the type from its form. */
export function toSocksAddress(host: string, port: number): SocksAddress {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ProtocolError('ERR_ADDRESS', `port ${port} outside 0..65535`);
  }
  if (isIPv4(h)) return { type: 'ipv4', host: h, port };
  if (isIPv6(h)) return { type: 'ipv6', host: h, port };
  if (h.length === 0 || Buffer.byteLength(h) > 255) {
    throw new ProtocolError('ERR_ADDRESS', 'domain name must be 1..255 bytes');
  }
  return { type: 'domain', host: h, port };
}

function ipv6ToBytes(text: string): Buffer {
  let t = text;
  const zone = t.indexOf('%');
  if (zone !== -1) t = t.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    t =
      t.slice(0, v4.index) +
      (((b[0]! << 8) | b[1]!).toString(16) + ':' + ((b[2]! << 8) | b[3]!).toString(16));
  }
  const [head, tail] = t.includes('::') ? t.split('::') : [t, undefined];
  const h = head ? head.split(':') : [];
  const tl = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail !== undefined ? 8 - h.length - tl.length : 0;
  const groups = [...h, ...Array<string>(fill).fill('0'), ...tl];
  if (groups.length !== 8) throw new ProtocolError('ERR_ADDRESS', 'malformed IPv6 address');
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/**
 * The 4 (IPv4) or 16 (IPv6, zone ID ignored, embedded dotted quad allowed) bytes of an IP
 * literal; undefined when the text is not one.
 */
export function ipToBytes(ip: string): Buffer | undefined {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  return isIPv6(ip.split('%')[0]!) ? ipv6ToBytes(ip) : undefined;
}

function bytesToIpv6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best === -1) return groups.join(':');
  return groups.slice(0, best).join(':') + '::' + groups.slice(best + bestLen).join(':');
}

export function encodedAddressLength(addr: SocksAddress): number {
  switch (addr.type) {
    case 'ipv4':
      return 1 + 4 + 2;
    case 'ipv6':
      return 1 + 16 + 2;
    case 'domain':
      return 1 + 1 + Buffer.byteLength(addr.host) + 2;
  }
}

export function encodeAddress(addr: SocksAddress): Buffer {
  if (!Number.isInteger(addr.port) || addr.port < 0 || addr.port > 65535) {
    throw new ProtocolError('ERR_ADDRESS', `port ${addr.port} outside 0..65535`);
  }
  const out = Buffer.alloc(encodedAddressLength(addr));
  switch (addr.type) {
    case 'ipv4': {
      if (!isIPv4(addr.host)) throw new ProtocolError('ERR_ADDRESS', 'malformed IPv4 address');
      out[0] = ATYP_IPV4;
      addr.host.split('.').forEach((p, i) => (out[1 + i] = Number(p)));
      break;
    }
    case 'ipv6': {
      if (!isIPv6(addr.host.split('%')[0]!)) throw new ProtocolError('ERR_ADDRESS', 'malformed IPv6 address');
      out[0] = ATYP_IPV6;
      ipv6ToBytes(addr.host).copy(out, 1);
      break;
    }
    case 'domain': {
      const name = Buffer.from(addr.host, 'utf8');
      if (name.length === 0 || name.length > 255) {
        throw new ProtocolError('ERR_ADDRESS', 'domain name must be 1..255 bytes');
      }
      out[0] = ATYP_DOMAIN;
      out[1] = name.length;
      name.copy(out, 2);
      break;
    }
  }
  out.writeUInt16BE(addr.port, out.length - 2);
  return out;
}

/**
 * Decode an address at `offset`. Returns undefined when more bytes are needed, the address and
 * the number of bytes it used otherwise; throws ERR_ADDRESS for an unknown ATYP or empty domain.
 */
export function decodeAddress(
  buf: Uint8Array,
  offset = 0,
): { address: SocksAddress; length: number } | undefined {
  if (buf.length <= offset) return undefined;
  const atyp = buf[offset]!;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  switch (atyp) {
    case ATYP_IPV4: {
      if (b.length < offset + 7) return undefined;
      const host = `${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}.${b[offset + 4]}`;
      return { address: { type: 'ipv4', host, port: b.readUInt16BE(offset + 5) }, length: 7 };
    }
    case ATYP_IPV6: {
      if (b.length < offset + 19) return undefined;
      const host = bytesToIpv6(b.subarray(offset + 1, offset + 17));
      return { address: { type: 'ipv6', host, port: b.readUInt16BE(offset + 17) }, length: 19 };
    }
    case ATYP_DOMAIN: {
      if (b.length < offset + 2) return undefined;
      const n = b[offset + 1]!;
      if (n === 0) throw new ProtocolError('ERR_ADDRESS', 'empty domain name');
      if (b.length < offset + 2 + n + 2) return undefined;
      const host = b.toString('utf8', offset + 2, offset + 2 + n);
      return { address: { type: 'domain', host, port: b.readUInt16BE(offset + 2 + n) }, length: 2 + n + 2 };
    }
    default:
      throw new ProtocolError('ERR_ADDRESS', `unknown address type 0x${atyp.toString(16).padStart(2, '0')}`);
  }
}

/** host:port text for humans (IPv6 bracketed). Never log it at the default level. */
export function formatAddress(addr: SocksAddress): string {
  return addr.type === 'ipv6' ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}
