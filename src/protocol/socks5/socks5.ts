import { ProtocolError } from '../errors.js';
import { decodeAddress, encodeAddress, type SocksAddress } from './address.js';

/**
 * SOCKS5 wire codecs (RFC 1928) and username/password sub-negotiation (RFC 1929).
 *
 * Parsers are incremental: given the bytes received so far they return undefined when more are
 * needed, the decoded message plus the number of bytes it used when complete, and throw a
 * ProtocolError (ERR_SOCKS, or ERR_ADDRESS for a bad address) as soon as the bytes cannot be
 * the start of a valid message. Encoders validate their input and return a fresh Buffer.
 */

export const SOCKS_VERSION = 5;
/** RFC 1929 sub-negotiation version. */
export const USERPASS_VERSION = 1;

export const AUTH_NONE = 0x00;
export const AUTH_USERPASS = 0x02;
export const AUTH_NO_ACCEPTABLE = 0xff;

export const CMD_CONNECT = 1;
export const CMD_BIND = 2;
export const CMD_UDP_ASSOCIATE = 3;

export const REP = {
  SUCCEEDED: 0,
  GENERAL_FAILURE: 1,
  NOT_ALLOWED: 2,
  NETWORK_UNREACHABLE: 3,
  HOST_UNREACHABLE: 4,
  CONNECTION_REFUSED: 5,
  TTL_EXPIRED: 6,
  COMMAND_NOT_SUPPORTED: 7,
  ADDRESS_TYPE_NOT_SUPPORTED: 8,
} as const;

const UNSPECIFIED: SocksAddress = { type: 'ipv4', host: '0.0.0.0', port: 0 };

function socksError(message: string): ProtocolError {
  return new ProtocolError('ERR_SOCKS', message);
}

function checkByte(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw socksError(`${name} ${v} outside 0..255`);
}

function checkVersion(buf: Uint8Array, what: string): void {
  if (buf.length > 0 && buf[0] !== SOCKS_VERSION) {
    throw socksError(`${what}: version ${buf[0]} is not SOCKS5`);
  }
}

// ---------------------------------------------------------------------------------------------
// Method negotiation: VER | NMETHODS | METHODS (1..255)  ->  VER | METHOD

export function parseGreeting(buf: Uint8Array): { methods: number[]; length: number } | undefined {
  checkVersion(buf, 'greeting');
  if (buf.length < 2) return undefined;
  const n = buf[1]!;
  if (n === 0) throw socksError('greeting offers no authentication methods');
  if (buf.length < 2 + n) return undefined;
  return { methods: Array.from(buf.subarray(2, 2 + n)), length: 2 + n };
}

export function encodeGreeting(methods: number[]): Buffer {
  if (methods.length < 1 || methods.length > 255) throw socksError('greeting must offer 1..255 methods');
  methods.forEach((m) => checkByte('method', m));
  return Buffer.from([SOCKS_VERSION, methods.length, ...methods]);
}

export function encodeMethodSelection(method: number): Buffer {
  checkByte('method', method);
  return Buffer.from([SOCKS_VERSION, method]);
}

/** Client side: the server's VER | METHOD answer. */
export function parseMethodSelection(buf: Uint8Array): { method: number; length: number } | undefined {
  checkVersion(buf, 'method selection');
  if (buf.length < 2) return undefined;
  return { method: buf[1]!, length: 2 };
}

// ---------------------------------------------------------------------------------------------
// RFC 1929: VER(1) | ULEN | UNAME | PLEN | PASSWD  ->  VER(1) | STATUS (0 = success)
// The RFC says 1..255 bytes for each; we also accept empty fields (some clients send an empty
// password) and leave the decision to the credential check.

export function parseUserPassAuth(
  buf: Uint8Array,
): { username: string; password: string; length: number } | undefined {
  if (buf.length > 0 && buf[0] !== USERPASS_VERSION) {
    throw socksError(`username/password auth: version ${buf[0]} is not 1`);
  }
  if (buf.length < 2) return undefined;
  const ulen = buf[1]!;
  if (buf.length < 2 + ulen + 1) return undefined;
  const plen = buf[2 + ulen]!;
  const total = 2 + ulen + 1 + plen;
  if (buf.length < total) return undefined;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  return {
    username: b.toString('utf8', 2, 2 + ulen),
    password: b.toString('utf8', 3 + ulen, total),
    length: total,
  };
}

