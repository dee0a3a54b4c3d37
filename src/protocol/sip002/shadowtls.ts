/**
 * A key's ss:// URL through a ShadowTLS v3 port: `plugin=shadow-tls;host=SNI;password=PW;version=3`,
 * the form Sub-Store writes and Shadowrocket, sing-box-based apps and `ladder client` read
 * (shadowtls-opts.ts parses it), mirroring mihomo's `plugin: shadow-tls` `plugin-opts: {host,
 * password, version}`. Not ihciah's SIP003 plugin binary's own spelling (`passwd=…;v3`), which
 * fewer clients read. mihomo's ss:// converter reads no shadow-tls plugin and sing-box reads no
 * share links: both get ShadowTLS from their subscription formats (src/api/subscriptions).
 */
import { createHmac } from 'node:crypto';
import { formatSsUrl } from './index.js';
import { pluginValue } from './plugin-opts.js';

/** `host=SNI;password=PASSWORD;version=3`. */
export function formatShadowTlsPluginOptions(o: { sni: string; password: string }): string {
  return `host=${pluginValue(o.sni)};password=${pluginValue(o.password)};version=3`;
}

/** A key's ss:// URL through a ShadowTLS v3 port (`where`: the server's host and ShadowTLS port). */
export function shadowTlsKeyUrl(
  key: { method: string; secret: string },
  where: { host: string; port: number },
  o: { sni: string; password: string },
  tag?: string,
): string {
  return formatSsUrl({
    method: key.method,
    password: key.secret,
    host: where.host,
    port: where.port,
    plugin: 'shadow-tls',
    pluginOptions: formatShadowTlsPluginOptions(o),
    ...(tag !== undefined ? { tag } : {}),
  });
}

/**
 * A key's own ShadowTLS password: HMAC-SHA256 of a fixed label under the key's method and secret,
 * 16 bytes, base64url. Whoever holds the key can compute it (the server, every fleet node, the
 * subscription), nobody else can; it reveals nothing of the key, stores nothing, and changes when
 * the key's secret does (`keys rotate`). An unmanaged server's default password is the first
 * key's.
 */
export function keyShadowTlsPassword(key: { method: string; secret: string }): string {
  const mac = createHmac('sha256', `${key.method}:${key.secret}`).update('ladder shadowtls password v1');
  return mac.digest().subarray(0, 16).toString('base64url');
}
