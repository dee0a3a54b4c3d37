import { formatShadowTlsPluginOptions } from '../../protocol/sip002/shadowtls.js';
import { yamlPackage } from '../../shared/yaml.js';
import {
  entryLink,
  hostPort,
  prefixString,
  v2rayPluginOpts,
  type SubEntry,
  type Subscription,
} from './model.js';
import { stableUuid } from './state.js';

/**
 * The subscription body in each app family's own format. Each is checked against that format's
 * rules in test/api/subscriptions*.test.ts, and its entries fed to real clients where one runs.
 *
 * A key that cannot be used gets each format's native way of saying so: Outline's `error` object;
 * SIP008's empty `servers` (with bytes_used/bytes_remaining); and, where apps only show a list of
 * servers (Clash/mihomo, sing-box, base64 links), an entry whose name is the message, as panels
 * do (Remnawave's "expired/limited/disabled" remarks), that carries no traffic anywhere: Clash's
 * group holds only REJECT; the others point at 127.0.0.1 port 1.
 */

export interface Rendered {
  body: string;
  contentType: string;
  /** File name extension for content-disposition. */
  ext: string;
}

const YAML_UTF8 = 'text/yaml; charset=utf-8';
const JSON_UTF8 = 'application/json; charset=utf-8';
const TEXT_UTF8 = 'text/plain; charset=utf-8';

/** Where placeholder entries point: nothing listens on port 1, and nothing leaves the device. */
const NOWHERE = { host: '127.0.0.1', port: 1, method: 'chacha20-ietf-poly1305', password: 'unavailable' };

/** YAML text for a subscription body (the yaml package loads on the first such answer). */
function yaml(doc: unknown): string {
  return yamlPackage().stringify(doc, { lineWidth: 0 });
}

/** The one line apps show for a refused key ("Quota exceeded: Used 2.00 GiB out of 2.00 GiB"). */
export function refusalLine(r: NonNullable<Subscription['refusal']>): string {
  return r.details ? `${r.message}: ${r.details}` : r.message;
}

export function placeholder(sub: Subscription): SubEntry {
  return { name: `⚠ ${refusalLine(sub.refusal!)}`, ...NOWHERE };
}

/** Outline apps have SIP004 ciphers only (chacha20-ietf-poly1305, aes-{128,192,256}-gcm). */
export function outlineRefusal(sub: Subscription): { message: string; details?: string } | undefined {
  if (sub.refusal) return sub.refusal;
  const m = sub.entries[0]!.method;
  if (m.startsWith('2022-'))
    return {
      message: 'Outline apps cannot use this key',
      details: `Its cipher ${m} is Shadowsocks-2022, which Outline apps do not have; open the subscription link in a browser for apps that can.`,
    };
  return undefined;
}

/**
 * Outline's tunnel config (client/config.md in outline-apps): `transport` of type tcpudp with a
 * shadowsocks dialer and packet listener; with a web front, each endpoint is `first-supported` of
 * Outline's WebSocket endpoint (`wss://HOST/SECRET/tcp`, `/udp`) then the raw `host:port`, so
 * apps without WebSocket support (Windows, older versions) still connect. first-supported is
 * decided when the config is parsed, not by trying the network. Only fields Outline's parsers know
 * (they reject unknown ones); `prefix` on TCP only, as Outline applies it.
 */
