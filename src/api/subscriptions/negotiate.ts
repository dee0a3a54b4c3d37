import type { SubFormat } from './url.js';

/**
 * Which format /sub/{token} serves, the way panels decide it (Marzban's subscription router,
 * 3x-ui): a browser (Accept: text/html) gets the page; otherwise the User-Agent's app family;
 * anything unknown gets the base64 list of ss:// links, which most apps import.
 */
const BY_AGENT: readonly (readonly [RegExp, SubFormat])[] = [
  // Clash Verge, Clash.Meta, ClashX, Clash for Android/Windows, FlClash, mihomo, Stash.
  [/^(clash|flclash|mihomo|stash)/i, 'clash'],
  // sing-box's own apps (Android, Apple, macOS, tvOS), and apps built on it.
  [/^(sfa|sfi|sfm|sft|sing-box|karing|hiddify)/i, 'sing-box'],
  // Outline's apps fetch dynamic keys with Go's HTTP client (outline-apps client/go/outline/fetch.go),
  // whose default User-Agent is "Go-http-client/…"; older ones and tools say Outline or SSconf.
  [/^(outline|ssconf|go-http-client)/i, 'outline'],
  // shadowsocks-rust / -android / -windows read SIP008 online configs.
  [/^(shadowsocks|sslocal|ss-local)/i, 'sip008'],
  // v2rayN/NG, Shadowrocket, Streisand, Happ, V2Box, NekoBox/Nekoray, Quantumult: share-link lists.
  [/^(v2rayn|v2rayng|shadowrocket|streisand|happ|v2box|nekobox|nekoray|quantumult)/i, 'base64'],
];

export function negotiate(userAgent: string | undefined, accept: string | undefined): SubFormat {
  if (/\btext\/html\b/i.test(accept ?? '')) return 'html';
  const ua = (userAgent ?? '').trim();
  for (const [re, format] of BY_AGENT) if (re.test(ua)) return format;
  return 'base64';
}
