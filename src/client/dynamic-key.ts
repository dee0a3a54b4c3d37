/**
 * The bodies a dynamic key (ssconf:// or https://) may hold, read into tunnel endpoints. Pure:
 * dynamic-fetch.ts gets the text, key-source.ts keeps it fresh.
 *
 * Accepted, as Outline's client accepts them (outline-apps client/config.md), plus the forms
 * other apps hand around:
 *
 * - Outline legacy JSON (or YAML): `{server, server_port, method, password, prefix?}`;
 * - a bare `ss://` URL (SIP002, `?prefix=`), or several, one a line, or base64 of such a list
 *   (v2rayNG, Shadowrocket, our subscriptions);
 * - Outline's YAML/JSON tunnel config: `transport:` with `$type: tcpudp` (its `tcp` is used;
 *   `udp` is kept for --udp), `$type: shadowsocks` dialers whose `endpoint` is "host:port",
 *   `$type: websocket` (url, optional `endpoint` to dial instead: fronting), `$type: dial`
 *   without a dialer, and `$type: first-supported` lists at either level; YAML anchors and `<<`;
 * - `error: {message, details?}`: the server's refusal, to show in plain words;
 * - SIP008: `{version: 1, servers: [{server, server_port, method, password, plugin?, ...}]}`.
 *
 * Several options (first-supported, SIP008 servers, a list of links) become several endpoints in
 * order: the picker (picker.ts) tries them and remembers what got through. An option this client
 * cannot use (a multi-hop `dial` with a dialer, an unknown `$type`) is skipped in a list and
 * refused alone. Errors are one line naming the place (`transport.tcp.endpoint: …`), never a
 * password.
 */
import { isIP } from 'node:net';
import { ProtocolError } from '../protocol/errors.js';
import { yamlPackage } from '../shared/yaml.js';
import type { SsKey } from '../protocol/sip002/index.js';
import type { WsTransportOptions } from '../transport/ws-dialer.js';
import { endpointFromKey, endpointFromParts, lazyWebSocketNextHop, type KeyEndpoint } from './key.js';

export type DynamicKeyBody =
  | {
      kind: 'endpoints';
      /** In the server's order of preference. */
      endpoints: KeyEndpoint[];
      /** The `udp` side of a tcpudp config, when it is plain Shadowsocks. */
      udp?: KeyEndpoint;
      format: 'outline-json' | 'ss-url' | 'ss-list' | 'outline-yaml' | 'sip008';
    }
  | { kind: 'error'; message: string; details?: string };

/** The YAML parser, loaded on first use: a client with a static key never carries it (test/cli/lazy-loading.test.ts). */
function parseYaml(text: string): unknown {
  return yamlPackage().parse(text, { merge: true, maxAliasCount: 100, prettyErrors: false });
}

function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The most endpoints one body may give (bounds every later loop). */
export const MAX_DYNAMIC_ENDPOINTS = 32;

function bad(where: string, msg: string): ProtocolError {
  return new ProtocolError('ERR_CONFIG', `dynamic key: ${where ? `${where}: ` : ''}${msg}`);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Outline's prefix strings: each code point 0..255 is one byte. */
function prefixBytes(v: unknown, where: string): Uint8Array | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw bad(where, 'prefix must be a string');
  const out = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c > 0xff) throw bad(where, `prefix character ${i + 1} is above U+00FF (each character is one byte)`);
    out[i] = c;
  }
  return out;
}

function str(o: Obj, field: string, where: string): string {
  const v = o[field];
  if (typeof v !== 'string' || v.length === 0) throw bad(where, `"${field}" must be a non-empty string`);
  return v;
}

function portOf(v: unknown, where: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535)
    throw bad(where, 'port must be an integer 1..65535');
  return n;
}

/** "host:port" or "[v6]:port". */
function splitHostPort(text: string, where: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]\s]+):(\d+)$/.exec(text);
  if (!m) throw bad(where, 'endpoint must be "host:port"');
  return { host: m[1]!, port: portOf(m[2], where) };
}

/** Check and build one Shadowsocks endpoint; checker messages are scrubbed of the password. */
function build(parts: SsKey, where: string): KeyEndpoint {
  return endpointFromParts(
    parts,
    (msg) =>
      `dynamic key: ${where}: ${parts.password.length >= 4 ? msg.split(parts.password).join('[redacted]') : msg}`,
    'fetched',
  );
}

function legacy(o: Obj, where: string): KeyEndpoint {
  const at = (f: string): string => (where ? `${where}.${f}` : f);
  const parts: SsKey = {
    host: str(o, 'server', where),
    port: portOf(o.server_port, at('server_port')),
    method: str(o, 'method', where),
    password: str(o, 'password', where),
  };
  const prefix = prefixBytes(o.prefix, at('prefix'));
  if (prefix) parts.prefix = prefix;
  if (typeof o.plugin === 'string' && o.plugin.length > 0) {
    parts.plugin = o.plugin;
    if (typeof o.plugin_opts === 'string') parts.pluginOptions = o.plugin_opts;
  }
  const tag = typeof o.remarks === 'string' && o.remarks ? o.remarks : undefined;
  if (tag !== undefined) parts.tag = tag;
  return build(parts, where || 'config');
}

