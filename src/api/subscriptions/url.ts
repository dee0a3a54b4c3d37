import type { KeyRecord, ServerSettings } from '../../store/index.js';
import { dynamicBaseUrl, endpointSettings, type ApiEndpoint } from '../access-url.js';

/** The formats served at /sub/{token}/{format}. */
export const SUB_FORMATS = [
  'outline',
  'outline-json',
  'clash',
  'sing-box',
  'base64',
  'sip008',
  'v2ray-json',
  'html',
] as const;
export type SubFormat = (typeof SUB_FORMATS)[number];

/**
 * A key's subscription URL: https://BASE/sub/{token}, on the same base as its ssconf:// dynamic
 * key (dynamicKeyBaseUrl, else the API's own address), with the same unguessable token. With
 * `format`, the explicit form /sub/{token}/{format}. Undefined when the base is unknown.
 */
export function subscriptionUrl(
  key: Pick<KeyRecord, 'accessToken'>,
  settings: Pick<ServerSettings, 'dynamicKeyBaseUrl' | 'hostnameForAccessKeys' | 'apiPort'>,
  format?: SubFormat,
): string | undefined {
  const base = dynamicBaseUrl(settings);
  if (base === undefined) return undefined;
  return `${base}/sub/${key.accessToken}${format ? `/${format}` : ''}`;
}

/** subscriptionUrl on the base of `api` (the serving API), or the shared dynamicKeyBaseUrl. */
export function subscriptionUrlVia(
  key: Pick<KeyRecord, 'accessToken'>,
  settings: Pick<ServerSettings, 'dynamicKeyBaseUrl'>,
  api: ApiEndpoint | undefined,
  format?: SubFormat,
): string | undefined {
  return subscriptionUrl(key, endpointSettings(settings, api), format);
}