export function encodeUserPassAuth(username: string, password: string): Buffer {
  const u = Buffer.from(username, 'utf8');
  const p = Buffer.from(password, 'utf8');
  if (u.length > 255) throw socksError('username longer than 255 bytes');
  if (p.length > 255) throw socksError('password longer than 255 bytes');
  return Buffer.concat([Buffer.from([USERPASS_VERSION, u.length]), u, Buffer.from([p.length]), p]);
}

export function encodeUserPassReply(ok: boolean): Buffer {
  return Buffer.from([USERPASS_VERSION, ok ? 0 : 1]);
}

/** Client side: VER(1) | STATUS. */
export function parseUserPassReply(buf: Uint8Array): { ok: boolean; length: number } | undefined {
  if (buf.length > 0 && buf[0] !== USERPASS_VERSION) {
    throw socksError(`username/password reply: version ${buf[0]} is not 1`);
  }
  if (buf.length < 2) return undefined;
  return { ok: buf[1] === 0, length: 2 };
}

// ---------------------------------------------------------------------------------------------
// Request: VER | CMD | RSV(0) | ATYP DST.ADDR DST.PORT
// Reply:   VER | REP | RSV(0) | ATYP BND.ADDR BND.PORT
// An unknown CMD is returned as is (the server answers COMMAND_NOT_SUPPORTED); an unknown ATYP
// throws ERR_ADDRESS (the server answers ADDRESS_TYPE_NOT_SUPPORTED).

function parseVerCodeAddr(
  buf: Uint8Array,
  what: string,
): { code: number; address: SocksAddress; length: number } | undefined {
  checkVersion(buf, what);
  if (buf.length >= 3 && buf[2] !== 0) throw socksError(`${what}: reserved byte is ${buf[2]}, not 0`);
  if (buf.length < 4) return undefined;
  const a = decodeAddress(buf, 3);
  if (a === undefined) return undefined;
  return { code: buf[1]!, address: a.address, length: 3 + a.length };
}

export function parseRequest(
  buf: Uint8Array,
): { command: number; address: SocksAddress; length: number } | undefined {
  const r = parseVerCodeAddr(buf, 'request');
  return r && { command: r.code, address: r.address, length: r.length };
}

export function encodeRequest(command: number, address: SocksAddress): Buffer {
  checkByte('command', command);
  return Buffer.concat([Buffer.from([SOCKS_VERSION, command, 0]), encodeAddress(address)]);
}

export function encodeReply(rep: number, bound: SocksAddress = UNSPECIFIED): Buffer {
  checkByte('reply code', rep);
  return Buffer.concat([Buffer.from([SOCKS_VERSION, rep, 0]), encodeAddress(bound)]);
}

export function parseReply(
  buf: Uint8Array,
): { rep: number; bound: SocksAddress; length: number } | undefined {
  const r = parseVerCodeAddr(buf, 'reply');
  return r && { rep: r.code, bound: r.address, length: r.length };
}

// ---------------------------------------------------------------------------------------------
// UDP (RFC 1928 §7): RSV(2) | FRAG | ATYP DST.ADDR DST.PORT | DATA
// One datagram is always complete, so the parser throws instead of asking for more. RSV is
// ignored on input (as common implementations do) and written as zero.

export function encodeUdpHeader(address: SocksAddress, frag = 0): Buffer {
  checkByte('frag', frag);
  return Buffer.concat([Buffer.from([0, 0, frag]), encodeAddress(address)]);
}

/** `data` is a view into `buf`, not a copy. */
export function parseUdpDatagram(buf: Uint8Array): { frag: number; address: SocksAddress; data: Buffer } {
  if (buf.length < 4) throw socksError(`UDP datagram of ${buf.length} bytes is shorter than its header`);
  const a = decodeAddress(buf, 3);
  if (a === undefined) throw socksError('UDP datagram ends inside its address');
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  return { frag: buf[2]!, address: a.address, data: b.subarray(3 + a.length) };
}