function sip008(o: Obj): DynamicKeyBody {
  if (!Array.isArray(o.servers)) throw bad('servers', 'must be a list (SIP008)');
  if (o.servers.length === 0)
    throw bad(
      'servers',
      'the list is empty: the server offers no endpoint for this key now (disabled, expired or over quota?)',
    );
  const endpoints = o.servers.slice(0, MAX_DYNAMIC_ENDPOINTS).map((s, i) => {
    if (!isObj(s)) throw bad(`servers[${i}]`, 'must be an object');
    return legacy(s, `servers[${i}]`);
  });
  return { kind: 'endpoints', endpoints, format: 'sip008' };
}

/** An EndpointConfig: where the Shadowsocks stream goes. Returns one entry per usable option. */
type Hop = { host: string; port: number; websocket?: WsTransportOptions };

function endpoints(v: unknown, where: string, depth: number): Hop[] {
  if (depth > 8) throw bad(where, 'nested too deep');
  if (typeof v === 'string') return [splitHostPort(v, where)];
  if (!isObj(v)) throw bad(where, 'endpoint must be "host:port" or an object with $type');
  const type = v.$type;
  if (type === 'first-supported') return options(v, where, (o, w) => endpoints(o, w, depth + 1));
  if (type === 'dial') {
    if (v.dialer !== undefined && v.dialer !== null)
      throw bad(where, 'a "dial" endpoint through another dialer (multi-hop) is not supported');
    return [splitHostPort(str(v, 'address', where), `${where}.address`)];
  }
  if (type === 'websocket') return [websocketHop(v, where, depth)];
  throw bad(
    where,
    `endpoint $type ${JSON.stringify(type)} is not supported (websocket, dial, first-supported)`,
  );
}

function websocketHop(v: Obj, where: string, depth: number): Hop {
  let url: URL;
  try {
    url = new URL(str(v, 'url', where));
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw bad(`${where}.url`, 'not a URL');
  }
  const scheme = { 'wss:': 'wss', 'https:': 'wss', 'ws:': 'ws', 'http:': 'ws' }[url.protocol];
  if (!scheme) throw bad(`${where}.url`, 'scheme must be wss, https, ws or http');
  const defaultPort = scheme === 'wss' ? 443 : 80;
  const path = `${url.pathname}${url.search}`;
  const name = url.hostname.replace(/^\[|\]$/g, '');
  let dial = { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : defaultPort };
  if (v.endpoint !== undefined && v.endpoint !== null) {
    const inner = endpoints(v.endpoint, `${where}.endpoint`, depth + 1);
    if (inner.length === 0 || inner[0]!.websocket) throw bad(`${where}.endpoint`, 'must be "host:port"');
    dial = inner[0]!;
  }
  const h = dial.host.includes(':') ? `[${dial.host}]` : dial.host;
  return {
    ...dial,
    websocket: {
      url: `${scheme}://${h}:${dial.port}${path}`,
      host: url.host,
      // RFC 6066: no IP address as SNI (Node warns DEP0123); the dialler sends none for an IP.
      ...(scheme === 'wss' && !isIP(name) ? { servername: name } : {}),
      mux: false,
    },
  };
}

/** `first-supported`: every option this client can use, in order; unusable ones are skipped. */
function options<T>(v: Obj, where: string, each: (o: unknown, where: string) => T[]): T[] {
  if (!Array.isArray(v.options) || v.options.length === 0)
    throw bad(where, 'first-supported needs a non-empty "options" list');
  const out: T[] = [];
  let firstErr: unknown;
  v.options.slice(0, MAX_DYNAMIC_ENDPOINTS).forEach((o, i) => {
    try {
      out.push(...each(o, `${where}.options[${i}]`));
    } catch (err) {
      firstErr ??= err;
    }
  });
  if (out.length === 0) throw firstErr instanceof Error ? firstErr : bad(where, 'no usable option');
  return out;
}

