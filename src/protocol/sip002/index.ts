import { isIPv6 } from 'node:net';
import { ProtocolError } from '../errors.js';
import {
  formatTransportParams,
  parseTransportParams,
  TRANSPORT_PARAMS,
  type SsTransport,
} from './transport.js';

/**
 * ss:// access URLs (SIP002), plus the forms real clients hand around:
 *
 *   ss://BASE64URL(method:password)@host:port[/][?plugin=name%3Bopts][&prefix=...][#tag]
 *   ss://PCT(method):PCT(password)@host:port...          (plain userinfo; required for 2022-* methods)
 *   ss://BASE64(method:password@host:port)[#tag]          (legacy, pre-SIP002; password not encoded)
 *
 * `prefix` is Outline's salt prefix: the query value, percent-decoded as UTF-8, is a string whose
 * code points (each 0..255) are the prefix bytes, so byte 0xA8 is written %C2%A8. A value that
 * is not valid UTF-8 after percent-decoding is taken as raw bytes (lenient; Outline rejects it).
 *
 * Error messages name the part that is wrong and never echo the password (nor, to keep access
 * URLs out of logs, the userinfo or host).
 */
export interface SsKey {
  method: string;
  password: string;
  host: string;
  port: number;
  tag?: string;
  plugin?: string;
  pluginOptions?: string;
  prefix?: Uint8Array;
  /**
   * UDP inside the stream as sing's UDP-over-TCP of this version (protocol/uot.ts): `uot=1|2`,
   * or mihomo's `udp-over-tcp=true` (version 1, mihomo's default), as mihomo's link converter reads them.
   */
  uot?: 1 | 2;
  /** A transport in Xray's share-link parameters (`type=grpc&serviceName=…`): ./transport.ts. */
  transport?: SsTransport;
}

export interface FormatOptions {
  /** Userinfo form. Default: 'plain' for 2022-* methods (SIP002 requires it), 'base64' otherwise. */
  form?: 'base64' | 'plain';
}

function urlError(message: string): ProtocolError {
  return new ProtocolError('ERR_URL', `invalid ss:// URL: ${message}`);
}

const METHOD_RE = /^[A-Za-z0-9._+-]+$/;
const BASE64_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function pctDecode(s: string, part: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw urlError(`${part} has a malformed percent-encoding`);
  }
}

function pctDecodeBytes(s: string, part: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw urlError(`${part} has a malformed percent-encoding`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (c === 0x2b /* + */) {
      out.push(0x20); // form encoding: '+' is a space in query values
    } else {
      const cp = s.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      for (const b of Buffer.from(ch, 'utf8')) out.push(b);
      i += ch.length - 1;
    }
  }
  return Uint8Array.from(out);
}

function queryValue(s: string, part: string): string {
  return pctDecode(s.replace(/\+/g, ' '), part);
}

function decodeBase64Text(s: string, part: string): string {
  if (!BASE64_RE.test(s) || s.replace(/=+$/, '').length % 4 === 1) {
    throw urlError(`${part} is neither base64 nor percent-encoded method:password`);
  }
  try {
    return utf8.decode(Buffer.from(s, 'base64'));
  } catch {
    throw urlError(`${part} decodes to bytes that are not UTF-8 text`);
  }
}

function splitCredentials(text: string, part: string): { method: string; password: string } {
  const colon = text.indexOf(':');
  if (colon === -1) throw urlError(`${part} has no ":" between method and password`);
  return { method: text.slice(0, colon), password: text.slice(colon + 1) };
}

function checkCredentials(c: { method: string; password: string }): void {
  if (c.method.length === 0) throw urlError('method is empty');
  if (!METHOD_RE.test(c.method))
    throw urlError('method contains characters other than letters, digits and "._+-"');
  if (c.password.length === 0) throw urlError('password is empty');
}

/**
 * What is wrong with a key's host (a name, an IPv4 address, or an IPv6 address with an optional
 * zone, unbracketed), or undefined: for hosts that come as parts (SIP008, Outline configs) too.
 */
