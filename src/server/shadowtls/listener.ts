/**
 * The ShadowTLS v3 port of `ladder server` (--shadowtls-port): a TCP listener whose connections
 * connection.ts serves, handing each switched one to the Shadowsocks server as a stream (every key
 * and method, the client's address for recency, as for any other stream).
 *
 * The handshake server's name is resolved with the system resolver as any outgoing name, kept for
 * a minute, and never logged.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import net, { type AddressInfo, type LookupFunction, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../shared/logger.js';
import { pendingLimitsFor, type PendingCaps, type PendingLimits } from '../pending-limits.js';
import { serveShadowTls, type ShadowTlsOutcome } from './connection.js';
import { ShadowTlsPasswords } from './passwords.js';
import { SeenHellos } from './replay.js';

export const DEFAULT_HANDSHAKE_PORT = 443;
const NAME_TTL_MS = 60_000;

export interface ShadowTlsListenOptions {
  readonly port: number;
  readonly host?: string | undefined;
  /** The real TLS 1.3 website whose handshake clients see (and probers get relayed to). */
  readonly handshake: { readonly host: string; readonly port: number };
  /**
   * The passwords it takes: fixed ones, or a live set (managed mode: the server-wide password, if
   * any, and every usable key's own, passwords.ts).
   */
  readonly passwords: readonly string[] | ShadowTlsPasswords;
  /** Idle limit before the switch (and of a plain relay), ms. */
  readonly idleMs: number;
  readonly logger: Logger;
  /**
   * Caps on connections not switched (../pending-limits.ts), as on the other listeners: over a cap
   * the oldest goes. Default: the default caps; false: none.
   */
  readonly pending?: PendingLimits | PendingCaps | false | undefined;
  onStream(stream: Duplex, info: { remoteAddress: string | undefined }): void;
}

export interface ShadowTlsListener {
  readonly address: AddressInfo;
  /** Connections switched to Shadowsocks and relayed to the handshake server, since the start. */
  readonly counts: Readonly<Record<ShadowTlsOutcome, number>>;
  /** The caps its connections count against until they switch (undefined: none). */
  readonly pending: PendingLimits | undefined;
  close(): Promise<void>;
}

/** A lookup that keeps the handshake server's address(es) for NAME_TTL_MS. */
function cachedLookup(): LookupFunction {
  let cached: { at: number; host: string; addresses: LookupAddress[] } | undefined;
  return ((host: string, options: object, cb: (...args: unknown[]) => void) => {
    const all = (options as { all?: boolean }).all === true;
    const answer = (addresses: LookupAddress[]): void => {
      if (all) cb(null, addresses);
      else cb(null, addresses[0]!.address, addresses[0]!.family);
    };
    if (cached && cached.host === host && Date.now() - cached.at < NAME_TTL_MS)
      return answer(cached.addresses);
    dnsLookup(host, { all: true }, (err, addresses) => {
      if (err || addresses.length === 0) return cb(err ?? new Error('no address'));
      cached = { at: Date.now(), host, addresses };
      answer(addresses);
    });
  }) as LookupFunction;
}

export async function listenShadowTls(opts: ShadowTlsListenOptions): Promise<ShadowTlsListener> {
  const passwords =
    opts.passwords instanceof ShadowTlsPasswords ? opts.passwords : new ShadowTlsPasswords(opts.passwords);
  if (!(opts.passwords instanceof ShadowTlsPasswords) && passwords.size === 0)
    throw new Error('ShadowTLS needs at least one password');
  const sockets = new Set<Socket>();
  const counts: Record<ShadowTlsOutcome, number> = { switched: 0, relayed: 0 };
  const lookup = cachedLookup();
  const pending = pendingLimitsFor(opts.pending);
  const seen = new SeenHellos();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const dialHandshake = (): Socket => {
    const s = net.connect({
      host: opts.handshake.host,
      port: opts.handshake.port,
      allowHalfOpen: true,
      lookup,
    }); // connecting counts against serveShadowTls's idle timer
    track(s);
    let reached = false;
    s.once('connect', () => (reached = true));
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (reached) return; // the site reached, then failed: one connection's business
      // The site cannot be reached: every connection to the port gets a reset, and an operator
      // with a mistyped or blocked site would otherwise see nothing. Its name is configuration,
      // not a user's; at most one line a minute.
      const now = Date.now();
      if (now - lastSiteWarning < 60_000) return;
      lastSiteWarning = now;
      opts.logger.warn(
        { site: `${opts.handshake.host}:${opts.handshake.port}`, err: err.code ?? err.message },
        'shadowtls: the handshake site cannot be reached; every connection to the ShadowTLS port is reset until it can',
      );
    });
    return s;
  };
  let lastSiteWarning = -Infinity;
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    track(client);
    client.on('error', () => {});
    const entry = pending?.add(client.remoteAddress, () => client.destroy());
    if (entry) client.once('close', () => entry.remove());
    serveShadowTls(client, {
      match: (record, remoteAddress) => passwords.match(record, remoteAddress),
      dialHandshake,
      replayed: (record) => seen.replayed(record),
      idleMs: opts.idleMs,
      onOutcome: (o) => {
        counts[o]++;
        if (o === 'switched') entry?.remove();
        if (opts.logger.isLevelEnabled('debug')) opts.logger.debug({ outcome: o }, 'shadowtls connection');
      },
      onStream: (stream, remoteAddress) => opts.onStream(stream, { remoteAddress }),
    });
  });
  server.on('error', (err) => opts.logger.error({ err: err.message }, 'shadowtls listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(
      opts.host === undefined ? { port: opts.port } : { port: opts.port, host: opts.host },
      () => {
        server.off('error', reject);
        resolve();
      },
    );
  });
  const address = server.address() as AddressInfo;
  return {
    address,
    counts,
    pending,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
