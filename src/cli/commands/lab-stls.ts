/**
 * The ShadowTLS v3 contenders of `ladder lab run`: Ladder's server with its ShadowTLS port
 * (src/server/shadowtls/) on logical 443, relaying a handshake site abroad (a plain HTTPS web
 * site with the builtin decoy and the lab certificate, reached without crossing the path), and
 * Ladder's ShadowTLS client (src/transport/shadowtls-dialer.ts) dialling it. The C7 web prober
 * compares the port with the site itself; the prober also replays the first session's genuine
 * ClientHello and holds that session's server flight against the port's answers
 * (src/lab/stls-replay.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { startClient } from '../../client/index.js';
import { startDataPlane } from '../../server/index.js';
import { builtinDecoy } from '../../server/web/decoy.js';
import { generateSecretPath, startWebFront } from '../../server/web/front.js';
import { listenShadowTls } from '../../server/shadowtls/listener.js';
import { createLogger } from '../../shared/logger.js';
import type { TunnelContender } from '../../lab/survival.js';
import { startHelloTap } from '../../lab/stls-replay.js';
import { directPlacement, WEB_DOMAIN, type PlaceFn } from '../../lab/web-hosts.js';
import { shadowTlsNextHop } from '../../transport/shadowtls-dialer.js';

/** The handshake site's name (SNI): an ordinary site abroad; the lab certificate covers it. */
export const STLS_SITE = `news.${WEB_DOMAIN}`;

export interface ShadowTlsVariant {
  readonly method: string;
  readonly secret: string;
  readonly place: PlaceFn;
  /** The client's D14 record cutting (default on, as users get it). */
  readonly cover?: boolean;
}

export function shadowTlsContender(name: string, description: string, v: ShadowTlsVariant): TunnelContender {
  const password = randomBytes(12).toString('base64url');
  const row = { kind: 'tunnel', name, description, ladder: true, place: v.place } as const;
  return {
    ...row,
    async startServer(ctx) {
      const closers: Array<() => Promise<void>> = [];
      const stop = async (): Promise<void> => {
        for (const c of closers.reverse()) await c().catch(() => undefined);
      };
      try {
        const dp = await startDataPlane({
          port: 0,
          host: '127.0.0.1',
          keys: [{ id: 'lab', method: v.method, secret: v.secret }],
          allowPrivateDestinations: true,
        });
        closers.push(() => dp.close());
        const seed = createHash('sha256').update(`lab handshake site ${name}`).digest();
        const site = await startWebFront({
          port: 0,
          host: '127.0.0.1',
          secretPath: generateSecretPath(), // the site has no secret path: nothing answers it
          tls: { cert: ctx.certs.cert, key: ctx.certs.key },
          decoy: builtinDecoy({ seed }),
          onUpgrade: () => false,
        });
        closers.push(() => site.close());
        const port = await listenShadowTls({
          port: 0,
          host: '127.0.0.1',
          handshake: { host: '127.0.0.1', port: site.port },
          passwords: [password],
          idleMs: 60_000,
          logger: createLogger({ level: 'silent' }),
          onStream: (stream, info) => dp.server.handleStream(stream, info),
        });
        closers.push(() => port.close());
        // What the path sees of the first session (the genuine client's), for the replay prober.
        const tap = await startHelloTap({ host: '127.0.0.1', port: port.address.port });
        closers.push(() => tap.close());
        const reference = { host: '127.0.0.1', port: site.port };
        return {
          address: tap.address,
          web: { host: STLS_SITE, secretPath: generateSecretPath(), reference },
          shadowTls: { captured: tap.captured },
          stop,
        };
      } catch (err) {
        await stop();
        throw err;
      }
    },
    async startClient(server) {
      const nextHop = shadowTlsNextHop({
        address: server.host,
        port: server.port,
        sni: STLS_SITE,
        password,
        ...(v.cover === false ? { cover: false as const } : {}),
      });
      const client = await startClient({
        socks: { host: '127.0.0.1', port: 0 },
        key: { host: server.host, port: server.port, method: v.method, password: v.secret, nextHop },
      });
      return { socks: { host: '127.0.0.1', port: client.socksAddress!.port }, stop: () => client.close() };
    },
  };
}

/** The ShadowTLS rows of the survival table. */
export function shadowTlsContenders(method: string, secret: string): TunnelContender[] {
  return [
    shadowTlsContender(
      'ladder ShadowTLS v3',
      `Ladder's ShadowTLS v3 port on logical 443 relaying the handshake of ${STLS_SITE} (a site abroad), ${method} inside, D14 record cutting on (the client's default); the prober compares the port with the site and replays the genuine ClientHello`,
      { method, secret, place: directPlacement() },
    ),
    shadowTlsContender(
      'ladder ShadowTLS v3, D14 off',
      "the same with the client's D14 record cutting off (one record per write): the negative control for C8 (profile advanced)",
      { method, secret, place: directPlacement(), cover: false },
    ),
    shadowTlsContender(
      'ladder ShadowTLS v3, origin IP blocked',
      'the same while C1 null-routes the server address: ShadowTLS has no CDN to hide behind, so it fails (the honest row)',
      { method, secret, place: directPlacement({ blockOrigin: true }) },
    ),
  ];
}