export async function outlineYaml(sub: Subscription, prefix: Uint8Array | undefined): Promise<Rendered> {
  const refused = outlineRefusal(sub);
  if (refused) return { body: yaml({ error: refused }), contentType: YAML_UTF8, ext: 'yaml' };
  const raw = sub.raw;
  const direct = raw && hostPort(raw.host, raw.port);
  const ws = sub.entries.find((e) => e.ws !== undefined);
  const endpoint = (kind: 'tcp' | 'udp'): unknown => {
    if (direct !== undefined && (!ws?.ws || (kind === 'udp' && !ws.ws.udp))) return direct;
    // Web only and the front relays no UDP: nowhere, so the app finds UDP unavailable (it then
    // sends DNS over TCP). Not a /udp endpoint the front does not serve, and not an absent `udp`,
    // which Outline takes as direct UDP outside the tunnel.
    if (kind === 'udp' && !ws?.ws?.udp) return hostPort(NOWHERE.host, NOWHERE.port);
    const w = ws!.ws!;
    const websocket = {
      $type: 'websocket',
      url: `${w.tls ? 'wss' : 'ws'}://${hostPort(w.host, ws!.port)}${w.path}/${kind}`,
    };
    // Web only (--advertise web): the WebSocket endpoint alone, no raw host:port to fall back to.
    return direct === undefined ? websocket : { $type: 'first-supported', options: [websocket, direct] };
  };
  const first = sub.entries[0]!;
  const cipher = { cipher: first.method, secret: first.password };
  const doc = {
    transport: {
      $type: 'tcpudp',
      tcp: {
        $type: 'shadowsocks',
        endpoint: endpoint('tcp'),
        ...cipher,
        ...(prefix ? { prefix: prefixString(prefix) } : {}),
      },
      udp: { $type: 'shadowsocks', endpoint: endpoint('udp'), ...cipher },
    },
  };
  return { body: yaml(doc), contentType: YAML_UTF8, ext: 'yaml' };
}

/** Outline's legacy JSON has no WebSocket: what it says when only the web front is advertised. */
export const WEB_ONLY_REFUSAL = {
  message: 'This key is served over WebSocket only',
  details:
    "Use the subscription's Outline config (ssconf:// of /sub/TOKEN/outline) or another of its formats.",
};

/** Outline's legacy dynamic-key JSON: exactly server, server_port, method, password (+ prefix). */
export function outlineJson(sub: Subscription, prefix: Uint8Array | undefined): Rendered {
  const refused = outlineRefusal(sub) ?? (sub.raw ? undefined : WEB_ONLY_REFUSAL);
  const raw = sub.raw;
  const doc =
    refused || !raw
      ? { error: refused }
      : {
          server: raw.host,
          server_port: raw.port,
          method: raw.method,
          password: raw.password,
          ...(prefix ? { prefix: prefixString(prefix) } : {}),
        };
  return { body: JSON.stringify(doc), contentType: JSON_UTF8, ext: 'json' };
}

/**
 * Clash/mihomo proxy for an entry: `type: ss`, and v2ray-plugin's websocket mode for the web
 * front. UDP of a raw entry is raw Shadowsocks UDP; a web entry's, when the server relays UDP
 * (`ws.udp`), rides inside its stream as sing's UDP-over-TCP (mihomo's `udp-over-tcp`, v2 said
 * explicitly: mihomo's default is v1; the server speaks both, src/server/uot.ts), so it passes a
 * CDN that carries only WebSockets.
 */
function clashProxy(e: SubEntry): Record<string, unknown> {
  const p: Record<string, unknown> = {
    name: e.name,
    type: 'ss',
    server: e.host,
    port: e.port,
    cipher: e.method,
    password: e.password,
    udp: e.stls ? e.stls.udp : e.ws === undefined || e.ws.udp,
  };
  if (e.ws?.udp || e.stls?.udp) {
    p['udp-over-tcp'] = true;
    p['udp-over-tcp-version'] = 2;
  }
  if (e.stls) Object.assign(p, clashShadowTls(e.stls));
  if (e.ws) {
    p.plugin = 'v2ray-plugin';
    p['plugin-opts'] = {
      mode: 'websocket',
      host: e.ws.host,
      path: e.ws.path,
      tls: e.ws.tls,
      ...(e.ws.mux !== undefined ? { mux: e.ws.mux } : {}),
    };
  }
  return p;
}

/**
 * mihomo's ShadowTLS v3 for a ShadowTLS entry (adapter/outbound/shadowsocks.go shadowTLSOption:
 * plugin-opts host, password, version; the ClientHello shape from the proxy's client-fingerprint).
 * Its UDP rides inside as UDP-over-TCP, never beside the TLS connection.
 */
function clashShadowTls(t: NonNullable<SubEntry['stls']>): Record<string, unknown> {
  return {
    plugin: 'shadow-tls',
    'client-fingerprint': 'chrome',
    'plugin-opts': { host: t.sni, password: t.password, version: 3 },
  };
}