export function keyHostProblem(host: string): string | undefined {
  if (host.length === 0) return 'host is empty';
  if (host.includes(':')) {
    const zone = host.indexOf('%');
    // eslint-disable-next-line no-control-regex
    if (!isIPv6(zone === -1 ? host : host.slice(0, zone)) || /[\x00-\x20\x7f]/.test(host))
      return 'host contains ":" but is not an IPv6 address';
    return undefined;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f/\\?#@[\]<>%]|\p{Cs}/u.test(host))
    return 'host contains characters not allowed in a host name';
  // What a URL cannot hold (a WebSocket key dials one): "^", IDNA-disallowed characters, a
  // dotted name ending in a number that is no IPv4 address ("192A.0.2.3").
  try {
    new URL(`ws://${host}/`);
  } catch {
    return 'host is not a valid host name or IPv4 address';
  }
  return undefined;
}

function checkHostName(host: string): void {
  const problem = keyHostProblem(host);
  if (problem !== undefined) throw urlError(problem);
}

function pctEncode(s: string, part: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    throw urlError(`${part} is not well-formed Unicode (lone surrogate)`);
  }
}

function parseHostPort(s: string): { host: string; port: number } {
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close === -1) throw urlError('IPv6 host has no closing "]"');
    host = pctDecode(s.slice(1, close), 'host');
    if (keyHostProblem(host) !== undefined || !host.includes(':'))
      throw urlError('bracketed host is not an IPv6 address');
    if (s[close + 1] !== ':') throw urlError('port is missing after the IPv6 host');
    portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon === -1) throw urlError('port is missing (expected host:port)');
    host = pctDecode(s.slice(0, colon), 'host');
    portText = s.slice(colon + 1);
    if (host.includes(':')) throw urlError('IPv6 host must be written in brackets, e.g. [2001:db8::1]:8388');
    checkHostName(host);
  }
  if (!/^[0-9]{1,5}$/.test(portText)) throw urlError('port is not a decimal number');
  const port = Number(portText);
  if (port < 1 || port > 65535) throw urlError('port is outside 1..65535');
  return { host, port };
}

/** Bytes from Outline's prefix string (code points 0..255), or raw bytes if not UTF-8. */
function decodePrefix(raw: string): Uint8Array {
  const bytes = pctDecodeBytes(raw, 'prefix');
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return bytes;
  }
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff)
      throw urlError('prefix contains a character above U+00FF (each character must stand for one byte)');
    out[i] = c;
  }
  return out;
}

function parseLegacy(body: string): { method: string; password: string; host: string; port: number } {
  const text = decodeBase64Text(
    pctDecode(body, 'legacy base64 body'),
    'body (no "@", so expected legacy base64)',
  );
  const lat = text.lastIndexOf('@');
  if (lat === -1) throw urlError('legacy base64 body has no "@" between credentials and host');
  const creds = splitCredentials(text.slice(0, lat), 'legacy credentials');
  checkCredentials(creds);
  return { ...creds, ...parseHostPort(text.slice(lat + 1)) };
}

