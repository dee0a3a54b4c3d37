import { formatSsUrl } from '../../protocol/sip002/index.js';
import { formatShadowTlsPluginOptions, keyShadowTlsPassword } from '../../protocol/sip002/shadowtls.js';
import type { KeyRecord, KeyStatus, ServerSettings } from '../../store/index.js';
import type { ShadowTlsEndpoint, WebEndpoint } from '../context.js';
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
  /** The front also takes gRPC calls here (service name = path without '/'; TLS only). */
  grpc?: boolean | undefined;
}

/** A ShadowTLS v3 entry's own settings: the SNI (handshake site), its password, UDP inside (UoT v2). */
export interface StlsParams {
  sni: string;
  password: string;
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
  /** Set for Shadowsocks behind ShadowTLS v3 (host:port is the ShadowTLS port). */
  stls?: StlsParams;
  /** Seed of the entry's stable SIP008 id (fleet entries: one per node and address). */
  seed?: string;
}

export interface Subscription {
  /** The key's display name (the profile title). */
  title: string;
  /** In preference order: WebSocket first (harder to block), then raw Shadowsocks. Empty when refused. */
  entries: SubEntry[];
  /** Why the key cannot be used (Outline's error shape); undefined for a usable key. */
  refusal?: { message: string; details?: string } | undefined;
  /**
   * The raw entry, for formats that carry one server only (Outline's legacy JSON, SIP008 id);
   * undefined when refused or when only the web front is advertised (`--advertise web`).
   */
  raw?: SubEntry | undefined;
  /** Usage in the current limit window, the limit, the expiry (ms), for subscription-userinfo. */
  upload: number;
  download: number;
  limitBytes: number | null;
  expiresAt: number | null;
  /** Stable per-key seed (server id + key id) for ids that must survive updates. */
  seed: string;
}

/** One server a key lists (a fleet node, or this server): its hosts in order, and its web front. */
export interface ServerSpot {
  name?: string;
  hosts: readonly string[];
  web?: WebEndpoint | undefined;
  /** The server's ShadowTLS port (a fleet node's from its row), if it runs one. */
  stls?: ShadowTlsEndpoint | undefined;
}

/** A start index that spreads keys over the nodes, the same for the same key. */
function spread(seed: string, n: number): number {
  let h = 0;
  for (let i = 0; i < seed.length; i++) h = (h * 31 + seed.charCodeAt(i)) >>> 0;
  return n > 0 ? h % n : 0;
}

/**
 * The key's entries over `servers` (fleet nodes, rotated so keys spread over them; without a
 * fleet, this server alone): per server its WebSocket entry (harder to block), then one raw entry
 * per address.
 */
function entriesFor(key: KeyRecord, title: string, seed: string, servers: readonly ServerSpot[]): SubEntry[] {
  const start = spread(seed, servers.length);
  const order = servers.map((_, i) => servers[(start + i) % servers.length]!);
  const fleet = servers.some((s) => s.name !== undefined);
  const entries: SubEntry[] = [];
  for (const s of order) {
    const label = fleet ? `${title} · ${s.name}` : title;
    const base = { method: key.method, password: key.secret };
    const web = s.web;
    const served = web !== undefined && (web.keyPort === undefined || web.keyPort === key.port);
    if (served) {
      const host = web.host ?? s.hosts[0]!;
      entries.push({
        name: `${label} (web)`,
        host,
        port: web.port,
        ...base,
        ws: {
          host,
          path: web.path,
          tls: web.tls,
          mux: web.mux,
          udp: web.udp,
          grpc: web.tls && web.grpc !== false,
        },
        ...(fleet ? { seed: `${seed}/${s.name}/ws` } : {}),
      });
      // --advertise web: the raw host:port (the origin a CDN hides) is named nowhere.
      if (web.only) continue;
    }
    if (s.stls)
      entries.push({
        ...stlsEntry(label, s.hosts[0]!, base, s.stls),
        ...(fleet ? { seed: `${seed}/${s.name}/shadowtls` } : {}),
      });
    s.hosts.forEach((host, i) =>
      entries.push({
        name: i === 0 ? label : `${label} (${host})`,
        host,
        port: key.port,
        ...base,
        ...(fleet ? { seed: `${seed}/${s.name}/${host}` } : {}),
      }),
    );
  }
  return entries;
}

/** The ShadowTLS entry of a key: the server's first host, the ShadowTLS port, its SNI, the key's own password. */
function stlsEntry(
  label: string,
  host: string,
  base: { method: string; password: string },
  t: ShadowTlsEndpoint,
): SubEntry {
  return {
    name: `${label} (ShadowTLS)`,
    host,
    port: t.port,
    ...base,
    stls: {
      sni: t.sni,
      password: keyShadowTlsPassword({ method: base.method, secret: base.password }),
      udp: t.udp,
    },
  };
}

export function buildSubscription(
  key: KeyRecord,
  status: KeyStatus,
  settings: ServerSettings,
  web: WebEndpoint | undefined,
  refusal: Subscription['refusal'],
  usage: { up: number; down: number } | undefined,
  /** Fleet nodes to list (api/fleet.ts fleetServers); undefined = this server, as configured. */
  fleet?: readonly ServerSpot[],
  /** This server's ShadowTLS port, listed when this server (not a fleet) is. */
  stls?: ShadowTlsEndpoint,
): Subscription {
  const title = key.name || settings.name || 'Ladder';
  const seed = `${settings.serverId}/${key.id}`;
  const servers =
    fleet && fleet.length > 0 ? fleet : [{ hosts: [settings.hostnameForAccessKeys], web, stls }];
  const entries = entriesFor(key, title, seed, servers);
  const raw = entries.find((e) => e.ws === undefined && e.stls === undefined);
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
    seed,
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

/**
 * A SIP002 ss:// link for an entry (WebSocket entries as plugin=v2ray-plugin;…, ShadowTLS ones as
 * plugin=shadow-tls;host=…;password=…;version=3), tagged with its name.
 */
export function entryLink(e: SubEntry, extra: { prefix?: Uint8Array; outline?: boolean } = {}): string {
  const url = formatSsUrl({
    method: e.method,
    password: e.password,
    host: e.host,
    port: e.port,
    ...(e.ws ? { plugin: 'v2ray-plugin', pluginOptions: v2rayPluginOpts(e.ws) } : {}),
    ...(e.stls ? { plugin: 'shadow-tls', pluginOptions: formatShadowTlsPluginOptions(e.stls) } : {}),
    ...(extra.prefix && !e.stls ? { prefix: extra.prefix } : {}),
  });
  const outline = extra.outline && !e.method.startsWith('2022-') && !e.ws && !e.stls;
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
