import { formatSsUrl } from '../../protocol/sip002/index.js';
import type { KeyRecord, KeyStatus, ServerSettings } from '../../store/index.js';
import type { WebEndpoint } from '../context.js';
import { outlinePrefixString } from '../../protocol/shadowsocks/key-prefix.js';
import { keyPrefix } from '../access-url.js';

/**
 * What a subscription says about one key, before any app's format: its entries (how to reach
 * the server: Shadowsocks over WebSocket through the web front when there is one, then raw
 * Shadowsocks), or why it cannot be used, and the usage figures apps show.
 */

export interface WsParams {
  /** The Host header and TLS server name (the web front's name). */
  host: string;
  /** The secret path, '/SECRET' (v2ray-plugin's path; Outline's endpoints add /tcp and /udp). */
  path: string;
  tls: boolean;
  mux?: boolean | undefined;
  udp: boolean;
}

export interface SubEntry {
  /** Display name, unique within the subscription. */
  name: string;
  host: string;
  port: number;
  method: string;
  password: string;
  /** Set for Shadowsocks over WebSocket (v2ray-plugin's wire, or Outline's at `${path}/tcp`). */
  ws?: WsParams;
}

export interface Subscription {
  /** The key's display name (the profile title). */
  title: string;
  /** In preference order: WebSocket first (harder to block), then raw Shadowsocks. Empty when refused. */
  entries: SubEntry[];
  /** Why the key cannot be used (Outline's error shape); undefined for a usable key. */
  refusal?: { message: string; details?: string } | undefined;
  /** The raw entry, for formats that carry one server only (Outline's legacy JSON, SIP008 id). */
  raw?: SubEntry | undefined;
  /** Usage in the current limit window, the limit, the expiry (ms), for subscription-userinfo. */
  upload: number;
  download: number;
  limitBytes: number | null;
  expiresAt: number | null;
  /** Stable per-key seed (server id + key id) for ids that must survive updates. */
  seed: string;
}

export function buildSubscription(
  key: KeyRecord,
  status: KeyStatus,
  settings: ServerSettings,
  web: WebEndpoint | undefined,
  refusal: Subscription['refusal'],
  usage: { up: number; down: number } | undefined,
): Subscription {
  const title = key.name || settings.name || 'Ladder';
  const raw: SubEntry = {
    name: title,
    host: settings.hostnameForAccessKeys,
    port: key.port,
    method: key.method,
    password: key.secret,
  };
  const entries: SubEntry[] = [];
  if (web && (web.keyPort === undefined || web.keyPort === key.port)) {
    const host = web.host ?? settings.hostnameForAccessKeys;
    entries.push({
      name: `${title} (web)`,
      host,
      port: web.port,
      method: key.method,
      password: key.secret,
      ws: { host, path: web.path, tls: web.tls, mux: web.mux, udp: web.udp },
    });
  }
  entries.push(raw);
  // The store's live split of the window's usage; else the enforcer's total as download (as panels do).
  const up = usage?.up ?? 0;
  const down = usage?.down ?? status.usedBytes;
  return {
    title,
    entries: refusal ? [] : entries,
    refusal,
    raw: refusal ? undefined : raw,
    upload: up,
    download: down,
    limitBytes: status.limitBytes,
    expiresAt: key.expiresAt,
    seed: `${settings.serverId}/${key.id}`,
  };
}

/** `host:port`, with IPv6 hosts in brackets (Go's net.JoinHostPort, which Outline uses). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Escape a SIP003 plugin option value (`\` before `;`, `=` and `\`). */
function pluginValue(v: string): string {
  return v.replace(/[\\;=]/g, (c) => `\\${c}`);
}

/** SIP003 plugin options of a WebSocket entry for v2ray-plugin: mode=websocket;host=…;path=…[;tls][;mux=0]. */
export function v2rayPluginOpts(ws: WsParams): string {
  const opts = ['mode=websocket', `host=${pluginValue(ws.host)}`, `path=${pluginValue(ws.path)}`];
  if (ws.tls) opts.push('tls');
  if (ws.mux !== undefined) opts.push(`mux=${ws.mux ? 1 : 0}`);
  return opts.join(';');
}

/** A SIP002 ss:// link for an entry (WebSocket entries as plugin=v2ray-plugin;…), tagged with its name. */
export function entryLink(e: SubEntry, extra: { prefix?: Uint8Array; outline?: boolean } = {}): string {
  const url = formatSsUrl({
    method: e.method,
    password: e.password,
    host: e.host,
    port: e.port,
    ...(e.ws ? { plugin: 'v2ray-plugin', pluginOptions: v2rayPluginOpts(e.ws) } : {}),
    ...(extra.prefix ? { prefix: extra.prefix } : {}),
  });
  const outline = extra.outline && !e.method.startsWith('2022-') && !e.ws;
  const withFlag = outline ? `${url}${url.includes('?') ? '&' : '/?'}outline=1` : url;
  return `${withFlag}#${encodeURIComponent(e.name)}`;
}

/**
 * The one place a key's Outline salt prefix enters the subscriptions: Outline YAML (tcp.prefix),
 * Outline legacy JSON (`prefix`), and the page's ss://…?outline=1 link. The key's setting
 * (KeyRecord.prefix): 'auto' draws afresh on each fetch (key-prefix.ts), so no server has one
 * fixed first-bytes signature; 'off' none; pinned bytes as pinned; none for 2022 keys (Outline
 * has no 2022 ciphers) or keys whose salt has no room.
 */
export function outlinePrefix(key: KeyRecord, _settings: ServerSettings): Uint8Array | undefined {
  return keyPrefix(key);
}

/** Outline's prefix string: one code point 0..255 per byte (what its parser turns back into bytes). */
export const prefixString = outlinePrefixString;
