/**
 * The client's JSON config file (`ladder client --config FILE`) and rule-file loading. Pure: the
 * CLI reads the files and hands the text here.
 *
 *   parseClientConfig(text, source?) -> ClientConfig          (throws ClientConfigError)
 *   parseRulesText(text, source)     -> RuleSet               (list or Shadowsocks ACL)
 *   parseHostPort(text, what, defaultPort?) -> { host, port }
 *
 * Config format (every field optional except that some server must be given here or by --key):
 *
 *   {
 *     "keys": ["ss://...", "ss://..."],            // each key is one server endpoint, in order
 *     "servers": [                                  // or SIP008 entries (online-config style)
 *       { "server": "198.51.100.7", "server_port": 8388, "method": "chacha20-ietf-poly1305",
 *         "password": "...", "remarks": "tokyo" }
 *     ],
 *     "socks": "127.0.0.1:1080", "http": "127.0.0.1:8118",
 *     "route": "auto", "rules": "rules.txt",       // rules path relative to the config file
 *     "dns": "127.0.0.1:5353", "dnsUpstream": "1.1.1.1:53", "dnsMode": "tunnel",
 *     "shape": true, "residualSeconds": 180, "udp": true
 *   }
 *
 * Errors name the file and the field, never a password or key.
 */
import { isIP } from 'node:net';
import { parseAcl } from './routing/acl.js';
import type { RouteMode } from './routing/router.js';
import { parseRuleList, type RuleSet } from './routing/rules.js';

export class ClientConfigError extends Error {
  override readonly name = 'ClientConfigError';
}

export interface ServerEntry {
  host: string;
  port: number;
  method: string;
  password: string;
  tag?: string;
}

export interface ClientConfig {
  keys: string[];
  servers: ServerEntry[];
  socks?: string | false;
  http?: string;
  route?: RouteMode;
  rules?: string;
  dns?: string;
  dnsUpstream?: string;
  dnsMode?: 'tunnel' | 'stub';
  shape?: boolean;
  residualSeconds?: number;
  /** Relay SOCKS5 UDP ASSOCIATE through the first server's UDP relay. */
  udp?: boolean;
}

const FIELDS = new Set([
  'keys',
  'servers',
  'socks',
  'http',
  'route',
  'rules',
  'dns',
  'dnsUpstream',
  'dnsMode',
  'shape',
  'residualSeconds',
  'udp',
  'version',
  'remarks',
]);

export function parseClientConfig(text: string, source = 'config'): ClientConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ClientConfigError(`${source}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ClientConfigError(`${source}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!FIELDS.has(k)) throw new ClientConfigError(`${source}: unknown field "${k}"`);
  const str = (k: string): string | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '')
      throw new ClientConfigError(`${source}: "${k}" must be a non-empty string`);
    return v;
  };
  const out: ClientConfig = { keys: [], servers: [] };
  if (o.keys !== undefined) {
    if (!Array.isArray(o.keys) || o.keys.some((k) => typeof k !== 'string'))
      throw new ClientConfigError(`${source}: "keys" must be an array of ss:// strings`);
    out.keys = o.keys as string[];
  }
  if (o.servers !== undefined) {
    if (!Array.isArray(o.servers)) throw new ClientConfigError(`${source}: "servers" must be an array`);
    out.servers = o.servers.map((s: unknown, i) => {
      const where = `${source}: servers[${i}]`;
      if (typeof s !== 'object' || s === null) throw new ClientConfigError(`${where} must be an object`);
      const e = s as Record<string, unknown>;
      if (typeof e.server !== 'string' || e.server === '')
        throw new ClientConfigError(`${where}.server must be a host name or IP`);
      const port = e.server_port;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
        throw new ClientConfigError(`${where}.server_port must be an integer 1..65535`);
      if (typeof e.method !== 'string' || e.method === '')
        throw new ClientConfigError(`${where}.method must be a string`);
      if (typeof e.password !== 'string' || e.password === '')
        throw new ClientConfigError(`${where}.password must be a non-empty string`);
      if (e.plugin !== undefined && e.plugin !== '')
        throw new ClientConfigError(`${where}: plugins are not supported`);
      const tag = typeof e.remarks === 'string' ? e.remarks : undefined;
      return { host: e.server, port, method: e.method, password: e.password, ...(tag ? { tag } : {}) };
    });
  }
  if (o.socks === false) out.socks = false;
  else {
    const s = str('socks');
    if (s !== undefined) out.socks = s;
  }
  const assign = <K extends 'http' | 'rules' | 'dns' | 'dnsUpstream'>(k: K): void => {
    const v = str(k);
    if (v !== undefined) out[k] = v;
  };
  assign('http');
  assign('rules');
  assign('dns');
  assign('dnsUpstream');
  const route = str('route');
  if (route !== undefined) out.route = parseRouteMode(route, `${source}: "route"`);
  const mode = str('dnsMode');
  if (mode !== undefined) {
    if (mode !== 'tunnel' && mode !== 'stub')
      throw new ClientConfigError(`${source}: "dnsMode" must be "tunnel" or "stub"`);
    out.dnsMode = mode;
  }
  if (o.shape !== undefined) {
    if (typeof o.shape !== 'boolean') throw new ClientConfigError(`${source}: "shape" must be true or false`);
    out.shape = o.shape;
  }
  if (o.udp !== undefined) {
    if (typeof o.udp !== 'boolean') throw new ClientConfigError(`${source}: "udp" must be true or false`);
    out.udp = o.udp;
  }
  if (o.residualSeconds !== undefined) {
    const r = o.residualSeconds;
    if (typeof r !== 'number' || !Number.isFinite(r) || r < 0 || r > 86_400)
      throw new ClientConfigError(`${source}: "residualSeconds" must be a number 0..86400`);
    out.residualSeconds = r;
  }
  return out;
}

export function parseRouteMode(text: string, what = '--route'): RouteMode {
  const t = text.trim().toLowerCase();
  if (t === 'auto' || t === 'proxy' || t === 'direct') return t;
  throw new ClientConfigError(`${what} must be auto, proxy or direct, got "${text}"`);
}

/**
 * A rule file: Shadowsocks ACL when it has [section] lines (or the name ends in .acl), else the
 * list format (routing/rules.ts). Throws RuleSyntaxError naming source:line.
 */
export function parseRulesText(text: string, source: string): RuleSet {
  const acl = /\.acl$/i.test(source) || /^\s*\[[a-z_]+\]\s*$/im.test(text);
  return acl ? parseAcl(text, source) : parseRuleList(text, source);
}

/** "host:port", "[v6]:port", or "host" with `defaultPort`. */
export function parseHostPort(
  text: string,
  what: string,
  defaultPort?: number,
): { host: string; port: number } {
  const s = text.trim();
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
  } else if (isIP(s) === 6) {
    host = s;
  } else {
    const m = /^([^:\s]+)(?::(\d+))?$/.exec(s);
    if (!m) throw new ClientConfigError(`${what} "${text}": expected host:port`);
    host = m[1]!;
    portText = m[2];
  }
  const port = portText !== undefined ? Number(portText) : defaultPort;
  if (port === undefined) throw new ClientConfigError(`${what} "${text}": a port is required`);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new ClientConfigError(`${what} "${text}": port outside 1..65535`);
  return { host, port };
}
