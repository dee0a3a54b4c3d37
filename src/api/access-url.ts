import { formatSsUrl } from '../protocol/sip002/index.js';
import type { KeyRecord, ServerSettings } from '../store/index.js';

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
): string {
  const base = formatSsUrl({
    method: key.method,
    password: key.secret,
    host: settings.hostnameForAccessKeys,
    port: key.port,
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

/** Base https:// URL where the dynamic key documents are served, or undefined when unknown. */
export function dynamicBaseUrl(
  settings: Pick<ServerSettings, 'dynamicKeyBaseUrl' | 'hostnameForAccessKeys' | 'apiPort'>,
): string | undefined {
  if (settings.dynamicKeyBaseUrl) return settings.dynamicKeyBaseUrl.replace(/\/+$/, '');
  if (settings.apiPort === null) return undefined;
  const h = settings.hostnameForAccessKeys;
  return `https://${h.includes(':') ? `[${h}]` : h}:${settings.apiPort}`;
}

/** The ssconf:// URL of a key's dynamic config (Outline clients rewrite ssconf:// to https://). */
export function dynamicAccessUrl(
  key: KeyRecord,
  settings: Pick<ServerSettings, 'dynamicKeyBaseUrl' | 'hostnameForAccessKeys' | 'apiPort'>,
  tag?: string,
): string | undefined {
  const base = dynamicBaseUrl(settings);
  if (base === undefined) return undefined;
  const url = `${base.replace(/^https?:\/\//, 'ssconf://')}/access/${key.accessToken}`;
  return tag ? `${url}#${encodeURIComponent(tag)}` : url;
}
