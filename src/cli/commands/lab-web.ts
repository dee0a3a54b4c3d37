/**
 * The web-front contenders of `ladder lab run` (issue 12): Ladder's server with its web front
 * (WebSocket over TLS, builtin decoy, lab certificate) and Ladder's client dialling it over
 * WebSocket, placed directly on logical 443, with the origin IP null-routed, or behind the lab
 * CDN (src/lab/web-hosts.ts). Each server also starts a reference: the same decoy site on a plain
 * web front without the WebSocket endpoints, which the web prober compares it with.
 */
import { createHash } from 'node:crypto';
import { startClient } from '../../client/index.js';
import { startDataPlane } from '../../server/index.js';
import { builtinDecoy } from '../../server/web/decoy.js';
import { generateSecretPath, startWebFront } from '../../server/web/front.js';
import { createWebSocketEndpoints } from '../../server/web/websocket.js';
import type { TunnelContender } from '../../lab/survival.js';
import { cdnPlacement, directPlacement, WEB_DOMAIN, type PlaceFn } from '../../lab/web-hosts.js';
import { webSocketNextHop } from '../../transport/ws-dialer.js';
import type { MuxCoverOptions } from '../../transport/mux-cover.js';

export interface WebVariant {
  readonly method: string;
  readonly secret: string;
  readonly place: PlaceFn;
  /** The site name the client puts in Host and SNI. */
  readonly host: string;
  /** Mux.Cool over the WebSocket (default true, as v2ray-plugin's mux=1). */
  readonly mux?: boolean;
  /** D14 cover (padding of the first records, idle KeepAlives): src/transport/mux-cover.ts. */
  readonly cover?: MuxCoverOptions | false;
}

export function webContender(name: string, description: string, v: WebVariant): TunnelContender {
  let secretPath = '';
  return {
    kind: 'tunnel',
    name,
    description,
    ladder: true,
    place: v.place,
    async startServer(ctx) {
      secretPath = generateSecretPath();
      const dp = await startDataPlane({
        port: 0,
        host: '127.0.0.1',
        keys: [{ id: 'lab', method: v.method, secret: v.secret }],
        allowPrivateDestinations: true,
      });
      const endpoints = createWebSocketEndpoints(dp.server, { secretPath });
      const seed = createHash('sha256').update(`lab decoy ${name}`).digest();
      // One decoy for both: its Last-Modified is "now" minus a seeded age, to the second, so two
      // built across a second boundary differ (the web prober then told the front from its reference).
      const decoy = builtinDecoy({ seed });
      const tls = { cert: ctx.certs.cert, key: ctx.certs.key };
      const common = { port: 0, host: '127.0.0.1', secretPath, tls };
      const closers: Array<() => Promise<void>> = [() => dp.close()];
      try {
        const front = await startWebFront({
          ...common,
          decoy,
          onUpgrade: (req, socket, head, addr) => endpoints.onUpgrade(req, socket, head, addr),
        });
        closers.push(async () => {
          endpoints.close();
          await front.close();
        });
        const reference = await startWebFront({
          ...common,
          decoy,
          onUpgrade: () => false,
        });
        closers.push(() => reference.close());
        return {
          address: { host: '127.0.0.1', port: front.port },
          web: { host: v.host, secretPath, reference: { host: '127.0.0.1', port: reference.port } },
          stop: async () => {
            for (const c of closers.reverse()) await c().catch(() => undefined);
          },
        };
      } catch (err) {
        for (const c of closers.reverse()) await c().catch(() => undefined);
        throw err;
      }
    },
    async startClient(server, ctx) {
      const mux = v.mux ?? true;
      const nextHop = webSocketNextHop({
        // v2ray-plugin's path is the secret path itself; Outline's stream endpoint is /tcp under it.
        url: `wss://${server.host}:${server.port}${secretPath}${mux ? '' : '/tcp'}`,
        host: v.host,
        ca: ctx.ca,
        mux,
        ...(v.cover !== undefined ? { cover: v.cover } : {}),
      });
      const client = await startClient({
        socks: { host: '127.0.0.1', port: 0 },
        key: { host: server.host, port: server.port, method: v.method, password: v.secret, nextHop },
      });
      return { socks: { host: '127.0.0.1', port: client.socksAddress!.port }, stop: () => client.close() };
    },
  };
}

/** The web rows of the survival table. */
export function webContenders(method: string, secret: string): TunnelContender[] {
  const host = `ladder.${WEB_DOMAIN}`;
  // One site name per CDN customer: the CDN routes by Host.
  const cdnHost = `ladder-cdn.${WEB_DOMAIN}`;
  const cdnAlt = `ladder-cdn-alt.${WEB_DOMAIN}`;
  return [
    webContender(
      'ladder WS+TLS (web front)',
      `Ladder's web front on logical 443: WebSocket over TLS, Mux.Cool, ${method}, builtin decoy; the C7 prober is pointed at the web port`,
      { method, secret, host, place: directPlacement() },
    ),
    webContender(
      'ladder WS+TLS, D14 off',
      'the same with the D14 cover off (no padding of the first records): the negative control for C8 (profile advanced)',
      { method, secret, host, place: directPlacement(), cover: false },
    ),
    webContender(
      'ladder WS+TLS, no mux',
      'Outline dialect: one WebSocket per connection, raw stream; nowhere to pad, a fresh outer connection per inner handshake',
      { method, secret, host, place: directPlacement(), mux: false },
    ),
    webContender(
      'ladder WS+TLS, origin IP blocked',
      'the same, dialled directly while C1 null-routes the origin address (the negative control for the CDN rows)',
      { method, secret, host, place: directPlacement({ blockOrigin: true }) },
    ),
    webContender(
      'ladder WS+TLS via CDN, origin IP blocked',
      "the same origin behind the lab CDN (a TLS-terminating reverse proxy shared with other sites) on 443; C1 null-routes the origin's address",
      { method, secret, host: cdnHost, place: cdnPlacement({ host: cdnHost, blockOrigin: true }) },
    ),
    webContender(
      'ladder WS+TLS via CDN :8443',
      "the same through the CDN's alternate HTTPS port 8443, origin IP blocked too (what survives a blanket 443 event, profile blanket-443)",
      { method, secret, host: cdnAlt, place: cdnPlacement({ host: cdnAlt, port: 8443, blockOrigin: true }) },
    ),
  ];
}