/**
 * The HTTPUpgrade twin of a web entry's Clash/mihomo proxy: mihomo's v2ray-plugin with
 * `v2ray-http-upgrade: true` at `${path}/up` (the web front's HTTPUpgrade endpoint,
 * server/web/httpupgrade.ts), for networks that pass the upgrade but not WebSocket framing.
 * Clash Premium and other cores without the option would dial WebSocket there and fail, which is
 * why it is a second entry after the WebSocket one, not a replacement.
 */
function clashHttpUpgradeProxy(e: SubEntry): Record<string, unknown> {
  const p = clashProxy(e);
  const name = e.name.endsWith(' (web)') ? `${e.name.slice(0, -6)} (HTTPUpgrade)` : `${e.name} (HTTPUpgrade)`;
  const opts = p['plugin-opts'] as Record<string, unknown>;
  return { ...p, name, 'plugin-opts': { ...opts, path: `${e.ws!.path}/up`, 'v2ray-http-upgrade': true } };
}

/** The Clash/mihomo proxies of the entries: each web entry's WebSocket proxy, then its HTTPUpgrade twin. */
function clashProxies(entries: readonly SubEntry[]): Record<string, unknown>[] {
  return entries.flatMap((e) => (e.ws ? [clashProxy(e), clashHttpUpgradeProxy(e)] : [clashProxy(e)]));
}

/**
 * A minimal working Clash/mihomo profile: a local mixed (HTTP+SOCKS) port, the key's proxies,
 * one select group (WebSocket first) and a rule sending everything through it.
 */
export async function clashYaml(sub: Subscription): Promise<Rendered> {
  const base = { 'mixed-port': 7890, 'allow-lan': false, mode: 'rule', 'log-level': 'warning' };
  if (sub.refusal) {
    // Group names end up in a comma-separated rule: no commas in them.
    const name = `⚠ ${refusalLine(sub.refusal)}`.replace(/,/g, ' ');
    const doc = {
      ...base,
      proxies: [],
      'proxy-groups': [{ name, type: 'select', proxies: ['REJECT'] }],
      rules: [`MATCH,${name}`],
    };
    return { body: yaml(doc), contentType: YAML_UTF8, ext: 'yaml' };
  }
  // mihomo refuses a group named like a proxy; the rule is comma-separated.
  const proxies = clashProxies(sub.entries);
  let group = 'Ladder';
  while (proxies.some((p) => p.name === group)) group += ' ·';
  const doc = {
    ...base,
    proxies,
    'proxy-groups': [{ name: group, type: 'select', proxies: proxies.map((p) => p.name) }],
    rules: [`MATCH,${group}`],
  };
  return { body: yaml(doc), contentType: YAML_UTF8, ext: 'yaml' };
}

/**
 * sing-box shadowsocks outbound; the web front through sing-box's built-in v2ray-plugin, with UDP
 * (when the server relays it) inside the stream as UDP-over-TCP (`udp_over_tcp: true` is v2).
 */
function singBoxOutbound(e: SubEntry): Record<string, unknown> {
  return {
    type: 'shadowsocks',
    tag: e.name,
    server: e.host,
    server_port: e.port,
    method: e.method,
    password: e.password,
    ...(e.ws ? { plugin: 'v2ray-plugin', plugin_opts: v2rayPluginOpts(e.ws) } : {}),
    ...(e.ws?.udp ? { udp_over_tcp: true } : {}),
  };
}

/**
 * A sing-box (≥ 1.12) profile as SFA/SFI/SFM and Hiddify import it: a tun inbound (the phone
 * VPN) and a local mixed port, a selector over the key's outbounds (WebSocket first), DNS through
 * the proxy. sing-box's shadowsocks outbound has no ws transport of its own, so the web front is
 * reached with its built-in v2ray-plugin (`plugin`/`plugin_opts`, the v2ray-plugin wire ours speaks).
 */
/**
 * A ShadowTLS entry in sing-box: its shadowsocks outbound dials through (`detour`) a `shadowtls`
 * outbound, version 3, with uTLS's Chrome hello and the handshake site's name (sing-box's own
 * ShadowTLS example); the selector lists the shadowsocks one.
 */
