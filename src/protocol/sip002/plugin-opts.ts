import { ProtocolError } from '../errors.js';

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
