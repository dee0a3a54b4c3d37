import { ProtocolError } from '../errors.js';
import { formatSsUrl } from './index.js';

/**
 * SIP003 plugin options (SS_PLUGIN_OPTIONS, the part after `plugin=name;` in a SIP002 URL):
 * `key=value` pairs and bare flags separated by `;`, with `\` escaping `;`, `=` and `\` itself.
 * A bare flag maps to true; a repeated key keeps its last value.
 */
export function parsePluginOptions(text: string): Map<string, string | true> {
  const out = new Map<string, string | true>();
  let key = '';
  let value = '';
  let inValue = false;
  const flush = (): void => {
    if (key.length === 0 && !inValue) return;
    if (key.length === 0) throw new ProtocolError('ERR_URL', 'plugin option without a name');
    out.set(key, inValue ? value : true);
    key = '';
    value = '';
    inValue = false;
  };
  for (let i = 0; i < text.length; i++) {
    let c = text[i]!;
    if (c === '\\') {
      if (i + 1 >= text.length) throw new ProtocolError('ERR_URL', 'plugin options end with a lone "\\"');
      c = text[++i]!;
    } else if (c === ';') {
      flush();
      continue;
    } else if (c === '=' && !inValue) {
      inValue = true;
      continue;
    }
    if (inValue) value += c;
    else key += c;
  }
  flush();
  return out;
}

/** SIP003 plugin names whose wire Ladder speaks itself (Debian calls v2ray-plugin ss-v2ray-plugin). */
export const V2RAY_PLUGIN_NAMES: ReadonlySet<string> = new Set(['v2ray-plugin', 'ss-v2ray-plugin']);

/** What a SIP002 key's `plugin=v2ray-plugin;…` asks for (v2ray-plugin's client defaults). */
export interface V2rayPluginOptions {
  tls: boolean;
  /** Host header and TLS server name (default cloudfront.com, as v2ray-plugin). */
  host: string;
  path: string;
  /** Mux.Cool on (v2ray-plugin's mux defaults to 1; 0 turns it off). */
  mux: boolean;
}

/**
 * Interpret v2ray-plugin's options for a client. Only websocket mode is supported (quic is
 * refused); options that only matter to v2ray-plugin's own process (loglevel, fast-open, cert
 * paths) are ignored.
 */
export function parseV2rayPluginOptions(text: string | undefined): V2rayPluginOptions {
  const o = parsePluginOptions(text ?? '');
  const str = (k: string): string | undefined => {
    const v = o.get(k);
    return v === undefined ? undefined : v === true ? '' : v;
  };
  const mode = str('mode') ?? 'websocket';
  if (mode !== 'websocket')
    throw new ProtocolError('ERR_URL', `v2ray-plugin mode "${mode}" is not supported (only websocket)`);
  if (o.has('server')) throw new ProtocolError('ERR_URL', 'v2ray-plugin "server" option in a client key');
  const tlsOpt = o.get('tls');
  const path = str('path') || '/';
  const muxText = str('mux') ?? '1';
  const mux = Number(muxText);
  if (!Number.isInteger(mux) || mux < 0)
    throw new ProtocolError('ERR_URL', `v2ray-plugin mux "${muxText}" is not a count`);
  return {
    tls: tlsOpt !== undefined && tlsOpt !== 'false' && tlsOpt !== '0',
    host: str('host') || 'cloudfront.com',
    path: path.startsWith('/') ? path : `/${path}`,
    mux: mux > 0,
  };
}

/**
 * A web front's public endpoint: what a v2ray-plugin key, a Clash/sing-box entry or a
 * subscription points at. `host` is dialled and sent as Host (and SNI with TLS); `path` is the
 * secret path (a secret: print it only where keys are printed); `mux` says the server takes
 * Mux.Cool (Ladder's takes raw WebSockets too).
 */
export interface WebEndpoint {
  host: string;
  port: number;
  path: string;
  tls: boolean;
  mux: boolean;
}

/** Escape a plugin option value (SIP003: `\` before `;`, `=` and `\`). */
function pluginValue(v: string): string {
  return v.replace(/[\\;=]/g, (c) => `\\${c}`);
}

/** `mode=websocket;path=…;host=…[;tls]` for `ep`, as v2ray-plugin reads it. */
export function formatV2rayPluginOptions(ep: Pick<WebEndpoint, 'host' | 'path' | 'tls'>): string {
  const opts = ['mode=websocket', `path=${pluginValue(ep.path)}`, `host=${pluginValue(ep.host)}`];
  if (ep.tls) opts.push('tls');
  return opts.join(';');
}

/**
 * A key's SIP002 URL over a web front, for v2ray-plugin clients (ss-local + v2ray-plugin,
 * v2rayNG, Clash/mihomo, sing-box, ladder client).
 */
export function webKeyUrlFor(key: { method: string; secret: string }, ep: WebEndpoint, tag?: string): string {
  return formatSsUrl({
    method: key.method,
    password: key.secret,
    host: ep.host,
    port: ep.port,
    ...(tag !== undefined ? { tag } : {}),
    plugin: 'v2ray-plugin',
    pluginOptions: formatV2rayPluginOptions(ep),
  });
}