export function parseSsUrl(url: string): SsKey {
  if (typeof url !== 'string') throw urlError('not a string');
  const u = url.trim();
  if (!/^ss:\/\//i.test(u)) throw urlError('scheme must be "ss://"');
  let rest = u.slice(5);

  let tag: string | undefined;
  const hash = rest.indexOf('#');
  if (hash !== -1) {
    tag = pctDecode(rest.slice(hash + 1), 'tag');
    rest = rest.slice(0, hash);
  }

  let query: string | undefined;
  const q = rest.indexOf('?');
  if (q !== -1) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  // Authority ends at the first "/" (only an empty path is allowed). Base64 userinfo may contain
  // "/" in the standard alphabet, so look for the path after the last "@" when there is one.
  const at = rest.lastIndexOf('@');
  if (at !== -1) {
    const slash = rest.indexOf('/', at + 1);
    if (slash !== -1) {
      if (slash !== rest.length - 1) throw urlError('unexpected path after host:port (only "/" is allowed)');
      rest = rest.slice(0, slash);
    }
  }

  let method: string;
  let password: string;
  let host: string;
  let port: number;
  if (at === -1) {
    // Legacy: the whole authority is base64 of method:password@host:port. "/" is a base64
    // character, so a trailing "/" (empty path) is stripped only if the whole body fails.
    if (rest.length === 0) throw urlError('nothing after "ss://"');
    try {
      ({ method, password, host, port } = parseLegacy(rest));
    } catch (err) {
      if (!rest.endsWith('/') || rest.length === 1) throw err;
      try {
        ({ method, password, host, port } = parseLegacy(rest.slice(0, -1)));
      } catch {
        throw err;
      }
    }
  } else {
    const userinfo = rest.slice(0, at);
    const hostPort = rest.slice(at + 1);
    if (userinfo.length === 0) throw urlError('userinfo (method:password) is empty');
    if (userinfo.includes(':')) {
      const colon = userinfo.indexOf(':');
      method = pctDecode(userinfo.slice(0, colon), 'method');
      password = pctDecode(userinfo.slice(colon + 1), 'password');
    } else {
      const decoded = pctDecode(userinfo, 'userinfo');
      const text = decoded.includes(':') ? decoded : decodeBase64Text(decoded, 'userinfo');
      ({ method, password } = splitCredentials(text, 'userinfo'));
    }
    checkCredentials({ method, password });
    ({ host, port } = parseHostPort(hostPort));
  }

  const key: SsKey = { method, password, host, port };
  if (query !== undefined && query.length > 0) {
    const seen = new Set<string>();
    const transport = new Map<string, string>();
    for (const pair of query.split('&')) {
      if (pair.length === 0) continue;
      const eq = pair.indexOf('=');
      const name = queryValue(eq === -1 ? pair : pair.slice(0, eq), 'query parameter name');
      const raw = eq === -1 ? '' : pair.slice(eq + 1);
      if (seen.has(name)) continue; // first occurrence wins
      seen.add(name);
      if (name === 'plugin') {
        const value = queryValue(raw, 'plugin');
        if (value.length === 0) continue;
        const semi = value.indexOf(';');
        const plugin = semi === -1 ? value : value.slice(0, semi);
        if (plugin.length === 0) throw urlError('plugin name is empty');
        key.plugin = plugin;
        if (semi !== -1) key.pluginOptions = value.slice(semi + 1);
      } else if (name === 'prefix') {
        key.prefix = decodePrefix(raw);
      } else if (name === 'uot' && (raw === '1' || raw === '2')) {
        key.uot = raw === '1' ? 1 : 2;
      } else if (name === 'udp-over-tcp' && raw === 'true') {
        key.uot ??= 1;
      } else if (TRANSPORT_PARAMS.has(name)) {
        transport.set(name, queryValue(raw, name));
      }
      // SIP002: unsupported parameters are ignored.
    }
    const t = parseTransportParams(transport);
    if (t !== undefined && key.plugin !== undefined) throw urlError(`type=${t.type} and plugin= together`);
    if (t !== undefined) key.transport = t;
  }
  if (tag !== undefined) key.tag = tag;
  return key;
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

function encodePrefix(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return encodeURIComponent(s);
}

export function formatSsUrl(key: SsKey, opts: FormatOptions = {}): string {
  checkCredentials(key);
  if (!Number.isInteger(key.port) || key.port < 1 || key.port > 65535)
    throw urlError('port is outside 1..65535');
  if (key.plugin !== undefined && key.plugin.length === 0) throw urlError('plugin name is empty');
  if (key.plugin !== undefined && key.plugin.includes(';')) throw urlError('plugin name contains ";"');
  if (key.pluginOptions !== undefined && key.plugin === undefined)
    throw urlError('plugin options without a plugin');

  const is2022 = key.method.startsWith('2022-');
  const form = opts.form ?? (is2022 ? 'plain' : 'base64');
  if (form === 'base64' && is2022)
    throw urlError('2022-* methods must use plain (percent-encoded) userinfo (SIP002)');
  const plain = `${pctEncode(key.method, 'method')}:${pctEncode(key.password, 'password')}`;
  const userinfo = form === 'plain' ? plain : base64url(`${key.method}:${key.password}`);

  checkHostName(key.host);
  const host = key.host.includes(':') ? `[${key.host.replace(/%/g, '%25')}]` : pctEncode(key.host, 'host');

  const params: string[] = [];
  if (key.plugin !== undefined) {
    const v = key.pluginOptions !== undefined ? `${key.plugin};${key.pluginOptions}` : key.plugin;
    params.push(`plugin=${pctEncode(v, 'plugin')}`);
  }
  if (key.prefix !== undefined) params.push(`prefix=${encodePrefix(key.prefix)}`);
  if (key.uot !== undefined) params.push(`uot=${key.uot}`);
  if (key.transport !== undefined) params.push(...formatTransportParams(key.transport));

  let out = `ss://${userinfo}@${host}:${key.port}`;
  if (params.length > 0) out += `/?${params.join('&')}`;
  if (key.tag !== undefined) out += `#${pctEncode(key.tag, 'tag')}`;
  return out;
}
