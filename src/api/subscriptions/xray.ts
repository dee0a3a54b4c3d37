import { grpcServiceName } from '../../protocol/sip002/transport.js';
import type { Rendered } from './formats.js';
import type { SubEntry, Subscription } from './model.js';

/**
 * The `v2ray-json` subscription (as Marzban and Remnawave name it): a JSON array of whole Xray
 * configs, one per way to reach the server, which v2rayNG (≥ 1.8.16), v2rayN (≥ 6.40), Happ and
 * Streisand import as custom configs. It is the only format that can say "Shadowsocks over gRPC"
 * to those apps: their ss:// parsers read no transport besides v2ray-plugin's websocket mode, and
 * sing-box's and mihomo's shadowsocks outbounds have no gRPC transport at all (so their formats
 * carry none). Per server: the gRPC entry (TLS fronts that take it, `ws.grpc`), the WebSocket
 * entry (Xray's ws transport, a raw stream on the secret path), the HTTPUpgrade entry (Xray's
 * httpupgrade transport at `/SECRET/up`), then the raw entries. UDP of a
 * web entry rides in its streams as UDP-over-TCP v2 (Xray's `uot`), as the server relays it.
 *
 * Served at /sub/{token}/v2ray-json only (never chosen by User-Agent: the base64 list stays the
 * default for these apps).
 */

/** Where the configs' local proxy listens (v2rayN's and v2rayNG's defaults). */
const SOCKS_PORT = 10808;
const HTTP_PORT = 10809;

type Network = 'grpc' | 'ws' | 'httpupgrade' | 'tcp';

function streamSettings(e: SubEntry, network: Network): Record<string, unknown> {
  const ws = e.ws;
  if (network === 'tcp' || ws === undefined) return { network: 'tcp' };
  const tls = ws.tls
    ? {
        security: 'tls',
        tlsSettings: { serverName: ws.host, ...(network === 'grpc' ? { alpn: ['h2'] } : {}) },
      }
    : {};
  if (network === 'grpc')
    return {
      network: 'grpc',
      ...tls,
      grpcSettings: { serviceName: grpcServiceName(ws.path), multiMode: false },
    };
  if (network === 'httpupgrade')
    return { network: 'httpupgrade', ...tls, httpupgradeSettings: { path: `${ws.path}/up`, host: ws.host } };
  return { network: 'ws', ...tls, wsSettings: { path: ws.path, headers: { Host: ws.host } } };
}

function config(e: SubEntry, name: string, network: Network): Record<string, unknown> {
  const uot = network !== 'tcp' && e.ws?.udp === true;
  return {
    remarks: name,
    log: { loglevel: 'warning' },
    inbounds: [
      {
        tag: 'socks',
        listen: '127.0.0.1',
        port: SOCKS_PORT,
        protocol: 'socks',
        settings: { auth: 'noauth', udp: true },
      },
      { tag: 'http', listen: '127.0.0.1', port: HTTP_PORT, protocol: 'http', settings: {} },
    ],
    outbounds: [
      {
        tag: 'proxy',
        protocol: 'shadowsocks',
        settings: {
          servers: [
            {
              address: e.host,
              port: e.port,
              method: e.method,
              password: e.password,
              ...(uot ? { uot: true, UoTVersion: 2 } : {}),
            },
          ],
        },
        streamSettings: streamSettings(e, network),
      },
      { tag: 'direct', protocol: 'freedom' },
      { tag: 'block', protocol: 'blackhole' },
    ],
  };
}

/** The Xray configs of a subscription (a refused key: one config that goes nowhere, named with why). */
export function xrayJson(sub: Subscription, placeholder: (sub: Subscription) => SubEntry): Rendered {
  const configs: Record<string, unknown>[] = [];
  if (sub.refusal) configs.push(config(placeholder(sub), placeholder(sub).name, 'tcp'));
  for (const e of sub.refusal ? [] : sub.entries) {
    if (e.stls) continue; // Xray has no ShadowTLS
    if (e.ws === undefined) {
      configs.push(config(e, e.name, 'tcp'));
      continue;
    }
    const base = e.name.replace(/ \(web\)$/, '');
    if (e.ws.grpc === true && e.ws.tls) configs.push(config(e, `${base} (gRPC)`, 'grpc'));
    configs.push(config(e, e.name, 'ws'));
    // Xray's httpupgrade transport (2024 on) at the front's /SECRET/up (server/web/httpupgrade.ts).
    configs.push(config(e, `${base} (HTTPUpgrade)`, 'httpupgrade'));
  }
  return {
    body: `${JSON.stringify(configs, null, 2)}\n`,
    contentType: 'application/json; charset=utf-8',
    ext: 'json',
  };
}
