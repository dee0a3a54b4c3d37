import type { AddressInfo, Socket } from 'node:net';
import { encodeFirstWrite, makeShapedSalt } from '../protocol/shadowsocks/shaping.js';
import {
  firstWritePadding2022,
  makeShapedSalt2022,
  shapes2022,
} from '../protocol/shadowsocks/shaping2022.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { DEFAULT_DNS_UPSTREAM, DEFAULT_LISTEN_HOST } from '../config/defaults.js';
import { parseHostPort } from '../shared/parse.js';
import { DirectDialer, type Dialer } from '../transport/dialer.js';
import { ShadowsocksDialer, type ShadowsocksEndpoint } from '../transport/shadowsocks-dialer.js';
import { LazyShadowsocks2022Dialer } from '../transport/shadowsocks2022-lazy.js';
import { getAead2022Method, isAead2022MethodName } from '../protocol/shadowsocks/methods2022.js';
import { toSocksAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { DialerStream } from '../transport/dialer-stream.js';
import { FragmentDialer, type TlsFragmentOptions } from '../transport/tls-fragment.js';
import { nativeRelayFromEnv } from '../transport/native-handoff.js';
import { nativeRelay, nativeSocksFront } from '../transport/native-sockets.js';
import type * as DnsResolvers from './dns/resolvers.js';
import type { DnsResolver } from './dns/resolvers.js';
import type * as DnsServer from './dns/server.js';
import type { DnsServerHandle } from './dns/server.js';
import type * as DnsLookup from './dns/lookup.js';
import { FailoverDialer } from './routing/failover.js';
import type { Endpoint, EndpointFailure } from './routing/endpoints.js';
import { generatePac } from './routing/pac.js';
import { Router, type RouteMode } from './routing/router.js';
import { RuleSet } from './routing/rules.js';
import { RoutingDialer, type RouteEvent } from './routing-dialer.js';
import { AnswerWatchDialer } from './answer-watch.js';
import { endpointFromKey } from './key.js';
import { NativeTunnels } from './native-tunnel.js';
import { NativeSocks, nativeSocksFromEnv, nativeTunnelFromEnv } from './native-socks.js';
import { startSocks5Inbound, type SocksCredentials, type UdpAssociateRequest } from './socks5-inbound.js';
import { DEFAULT_FIRST_DATA_WAIT_MS, DEFAULT_IDLE_TIMEOUT_MS, type TunnelContext } from './tunnel.js';

export { endpointFromKey } from './key.js';
export { DEFAULT_FIRST_DATA_WAIT_MS, DEFAULT_IDLE_TIMEOUT_MS } from './tunnel.js';
export { DEFAULT_NO_ANSWER_MS } from './answer-watch.js';
export { RoutingDialer } from './routing-dialer.js';

export type DnsMode = 'tunnel' | 'stub';

/** In auto mode, how long a direct or fragment TCP connect may take before the tunnel is tried. */
export const DEFAULT_AUTO_DIRECT_CONNECT_TIMEOUT_MS = 4000;

/** Default resolver for `--dns`: asked through the tunnel (resolved at the server's side). */
export { DEFAULT_DNS_UPSTREAM };

export interface DnsOptions {
  /** Where the local DNS server listens (UDP and TCP), e.g. "127.0.0.1:5353". */
  listen: string | ListenAddress;
  /**
   * 'tunnel' (default): every query goes as DNS over TCP through the tunnel to `upstream`, so no
   * plaintext DNS for remote names leaves the client. 'stub': plain UDP to `upstream`, filtering
   * injected answers (FilteringUdpResolver); in auto routing a forged answer moves the name to
   * the tunnel.
   */
  mode?: DnsMode;
  /** The resolver to ask (default 1.1.1.1:53). */
  upstream?: { host: string; port: number };
  /** Stub mode: known forged answer addresses (IPs or CIDRs). */
  forged?: Iterable<string>;
}

export interface FailoverOptions {
  /** Avoid a failed server host:port this long (default 180 s). */
  residualMs?: number;
  /** Per-endpoint dial limit (default 3 s). */
  attemptTimeoutMs?: number;
  /** No reply this long after the first data marks the endpoint (default 4 s). */
  stallMs?: number;
  /** Told about each endpoint failure: the endpoint's position in the list, not its address. */
  onEndpointFailure?: (index: number, kind: EndpointFailure, err?: unknown) => void;
}

export interface RoutingOptions {
  /** Dialer for the 'direct' route (default DirectDialer). */
  direct?: Dialer;
  /** Dialer (or FragmentDialer options) for the 'fragment' route. */
  fragment?: Dialer | TlsFragmentOptions;
  /** auto: wait this long for a direct/fragment reply before escalating (default 5 s). */
  probeTimeoutMs?: number;
  /** auto: how long a learned route is kept (default 30 min). */
  ttlMs?: number;
  onRoute?: (e: RouteEvent) => void;
}

export interface ListenAddress {
  host: string;
  port: number;
}

export interface ClientOptions {
  /** An ss:// access key, or an endpoint already parsed. Ignored when `dialer` is given. */
  key?: string | ShadowsocksEndpoint;
  /**
   * Several server endpoints (D10/D15), in order of preference; `key`, if also given, comes
   * first. With two or more, the tunnel is a FailoverDialer: a stall or reset moves new
   * connections to the next endpoint and keeps off the failed host:port for its residual period.
   */
  keys?: ReadonlyArray<string | ShadowsocksEndpoint>;
  failover?: FailoverOptions;
  /** Use this tunnel dialer instead of one built from the keys (lab, tests). */
  dialer?: Dialer;
  /**
   * A tunnel built by the caller from keys (the picker over a dynamic key's endpoints,
   * picker.ts): used instead of `key`/`keys`, but watched for unanswered connections like a
   * tunnel built here. `close` runs when the client closes.
   */
  tunnel?: { dialer: Dialer; endpoints: number; edition2022?: boolean; close?: () => void };
  /** 'proxy' (default): everything through the tunnel; 'direct'; 'auto' (learns per host). */
  route?: RouteMode;
  /** Routing rules (routing/rules.ts or acl.ts); they win over the mode. */
  rules?: RuleSet;
  routing?: RoutingOptions;
  /** Local DNS server (`--dns`). */
  dns?: DnsOptions;
  /** Time source for failover residuals and route TTLs (tests). */
  clock?: Clock;
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
   * Log one line at info when the server has sent nothing this long after the application's
   * first bytes (default 10 s; answer-watch.ts). Only for tunnels built from keys, not for an
   * injected `dialer`. The connection is left open either way.
   */
  noAnswerMs?: number;
  /**
   * Where a key source that can explain a refusal (e.g. a dynamic-key server's error message)
   * hands its text to the client's "no answer" lines (the CLI's dynamic-key source does).
   */
  keySourceMessage?: () => string | undefined;
  /**
   * First-packet shaping (D1/D3, protocol/shadowsocks/shaping.ts): a fresh printable/TLS-like
   * salt prefix per connection and a first-write chunking that avoids the active prober's length
   * trigger. Costs salt entropy (see shaping.ts); refused together with a key's fixed `prefix`.
   */
  shape?: boolean | undefined;
  /**
   * Proxy auto-config served by the HTTP inbound at /proxy.pac. Default: one generated from
   * `rules` (routing/pac.ts) that sends what is not direct to this client's own listeners.
   */
  pac?: () => string;
  /**
   * Carry established raw SIP004 TCP tunnels of SOCKS5 connections in the native relay
   * (native-tunnel.ts); on unless LADDER_NATIVE_RELAY=0. Where the addon has no relay, relay.ts.
   */
  nativeRelay?: boolean;
  /** With `nativeRelay`: hand a tunnel over once it moved this many bytes (default 64 KiB). */
  nativeRelayAfterBytes?: number;
  /**
   * With `nativeRelay` and no `auth`: accept and answer SOCKS5 in the addon and relay raw
   * SIP004 tunnels natively from their first byte (native-socks.ts). On unless
   * LADDER_NATIVE_SOCKS=0.
   */
  nativeSocks?: boolean;
  /**
   * With `nativeSocks`: set raw SIP004 tunnels to an IP-literal server up in the addon, connect
   * and relay start with no JS call (native-socks.ts). On unless LADDER_NATIVE_TUNNEL=0.
   */
  nativeTunnel?: boolean;
  /** Hook for SOCKS5 UDP ASSOCIATE (absent: COMMAND_NOT_SUPPORTED). */
  udpAssociate?: (req: UdpAssociateRequest) => void;
  log?: Logger;
}

export interface LocalClient {
  readonly socksAddress: AddressInfo | undefined;
  readonly httpAddress: AddressInfo | undefined;
  /** The dialer every inbound uses (the RoutingDialer, or the tunnel when everything is proxied). */
  readonly dialer: Dialer;
  /** The tunnel dialer (a FailoverDialer with several endpoints). */
  readonly tunnel: Dialer;
  /** Set when there are several endpoints. */
  readonly failover: FailoverDialer | undefined;
  /** Set when routing is on (a mode other than proxy, or rules). */
  readonly router: Router | undefined;
  /** The local DNS server, when `dns` was given. */
  readonly dnsAddress: { host: string; udpPort: number; tcpPort: number } | undefined;
  readonly dnsMode: DnsMode | undefined;
  /** How many server endpoints the tunnel has (0 with an injected dialer). */
  readonly endpoints: number;
  /** The PAC file the HTTP inbound serves (undefined without an HTTP listener). */
  pac(): string | undefined;
  /** Open connections (application side plus next hop; a native relay counts two). */
  readonly openSockets: number;
  /** Tunnels the SOCKS5 front set up in the addon so far (native-socks.ts; tests). */
  readonly nativeTunnels: number;
  /** Of those, the ones whose relay opened the server's answer itself (LADDER_NATIVE_SALT; tests). */
  readonly nativeSalted: number;
  /** Stop listening and close every connection. */
  close(): Promise<void>;
}

/** Parse "host:port", "[v6]:port" or "port" (host defaults to 127.0.0.1). */
export function parseListenAddress(spec: string | ListenAddress, what = 'listen address'): ListenAddress {
  if (typeof spec !== 'string') return spec;
  return parseHostPort(spec, what, { defaultHost: DEFAULT_LISTEN_HOST });
}

/**
 * Whether `createTunnelDialer` shapes an endpoint's first packets when the caller did not say:
 * yes for keys without a fixed Outline `prefix` (D1/D3, a default of our own): every SIP004
 * method, and the 2022 methods whose 32-byte salt leaves room for a prefix after 16 random bytes
 * (shaping2022.ts; 2022-blake3-aes-128-gcm's 16-byte salt does not). Keys with a `prefix` keep it.
 * Not over WebSocket, gRPC or ShadowTLS (a key's `websocket`, `grpc` or `shadowTls` transport): the TCP connection's first packet there is the TLS or HTTP
 * upgrade, never the Shadowsocks salt, so shaping would cost a prefix draw and a second chunk
 * per connection (a Mux.Cool session) for nothing on the wire (`--shape` still insists).
 */
export function shapesByDefault(
  ep: ShadowsocksEndpoint & { websocket?: unknown; grpc?: unknown; shadowTls?: unknown },
): boolean {
  if (ep.prefix && ep.prefix.length > 0) return false;
  if (ep.websocket || ep.grpc || ep.shadowTls) return false;
  return !isAead2022MethodName(ep.method) || shapes2022(getAead2022Method(ep.method).saltSize);
}

/**
 * The tunnel dialer for an endpoint: SIP022 for 2022-blake3-* methods, SIP004 otherwise.
 * `shape`: D1/D3 first-packet shaping (shaping.ts, shaping2022.ts). Undefined means the default
 * (`shapesByDefault`); false turns it off (the lab's negative control); true insists, and is
 * refused for keys with a prefix and for 2022-blake3-aes-128-gcm.
 */
export function createTunnelDialer(
  ep: ShadowsocksEndpoint,
  opts: { connectTimeoutMs?: number; shape?: boolean | undefined } = {},
): Dialer {
  const timeout = opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {};
  if (opts.shape === true && ep.prefix)
    throw new Error("shaping replaces the key's fixed prefix; use one or the other");
  const shape = opts.shape ?? shapesByDefault(ep);
  if (isAead2022MethodName(ep.method)) {
    const method = getAead2022Method(ep.method);
    if (shape && !shapes2022(method.saltSize))
      throw new Error(
        `first-packet shaping needs a 32-byte salt; ${method.name}'s ${method.saltSize}-byte salt has no room for a prefix after 16 random bytes`,
      );
    return new LazyShadowsocks2022Dialer({
      ...ep,
      ...timeout,
      ...(shape
        ? {
            saltFactory: (n: number) => makeShapedSalt2022(n),
            firstWritePadding: (unpadded: number, dataLength: number) =>
              firstWritePadding2022(unpadded, dataLength),
          }
        : {}),
    });
  }
  return new ShadowsocksDialer({
    ...ep,
    ...timeout,
    ...(shape
      ? { saltFactory: (n: number) => makeShapedSalt(n), freshSalts: true, firstWrite: encodeFirstWrite }
      : {}),
  });
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}

/** The tunnel over every configured endpoint: one dialer, or a FailoverDialer over several. */
function buildTunnel(
  opts: ClientOptions,
  clock: Clock,
  log: Logger,
): {
  tunnel: Dialer;
  failover: FailoverDialer | undefined;
  endpoints: number;
  watch: AnswerWatchDialer | undefined;
  closeHops: () => void;
} {
  if (opts.dialer)
    return { tunnel: opts.dialer, failover: undefined, endpoints: 0, watch: undefined, closeHops: () => {} };
  const { tunnel, failover, endpoints, edition2022, closeHops } = opts.tunnel
    ? {
        tunnel: opts.tunnel.dialer,
        failover: undefined,
        endpoints: opts.tunnel.endpoints,
        edition2022: opts.tunnel.edition2022 ?? false,
        closeHops: opts.tunnel.close ?? ((): void => {}),
      }
    : buildKeyTunnel(opts, clock);
  // Every tunnelled connection (SOCKS5, HTTP, DNS through the tunnel) tells the user when the
  // server never answers.
  const watch = new AnswerWatchDialer(tunnel, {
    log,
    clock,
    ...(opts.noAnswerMs !== undefined ? { noAnswerMs: opts.noAnswerMs } : {}),
    ...(opts.keySourceMessage ? { keySourceMessage: opts.keySourceMessage } : {}),
    edition2022,
  });
  return { tunnel: watch, failover, endpoints, watch, closeHops };
}

/** The tunnel dialer built from the configured keys. */
function buildKeyTunnel(
  opts: ClientOptions,
  clock: Clock,
): {
  tunnel: Dialer;
  failover: FailoverDialer | undefined;
  endpoints: number;
  edition2022: boolean;
  closeHops: () => void;
} {
  const all = [...(opts.key !== undefined ? [opts.key] : []), ...(opts.keys ?? [])];
  if (all.length === 0) throw new Error('startClient needs a key or a dialer');
  const eps = all.map((k) => (typeof k === 'string' ? endpointFromKey(k, 'local') : k));
  const edition2022 = eps.some((ep) => isAead2022MethodName(ep.method));
  // Transports that keep connections of their own (pooled WebSockets) close with the client.
  const closeHops = (): void => {
    for (const ep of eps) (ep.nextHop as { close?: () => void } | undefined)?.close?.();
  };
  const dialerOpts = {
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    shape: opts.shape,
  };
  // Build every dialer now so a bad key fails at startup, not at its first use.
  const dialers = new Map<Endpoint, Dialer>(eps.map((ep) => [ep, createTunnelDialer(ep, dialerOpts)]));
  if (eps.length === 1)
    return { tunnel: dialers.get(eps[0]!)!, failover: undefined, endpoints: 1, edition2022, closeHops };
  const f = opts.failover ?? {};
  const failover = new FailoverDialer({
    endpoints: eps,
    dialerFor: (e) => dialers.get(e)!,
    clock,
    ...(f.residualMs !== undefined ? { residualMs: f.residualMs } : {}),
    ...(f.attemptTimeoutMs !== undefined ? { attemptTimeoutMs: f.attemptTimeoutMs } : {}),
    ...(f.stallMs !== undefined ? { stallMs: f.stallMs } : {}),
    onEndpointFailure: (e, kind, err) =>
      f.onEndpointFailure?.(eps.indexOf(e as ShadowsocksEndpoint), kind, err),
  });
  return { tunnel: failover, failover, endpoints: eps.length, edition2022, closeHops };
}

function pacProxyString(socks: AddressInfo | undefined, http: AddressInfo | undefined): string {
  const hp = (a: AddressInfo): string => {
    const host =
      a.address === '0.0.0.0'
        ? '127.0.0.1'
        : a.address === '::'
          ? '[::1]'
          : a.family === 'IPv6'
            ? `[${a.address}]`
            : a.address;
    return `${host}:${a.port}`;
  };
  const parts: string[] = [];
  if (socks) parts.push(`SOCKS5 ${hp(socks)}`, `SOCKS ${hp(socks)}`);
  if (http) parts.push(`PROXY ${hp(http)}`);
  return parts.join('; ');
}

/** The --dns modules, loaded on demand. */
async function loadDns(): Promise<typeof DnsResolvers & typeof DnsServer & typeof DnsLookup> {
  const [resolvers, server, lookup] = await Promise.all([
    import('./dns/resolvers.js'),
    import('./dns/server.js'),
    import('./dns/lookup.js'),
  ]);
  return { ...resolvers, ...server, ...lookup };
}

/**
 * Start the local proxy client in-process: SOCKS5 and/or HTTP inbounds (and optionally a DNS
 * server) feeding one dialer: the router over direct / fragment / tunnel when routing is on,
 * else the tunnel, which is a FailoverDialer when there are several server endpoints.
 */
export async function startClient(opts: ClientOptions): Promise<LocalClient> {
  const log = opts.log ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  if (opts.socks === undefined && opts.http === undefined)
    throw new Error('startClient needs a socks or http listen address');
  const { tunnel, failover, endpoints, watch, closeHops } = buildTunnel(opts, clock, log);
  const mode: RouteMode = opts.route ?? 'proxy';
  if (mode !== 'auto' && mode !== 'proxy' && mode !== 'direct')
    throw new Error(`route must be auto, proxy or direct, got "${String(mode)}"`);
  // The DNS resolver (--dns): built first, because the direct routes resolve names through it.
  let resolver: DnsResolver | undefined;
  // Loaded only with --dns: the DNS modules pull in dns-packet, megabytes an idle client without
  // a DNS server need not carry (see test/cli/lazy-loading.test.ts).
  const dns = opts.dns ? await loadDns() : undefined;
  if (opts.dns && dns) {
    const { FilteringUdpResolver, TunnelDnsResolver } = dns;
    const upstream = opts.dns.upstream ?? DEFAULT_DNS_UPSTREAM;
    if ((opts.dns.mode ?? 'tunnel') === 'tunnel') {
      const dest = toSocksAddress(upstream.host, upstream.port);
      // Always the tunnel, whatever the route mode: names are resolved at the server's side.
      resolver = new TunnelDnsResolver({
        upstream: dest,
        dial: async (d, first) => {
          const s = new DialerStream(tunnel, d);
          if (first) s.write(first);
          return s;
        },
      });
    } else {
      resolver = new FilteringUdpResolver({
        upstream,
        ...(opts.dns.forged ? { forged: opts.dns.forged } : {}),
        onForged: (info) => {
          if (router && info.question) router.reportFailure(info.question, 'direct', 'forged-dns');
          log.info({ reasons: info.reasons }, 'forged DNS answer dropped');
        },
      });
    }
  }
  const directLookup = resolver && dns ? new dns.DirectLookup({ resolver, clock }) : undefined;
  const closeResolver = (): void => {
    if (dns && resolver instanceof dns.TunnelDnsResolver) resolver.close();
  };

  let router: Router | undefined;
  let dialer: Dialer = tunnel;
  // At debug the router runs for every mode, so each connection's route and destination are told
  // (routing-dialer.ts); it sends everything through the tunnel as the bare tunnel does.
  if (
    mode !== 'proxy' ||
    (opts.rules && (opts.rules.rules.length > 0 || opts.rules.fallback)) ||
    log.isLevelEnabled('debug')
  ) {
    const r = opts.routing ?? {};
    router = new Router({
      mode,
      rules: opts.rules,
      clock,
      ...(r.ttlMs !== undefined ? { ttlMs: r.ttlMs } : {}),
    });
    // auto: a direct connect that hangs is a censor's null route as often as not; give up on it
    // sooner than on the tunnel, since the request is retried through the tunnel anyway.
    const directTimeoutMs =
      opts.connectTimeoutMs ?? (mode === 'auto' ? DEFAULT_AUTO_DIRECT_CONNECT_TIMEOUT_MS : undefined);
    const timeout = directTimeoutMs !== undefined ? { connectTimeoutMs: directTimeoutMs } : {};
    const fragment =
      r.fragment && 'dial' in r.fragment
        ? r.fragment
        : new FragmentDialer({ ...timeout, ...(r.fragment ?? {}) });
    dialer = new RoutingDialer({
      router,
      tunnel,
      direct: r.direct ?? new DirectDialer(timeout),
      fragment,
      clock,
      ...(r.probeTimeoutMs !== undefined ? { probeTimeoutMs: r.probeTimeoutMs } : {}),
      ...(r.onRoute ? { onRoute: r.onRoute } : {}),
      log,
      // With --dns, direct routes resolve names through it (tunnel or filtering stub), so a
      // direct connection never goes to an injected address.
      ...(directLookup ? { lookup: (name: string) => directLookup.lookup(name) } : {}),
    });
  }

  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const relayOn = opts.nativeRelay ?? nativeRelayFromEnv();
  const relayFns = relayOn ? nativeRelay() : undefined;
  // A block route must answer SOCKS5 reply 2 before success, which the addon's front (it answers
  // CONNECT in C++) cannot: rules with a block route keep SOCKS5 in JS.
  const blocks = dialer instanceof RoutingDialer && !!opts.rules?.blocks ? dialer : undefined;
  const frontFns =
    relayOn && !opts.auth && !blocks && (opts.nativeSocks ?? nativeSocksFromEnv())
      ? nativeSocksFront()
      : undefined;
  let front: NativeSocks | undefined;
  const natives = relayFns
    ? new NativeTunnels(relayFns, (s) => sockets.delete(s), log, opts.nativeRelayAfterBytes)
    : undefined;
  const ctx: TunnelContext = {
    dialer,
    firstDataWaitMs: opts.firstDataWaitMs ?? DEFAULT_FIRST_DATA_WAIT_MS,
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    log,
    track,
  };

  const closers: Array<() => Promise<void>> = [async () => closeHops()];
  const closeAll = async (): Promise<void> => {
    const pending = closers.map((c) => c());
    closeResolver();
    watch?.close();
    for (const s of sockets) s.destroy();
    natives?.closeAll();
    front?.close();
    await Promise.all(pending);
  };
  const serverCloser = (srv: { close(cb: () => void): unknown }) => () =>
    new Promise<void>((r) => srv.close(() => r()));

  let socksAddress: AddressInfo | undefined;
  let httpAddress: AddressInfo | undefined;
  let dnsAddress: LocalClient['dnsAddress'];
  let pacText: string | undefined;
  const pac =
    opts.pac ??
    ((): string =>
      (pacText ??= generatePac(opts.rules ?? new RuleSet(), {
        proxy: pacProxyString(socksAddress, httpAddress),
        defaultRoute: opts.rules?.fallback ?? (mode === 'direct' ? 'direct' : 'proxy'),
      })));
  try {
    if (opts.socks !== undefined) {
      const l = parseListenAddress(opts.socks, 'SOCKS5 listen address');
      if (!isLoopback(l.host) && !opts.auth)
        log.warn('SOCKS5 proxy listens beyond loopback without authentication');
      const socksOpts = {
        ...ctx,
        host: l.host,
        port: l.port,
        auth: opts.auth,
        udpAssociate: opts.udpAssociate,
        onSocket: track,
        native: natives,
        blocked: blocks ? (d: SocksAddress) => blocks.blocks(d) : undefined,
      };
      const inbound = await startSocks5Inbound(socksOpts);
      closers.push(serverCloser(inbound.server));
      socksAddress = inbound.address;
      if (frontFns) {
        const f = new NativeSocks(frontFns, socksOpts, opts.nativeTunnel ?? nativeTunnelFromEnv());
        if (f.adopt(inbound.server)) front = f;
      }
    }
    if (opts.http !== undefined) {
      const l = parseListenAddress(opts.http, 'HTTP listen address');
      if (!isLoopback(l.host) && !opts.auth)
        log.warn('HTTP proxy listens beyond loopback without authentication');
      // Loaded only with an HTTP proxy: node:http is not needed for SOCKS alone (idle memory).
      const { startHttpInbound } = await import('./http-inbound.js');
      const inbound = await startHttpInbound({
        ...ctx,
        host: l.host,
        port: l.port,
        auth: opts.auth,
        onSocket: track,
        pac,
        blocked: blocks ? (d: SocksAddress) => blocks.blocks(d) : undefined,
      });
      closers.push(serverCloser(inbound.server));
      httpAddress = inbound.address;
    }
    if (opts.dns && resolver && dns) {
      const l = parseListenAddress(opts.dns.listen, 'DNS listen address');
      // No authentication in DNS: beyond loopback it is an open resolver (and a reflector).
      if (!isLoopback(l.host))
        log.warn('DNS server listens beyond loopback: anyone who reaches it can resolve through it');
      const srv: DnsServerHandle = await dns.startDnsServer({ host: l.host, port: l.port, resolver });
      closers.push(() => srv.close());
      dnsAddress = { host: l.host, udpPort: srv.udpPort, tcpPort: srv.tcpPort };
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
    tunnel,
    failover,
    router,
    dnsAddress,
    dnsMode: opts.dns ? (opts.dns.mode ?? 'tunnel') : undefined,
    endpoints,
    pac: () => (httpAddress ? pac() : undefined),
    get nativeTunnels() {
      return front?.tunnelled ?? 0;
    },
    get nativeSalted() {
      return front?.salted ?? 0;
    },
    get openSockets() {
      return sockets.size + 2 * (natives?.size ?? 0) + 2 * (front?.size ?? 0);
    },
    close: () => (closing ??= closeAll()),
  };
}
