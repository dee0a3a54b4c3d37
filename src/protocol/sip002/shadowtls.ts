/**
 * ShadowTLS v3 in a SIP002 key: the SIP003 plugin `shadow-tls` (ihciah/shadow-tls run as a
 * shadowsocks plugin, src/main.rs get_sip003_arg) reads `host=SNI;passwd=PASSWORD;v3` from
 * SS_PLUGIN_OPTIONS on the client side. That is the one ss:// form of ShadowTLS an existing
 * program reads: mihomo's ss:// converter knows only obfs and v2ray-plugin, and sing-box reads no
 * share links (both take ShadowTLS from their own config: src/api/subscriptions). mihomo's
 * `plugin-opts` names the password `password`; both names are read here.
 */
import { ProtocolError } from '../errors.js';
import { formatSsUrl } from './index.js';
import { parsePluginOptions, pluginValue } from './plugin-opts.js';

export const SHADOW_TLS_PLUGIN = 'shadow-tls';

export interface ShadowTlsKeyOptions {
  /** The handshake site's name: the SNI the client's ClientHello carries. */
  readonly sni: string;
  readonly password: string;
  readonly version: 3;
}

/** `host=SNI;passwd=PASSWORD;v3`, as shadow-tls's SIP003 client reads it. */
export function formatShadowTlsPluginOptions(o: Pick<ShadowTlsKeyOptions, 'sni' | 'password'>): string {
  return `host=${pluginValue(o.sni)};passwd=${pluginValue(o.password)};v3`;
}

/** The plugin options of a `shadow-tls` key; only version 3 is taken (v1/v2 do not resist probing). */
export function parseShadowTlsPluginOptions(text: string | undefined): ShadowTlsKeyOptions {
  const o = parsePluginOptions(text ?? '');
  const str = (k: string): string | undefined => {
    const v = o.get(k);
    return typeof v === 'string' && v.length > 0 ? v : undefined;
  };
  const sni = str('host');
  const password = str('passwd') ?? str('password');
  if (sni === undefined)
    throw new ProtocolError('ERR_URL', 'shadow-tls plugin options need host=SNI (the handshake site)');
  if (password === undefined)
    throw new ProtocolError('ERR_URL', 'shadow-tls plugin options need passwd=PASSWORD');
  const version = o.get('v3') === true ? '3' : str('version');
  if (version !== '3') {
    throw new ProtocolError(
      'ERR_URL',
      `shadow-tls plugin options: only version 3 is supported (add ";v3"${version !== undefined ? `, not version ${version}` : ''})`,
    );
  }
  return { sni, password, version: 3 };
}

/** A key's ss:// URL through a ShadowTLS v3 port (`host`:`port`, the server's). */
export function shadowTlsKeyUrl(
  key: { method: string; secret: string },
  where: { host: string; port: number },
  o: Pick<ShadowTlsKeyOptions, 'sni' | 'password'>,
  tag?: string,
): string {
  return formatSsUrl({
    method: key.method,
    password: key.secret,
    host: where.host,
    port: where.port,
    plugin: SHADOW_TLS_PLUGIN,
    pluginOptions: formatShadowTlsPluginOptions(o),
    ...(tag !== undefined ? { tag } : {}),
  });
}
