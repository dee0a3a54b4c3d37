import { keyPrefixFor, storedKeyPrefixSetting } from '../protocol/shadowsocks/key-prefix.js';
import { formatSsUrl } from '../protocol/sip002/index.js';
import { webKeyUrlFor, type WebEndpoint as PluginEndpoint } from '../protocol/sip002/plugin-opts.js';
import type { KeyRecord, ServerSettings, WebFront } from '../store/index.js';

/**
 * The Outline `prefix` a key hands out now for its setting (KeyRecord.prefix): none for 'off',
 * 2022 keys and salts without room; a fresh draw for 'auto' (dynamic keys and subscriptions call
 * this on every fetch); the pinned bytes otherwise.
 */
export function keyPrefix(key: Pick<KeyRecord, 'method' | 'prefix'>): Uint8Array | undefined {
  if (key.method.startsWith('2022-')) return undefined;
  try {
    return keyPrefixFor(key.method, storedKeyPrefixSetting(key.prefix));
  } catch {
    return undefined; // a pinned prefix that no longer fits the key's method: hand out none
  }
}

/**
 * The prefix a static ss:// URL carries: only a pinned one. A static URL cannot re-draw, and a
 * draw kept for the key's lifetime would be one fixed first-bytes signature per user, so 'auto'
 * keys' static URLs stay unprefixed (docs/api.md, "Outline prefix").
 */
export function staticKeyPrefix(key: Pick<KeyRecord, 'method' | 'prefix'>): Uint8Array | undefined {
  return typeof storedKeyPrefixSetting(key.prefix) === 'string' ? undefined : keyPrefix(key);
}

/**
 * The static access URL exactly as Outline writes it: SIP002 with `/?outline=1` and no tag.
 * With `tag`, the name is added as the fragment (for sharing, as the Outline Manager does).
 *
 * 2022-blake3-* keys get SIP002's plain userinfo instead (base64 is not allowed for them), with
 * method and password percent-encoded, the ":" of "iPSK:uPSK" included, as sing-box, mihomo,
 * shadowsocks-rust, Xray and our own client read it; and no `outline=1`, since Outline's apps have
 * no 2022 ciphers: ss://2022-blake3-aes-128-gcm:<iPSK>%3A<uPSK>@host:port#tag (SIP002's own example form).
 */
export function accessUrl(
  key: KeyRecord,
  settings: Pick<ServerSettings, 'hostnameForAccessKeys'>,
  tag?: string,
  /** The web front advertised alone (webOnlyFor): the key's URL is its v2ray-plugin one. */
  webOnly?: PluginEndpoint,
): string {
  if (webOnly) return webKeyUrlFor(key, webOnly, tag);
  const prefix = staticKeyPrefix(key);
  const base = formatSsUrl({
    method: key.method,
    password: key.secret,
    host: settings.hostnameForAccessKeys,
    port: key.port,
    ...(prefix ? { prefix } : {}),
  });
  const hash = base.indexOf('#');
  const noTag = hash === -1 ? base : base.slice(0, hash);
  const withQuery = key.method.startsWith('2022-')
    ? noTag
    : noTag.includes('?')
      ? `${noTag}&outline=1`
      : `${noTag.replace(/\/$/, '')}/?outline=1`;
  return tag ? `${withQuery}#${encodeURIComponent(tag)}` : withQuery;
}

/**
 * The management API that hands out a key's dynamic URL and subscription URL: host, port and
 * certificate pin of ONE endpoint (the serving API's own), so a URL never names one node's host
 * with another's port or pin (docs/fleet.md, "Dynamic key and subscription URLs").
 */
export interface ApiEndpoint {
  host: string;
  port: number;
  certSha256?: string | undefined;
}

/** The settings view the URL functions below read, with the host and port of `api`. */
export function endpointSettings(
  settings: Pick<ServerSettings, 'dynamicKeyBaseUrl'>,
  api: ApiEndpoint | undefined,
): Pick<ServerSettings, 'dynamicKeyBaseUrl' | 'hostnameForAccessKeys' | 'apiPort'> {
  return {
    dynamicKeyBaseUrl: settings.dynamicKeyBaseUrl,
    hostnameForAccessKeys: api?.host ?? '',
    apiPort: api?.port ?? null,
  };
}

/** A key's ssconf:// URL served by `api` (or the shared dynamicKeyBaseUrl): host, port and pin of one endpoint. */
export function dynamicUrlVia(
  key: KeyRecord,
  settings: Pick<ServerSettings, 'dynamicKeyBaseUrl'>,
  api: ApiEndpoint | undefined,
  tag?: string,
): string | undefined {
  return dynamicAccessUrl(key, endpointSettings(settings, api), tag, api?.certSha256);
}

/** Base https:// URL where the dynamic key documents are served, or undefined when unknown. */
export function dynamicBaseUrl(
  settings: Pick<ServerSettings, 'dynamicKeyBaseUrl' | 'hostnameForAccessKeys' | 'apiPort'>,
): string | undefined {
  if (settings.dynamicKeyBaseUrl) return settings.dynamicKeyBaseUrl.replace(/\/+$/, '');
  if (settings.apiPort === null) return undefined;
  const h = settings.hostnameForAccessKeys;
  return `https://${h.includes(':') ? `[${h}]` : h}:${settings.apiPort}`;
}

/**
 * The ssconf:// URL of a key's dynamic config (Outline clients rewrite ssconf:// to https://).
 *
 * `apiCertSha256`: the API's certificate fingerprint (the access config line's certSha256). When
 * the URL points at the API itself (no dynamicKeyBaseUrl), that certificate is our self-signed
 * one, which no client trusts by itself, so the URL carries `?certSha256=<pin>`: `ladder client`
 * pins it. Outline's apps fetch the URL as https:// with the query included and verify TLS
 * normally: they cannot use a self-signed server with or without the pin, and the server ignores
 * the parameter. With a dynamicKeyBaseUrl (a proxy with a real certificate) there is no pin.
 */
export function dynamicAccessUrl(
  key: KeyRecord,
  settings: Pick<ServerSettings, 'dynamicKeyBaseUrl' | 'hostnameForAccessKeys' | 'apiPort'>,
  tag?: string,
  apiCertSha256?: string,
): string | undefined {
  const base = dynamicBaseUrl(settings);
  if (base === undefined) return undefined;
  const pin = apiCertSha256 && !settings.dynamicKeyBaseUrl ? `?certSha256=${apiCertSha256}` : '';
  const url = `${base.replace(/^https?:\/\//, 'ssconf://')}/access/${key.accessToken}${pin}`;
  return tag ? `${url}#${encodeURIComponent(tag)}` : url;
}

/**
 * The web front a key advertises instead of host:port (`--advertise web`, WebEndpoint.only), with
 * its host resolved; undefined when raw entries are advertised or the front does not serve the
 * key's port.
 */
export function webOnlyFor(
  web: (WebFront & { only?: boolean | undefined }) | undefined,
  key: Pick<KeyRecord, 'port'>,
  settings: Pick<ServerSettings, 'hostnameForAccessKeys'>,
): PluginEndpoint | undefined {
  if (!web?.only || (web.keyPort !== undefined && web.keyPort !== key.port)) return undefined;
  return {
    host: web.host ?? settings.hostnameForAccessKeys,
    port: web.port,
    path: web.path,
    tls: web.tls,
    mux: web.mux ?? true,
  };
}