/** A DialerConfig for TCP: Shadowsocks over one or more endpoints. */
function dialer(v: unknown, where: string, depth: number): KeyEndpoint[] {
  if (depth > 8) throw bad(where, 'nested too deep');
  if (typeof v === 'string' && /^ss:\/\//i.test(v.trim())) return [endpointFromKey(v, 'fetched')];
  if (!isObj(v)) throw bad(where, 'must be an object with $type: shadowsocks');
  if (v.$type === 'first-supported') return options(v, where, (o, w) => dialer(o, w, depth + 1));
  if (v.$type === 'tcpudp') return dialer(v.tcp, `${where}.tcp`, depth + 1);
  if (v.$type !== 'shadowsocks')
    throw bad(
      where,
      `$type ${JSON.stringify(v.$type)} is not supported (shadowsocks, tcpudp, first-supported)`,
    );
  const cipher = str(v, 'cipher', where);
  const secret = str(v, 'secret', where);
  const prefix = prefixBytes(v.prefix, `${where}.prefix`);
  return endpoints(v.endpoint, `${where}.endpoint`, depth + 1).map((hop) => {
    const ep = build(
      { host: hop.host, port: hop.port, method: cipher, password: secret, ...(prefix ? { prefix } : {}) },
      where,
    );
    return hop.websocket
      ? { ...ep, websocket: hop.websocket, nextHop: lazyWebSocketNextHop(hop.websocket) }
      : ep;
  });
}

/** The UDP side of a tcpudp config, when it is plain Shadowsocks to host:port (else undefined). */
function udpSide(t: Obj): KeyEndpoint | undefined {
  try {
    const first = dialer(t.udp, 'transport.udp', 0).find((e) => !e.websocket);
    return first;
  } catch {
    return undefined;
  }
}

function tunnelConfig(o: Obj): DynamicKeyBody {
  if (o.error !== undefined) {
    const e = o.error;
    if (!isObj(e) || typeof e.message !== 'string' || !e.message.trim())
      throw bad('error', 'must be an object with a "message" string');
    return {
      kind: 'error',
      message: oneLine(e.message),
      ...(typeof e.details === 'string' && e.details.trim() ? { details: oneLine(e.details) } : {}),
    };
  }
  if (o.transport !== undefined) {
    const t = o.transport;
    const eps = dialer(t, 'transport', 0).slice(0, MAX_DYNAMIC_ENDPOINTS);
    const udp = isObj(t) && t.$type === 'tcpudp' ? udpSide(t) : undefined;
    return { kind: 'endpoints', endpoints: eps, ...(udp ? { udp } : {}), format: 'outline-yaml' };
  }
  if (o.servers !== undefined) return sip008(o);
  if (o.server !== undefined || o.server_port !== undefined)
    return { kind: 'endpoints', endpoints: [legacy(o, '')], format: 'outline-json' };
  throw bad('', 'no "transport", "error", "server" or "servers" field: not a dynamic key config');
}

/** Server-supplied text, shown to the user: one line, no control characters, bounded. */
function oneLine(s: string): string {
  let t = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    t += c < 0x20 || (c >= 0x7f && c <= 0x9f) ? ' ' : ch;
  }
  t = t.replace(/ {2,}/g, ' ').trim();
  return t.length > 300 ? `${t.slice(0, 300)}…` : t;
}

function ssLines(text: string): string[] | undefined {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  return lines.length > 0 && lines.every((l) => /^ss:\/\//i.test(l)) ? lines : undefined;
}

function ssList(lines: string[]): DynamicKeyBody {
  if (lines.length === 1)
    return { kind: 'endpoints', endpoints: [endpointFromKey(lines[0]!, 'fetched')], format: 'ss-url' };
  const endpoints: KeyEndpoint[] = [];
  let firstErr: unknown;
  lines.slice(0, MAX_DYNAMIC_ENDPOINTS).forEach((l, i) => {
    try {
      endpoints.push(endpointFromKey(l, 'fetched'));
    } catch (err) {
      firstErr ??= new ProtocolError('ERR_CONFIG', `dynamic key: link ${i + 1}: ${(err as Error).message}`);
    }
  });
  if (endpoints.length === 0) throw firstErr as Error;
  return { kind: 'endpoints', endpoints, format: 'ss-list' };
}

/** Read a dynamic key's body (see the top of this file). Throws one-line ProtocolErrors. */
export function parseDynamicKeyBody(body: string): DynamicKeyBody {
  const text = body.replace(/^\uFEFF/, '').trim();
  if (text.length === 0) throw bad('', 'the server sent an empty body');
  const links = ssLines(text);
  if (links) return ssList(links);
  if (/^[A-Za-z0-9+/_=\r\n-]+$/.test(text) && !/^\d+$/.test(text)) {
    const decoded = Buffer.from(text.replace(/\s+/g, ''), 'base64').toString('utf8');
    const list = ssLines(decoded);
    if (list) return ssList(list);
  }
  let doc: unknown;
  try {
    // JSON (what most servers send) without loading the YAML parser; YAML otherwise.
    doc = text.startsWith('{') ? (jsonOrUndefined(text) ?? parseYaml(text)) : parseYaml(text);
  } catch (err) {
    const line = /at line (\d+)/.exec((err as Error).message)?.[1];
    throw bad('', `not JSON or YAML${line ? ` (line ${line})` : ''}, nor ss:// links`);
  }
  if (typeof doc === 'string' && /^ss:\/\//i.test(doc.trim())) return ssList([doc.trim()]);
  if (!isObj(doc)) throw bad('', 'expected an object (JSON or YAML), ss:// links or base64 of them');
  return tunnelConfig(doc);
}

/** The server's refusal as the user reads it: "server says: Quota exceeded — Used 1.00 GiB out of 1.00 GiB". */
export function refusalText(b: { message: string; details?: string }): string {
  return `server says: ${b.message}${b.details ? ` — ${b.details}` : ''}`;
}
