import type { AddressInfo, Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import { encodeFirstWrite, makeShapedSalt } from '../protocol/shadowsocks/shaping.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import type { Dialer } from '../transport/dialer.js';
import { ShadowsocksDialer, type ShadowsocksEndpoint } from '../transport/shadowsocks-dialer.js';
import { Shadowsocks2022Dialer } from '../transport/shadowsocks2022-dialer.js';
import { isAead2022MethodName } from '../protocol/shadowsocks/methods2022.js';
import { startHttpInbound } from './http-inbound.js';
import { endpointFromKey } from './key.js';
import { startSocks5Inbound, type SocksCredentials, type UdpAssociateRequest } from './socks5-inbound.js';
import { DEFAULT_FIRST_DATA_WAIT_MS, DEFAULT_IDLE_TIMEOUT_MS, type TunnelContext } from './tunnel.js';

export { endpointFromKey } from './key.js';
export { DEFAULT_FIRST_DATA_WAIT_MS, DEFAULT_IDLE_TIMEOUT_MS } from './tunnel.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface ClientOptions {
  /** An ss:// access key, or an endpoint already parsed. Ignored when `dialer` is given. */
  key?: string | ShadowsocksEndpoint;
  /** Use this dialer instead of one built from `key` (routing, failover, tests). */
  dialer?: Dialer;
  /** SOCKS5 listener ("host:port", "[::1]:port", "port" or an object); omitted = none. */
  socks?: string | ListenAddress | undefined;
  /** HTTP proxy listener; omitted = none. */
  http?: string | ListenAddress | undefined;
  /** Credentials both inbounds require (SOCKS5 RFC 1929, HTTP Proxy-Authorization Basic). */
  auth?: SocksCredentials | undefined;
  /** Wait this long for the application's first bytes (default 50 ms; see tunnel.ts). */
  firstDataWaitMs?: number;
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  /**
   * First-packet shaping (D1/D3, protocol/shadowsocks/shaping.ts): a fresh printable/TLS-like
   * salt prefix per connection and a first-write chunking that avoids the active prober's length
   * trigger. Costs salt entropy (see shaping.ts); refused together with a key's fixed `prefix`.
   */
  shape?: boolean;
  /** Proxy auto-config served by the HTTP inbound at /proxy.pac (e.g. routing/pac.ts generatePac). */
  pac?: () => string;
  /** Hook for SOCKS5 UDP ASSOCIATE (absent: COMMAND_NOT_SUPPORTED). */
  udpAssociate?: (req: UdpAssociateRequest) => void;
  log?: Logger;
}

export interface LocalClient {
  readonly socksAddress: AddressInfo | undefined;
  readonly httpAddress: AddressInfo | undefined;
  /** The dialer every inbound uses. */
  readonly dialer: Dialer;
  /** Open connections (application side plus next hop). */
  readonly openSockets: number;
  /** Stop listening and close every connection. */
  close(): Promise<void>;
}

/** Parse "host:port", "[v6]:port" or "port" (host defaults to 127.0.0.1). */
export function parseListenAddress(spec: string | ListenAddress, what = 'listen address'): ListenAddress {
  if (typeof spec !== 'string') return spec;
  const s = spec.trim();
  let host = '127.0.0.1';
  let portText = s;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(s);
  if (m) {
    host = m[1] ?? m[2]!;
    if (m[1] !== undefined && !isIPv6(m[1]))
      throw new Error(`${what} "${spec}": bracketed host is not an IPv6 address`);
    if (host === '') host = '127.0.0.1';
    portText = m[3]!;
  } else if (!/^\d+$/.test(s)) {
    throw new Error(`${what} "${spec}": expected host:port, [ipv6]:port or a port number`);
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`${what} "${spec}": port outside 0..65535`);
  return { host, port };
}

/**
 * The tunnel dialer for an endpoint: SIP022 for 2022-blake3-* methods, SIP004 otherwise.
 * `shape` (SIP004 only) turns on D1/D3 first-packet shaping.
 */
export function createTunnelDialer(
  ep: ShadowsocksEndpoint,
  opts: { connectTimeoutMs?: number; shape?: boolean } = {},
): Dialer {
  const timeout = opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {};
  if (isAead2022MethodName(ep.method)) {
    if (opts.shape)
      throw new Error('first-packet shaping is for SIP004 methods; 2022 methods pad their own headers');
    return new Shadowsocks2022Dialer({ ...ep, ...timeout });
  }
  if (opts.shape && ep.prefix)
    throw new Error("shaping replaces the key's fixed prefix; use one or the other");
  return new ShadowsocksDialer({
    ...ep,
    ...timeout,
    ...(opts.shape ? { saltFactory: (n: number) => makeShapedSalt(n), firstWrite: encodeFirstWrite } : {}),
  });
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}

/**
 * Start the local proxy client in-process: SOCKS5 and/or HTTP inbounds feeding one dialer
 * (a Shadowsocks tunnel built from `key` unless a dialer is given).
 */
export async function startClient(opts: ClientOptions): Promise<LocalClient> {
  const log = opts.log ?? silentLogger;
  let dialer = opts.dialer;
  if (!dialer) {
    if (opts.key === undefined) throw new Error('startClient needs a key or a dialer');
    const ep = typeof opts.key === 'string' ? endpointFromKey(opts.key) : opts.key;
    dialer = createTunnelDialer(ep, {
      ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
      ...(opts.shape !== undefined ? { shape: opts.shape } : {}),
    });
  }
  if (opts.socks === undefined && opts.http === undefined)
    throw new Error('startClient needs a socks or http listen address');

  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const ctx: TunnelContext = {
    dialer,
    firstDataWaitMs: opts.firstDataWaitMs ?? DEFAULT_FIRST_DATA_WAIT_MS,
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    log,
    track,
  };

  const closers: Array<() => Promise<void>> = [];
  const closeAll = async (): Promise<void> => {
    const pending = closers.map((c) => c());
    for (const s of sockets) s.destroy();
    await Promise.all(pending);
  };
  const serverCloser = (srv: { close(cb: () => void): unknown }) => () =>
    new Promise<void>((r) => srv.close(() => r()));

  let socksAddress: AddressInfo | undefined;
  let httpAddress: AddressInfo | undefined;
  try {
    if (opts.socks !== undefined) {
      const l = parseListenAddress(opts.socks, 'SOCKS5 listen address');
      if (!isLoopback(l.host) && !opts.auth)
        log.warn('SOCKS5 proxy listens beyond loopback without authentication');
      const inbound = await startSocks5Inbound({
        ...ctx,
        host: l.host,
        port: l.port,
        auth: opts.auth,
        udpAssociate: opts.udpAssociate,
        onSocket: track,
      });
      closers.push(serverCloser(inbound.server));
      socksAddress = inbound.address;
    }
    if (opts.http !== undefined) {
      const l = parseListenAddress(opts.http, 'HTTP listen address');
      if (!isLoopback(l.host) && !opts.auth)
        log.warn('HTTP proxy listens beyond loopback without authentication');
      const inbound = await startHttpInbound({
        ...ctx,
        host: l.host,
        port: l.port,
        auth: opts.auth,
        onSocket: track,
        pac: opts.pac,
      });
      closers.push(serverCloser(inbound.server));
      httpAddress = inbound.address;
    }
  } catch (err) {
    await closeAll();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    socksAddress,
    httpAddress,
    dialer,
    get openSockets() {
      return sockets.size;
    },
    close: () => (closing ??= closeAll()),
  };
}