function singBoxOutbounds(e: SubEntry): Record<string, unknown>[] {
  if (!e.stls) return [singBoxOutbound(e)];
  const detour = `${e.name} · ShadowTLS v3`;
  return [
    { ...singBoxOutbound(e), detour, ...(e.stls.udp ? { udp_over_tcp: true } : {}) },
    {
      type: 'shadowtls',
      tag: detour,
      server: e.host,
      server_port: e.port,
      version: 3,
      password: e.stls.password,
      tls: { enabled: true, server_name: e.stls.sni, utls: { enabled: true, fingerprint: 'chrome' } },
    },
  ];
}

export function singBoxJson(sub: Subscription): Rendered {
  const entries = sub.refusal ? [placeholder(sub)] : sub.entries;
  const outs = entries.flatMap(singBoxOutbounds);
  const tags = entries.map((e) => e.name);
  const doc = {
    log: { level: 'warn' },
    dns: {
      // sing-box 1.12's server format (the `address: 'tcp://…'` one is gone in 1.14); the server's
      // own name is resolved by dns-local through route.default_domain_resolver below, which
      // replaces the deprecated `{ outbound: 'any' }` DNS rule.
      servers: [
        { type: 'tcp', tag: 'dns-remote', server: '1.1.1.1', detour: 'proxy' },
        { type: 'local', tag: 'dns-local' },
      ],
      final: 'dns-remote',
    },
    inbounds: [
      {
        type: 'tun',
        tag: 'tun-in',
        address: ['172.19.0.1/30', 'fdfe:dcba:9876::1/126'],
        auto_route: true,
        strict_route: true,
      },
      { type: 'mixed', tag: 'mixed-in', listen: '127.0.0.1', listen_port: 2080 },
    ],
    outbounds: [
      { type: 'selector', tag: 'proxy', outbounds: tags, default: tags[0] },
      ...outs,
      { type: 'direct', tag: 'direct' },
    ],
    route: {
      rules: [
        { inbound: ['tun-in', 'mixed-in'], action: 'sniff' },
        { protocol: 'dns', action: 'hijack-dns' },
      ],
      final: 'proxy',
      default_domain_resolver: 'dns-local',
      auto_detect_interface: true,
    },
  };
  return { body: JSON.stringify(doc, null, 2), contentType: JSON_UTF8, ext: 'json' };
}

/** The SIP002 links, one a line, base64 as a whole (v2rayN/NG, Shadowrocket, Streisand, Happ). */
export function base64List(sub: Subscription): Rendered {
  const links = (sub.refusal ? [placeholder(sub)] : sub.entries).map((e) => entryLink(e));
  return {
    body: Buffer.from(links.join('\n'), 'utf8').toString('base64'),
    contentType: TEXT_UTF8,
    ext: 'txt',
  };
}

/**
 * SIP008 online config: one server per entry, the raw one with the same id /access/{token}/sip008
 * gives it, the WebSocket one with v2ray-plugin; bytes_used/bytes_remaining only with a limit.
 */
export function sip008Doc(sub: Subscription): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    version: 1,
    servers: sub.entries.map((e) => ({
      id: stableUuid(e.seed ?? (e.ws ? `${sub.seed}/ws` : e.stls ? `${sub.seed}/shadowtls` : sub.seed)),
      remarks: e.name,
      server: e.host,
      server_port: e.port,
      password: e.password,
      method: e.method,
      ...(e.ws ? { plugin: 'v2ray-plugin', plugin_opts: v2rayPluginOpts(e.ws) } : {}),
      ...(e.stls ? { plugin: 'shadow-tls', plugin_opts: formatShadowTlsPluginOptions(e.stls) } : {}),
    })),
  };
  if (sub.limitBytes !== null) {
    const used = sub.upload + sub.download;
    doc.bytes_used = used;
    doc.bytes_remaining = Math.max(0, sub.limitBytes - used);
  }
  return doc;
}

export function sip008Json(sub: Subscription): Rendered {
  return { body: JSON.stringify(sip008Doc(sub)), contentType: JSON_UTF8, ext: 'json' };
}
