/**
 * The client's router as a Dialer: each destination goes direct, direct with TLS-record
 * fragmentation, or through the tunnel, as `Router.decide(host)` says (routing/router.ts).
 *
 *   const d = new RoutingDialer({ router, tunnel, direct?, fragment?, clock?, probeTimeoutMs? });
 *   await d.dial(dest, firstData, signal);   // used by tunnel.ts like any Dialer
 *
 * In `auto` mode a direct or fragmented attempt that carried first data (a ClientHello, an HTTP
 * request) is held back from the application until the destination's first reply bytes arrive.
 * If instead the connection is reset, closed, or silent for `probeTimeoutMs` (default 5 s), or
 * the TCP connect itself fails the way a censor makes it fail, the failure is classified
 * (`classifyFailure`), reported (`Router.reportFailure`), and the SAME request is retried at once
 * by the escalated route with the same first data. The application never saw a byte of the failed
 * attempt, so a request fails at most once inside the client and never in front of the user.
 * The reply bytes that ended the hold are put back on the socket (`unshift`), untouched.
 *
 * Names: the tunnel gets domains unresolved (socks5h semantics); only direct and fragment routes
 * resolve a name locally, as a direct connection must. Nothing here logs destinations.
 */
import type { Duplex } from 'node:stream';
import type { SocksAddress } from '../protocol/socks5/address.js';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import {
  UpstreamDialError,
  DirectDialer,
  type DialHints,
  type DialedConnection,
  type Dialer,
  type FirstData,
} from '../transport/dialer.js';
import { nativePlanner, type NativeTunnelPlan } from '../transport/native-dial.js';
import { FragmentDialer } from '../transport/tls-fragment.js';
import { isShadowTlsReset } from '../transport/shadowtls-reset.js';
import { classifyFailure, type Decision, type FailureKind, type Router } from './routing/router.js';
import type { Matcher, Route } from './routing/rules.js';
import { formatAddress } from '../protocol/socks5/address.js';
import type { Logger } from '../shared/logger.js';
import type { LookupResult } from './dns/lookup.js';
import { toSocksAddress } from '../protocol/socks5/address.js';
import { envSwitch } from '../shared/env.js';

export const DEFAULT_PROBE_TIMEOUT_MS = 5000;

export interface RouteEvent {
  route: Route;
  /** 'ok': connected (and, when held, replied); 'failed': gave up on this route. */
  outcome: 'ok' | 'failed';
  /** The failure pattern when one was recognised. */
  kind?: FailureKind | undefined;
  /** The route the request was retried with, if any. */
  retry?: Route | undefined;
}

export interface RoutingDialerOptions {
  router: Router;
  /** The tunnel (a ShadowsocksDialer, or a FailoverDialer over several endpoints). */
  tunnel: Dialer;
  direct?: Dialer;
  fragment?: Dialer;
  clock?: Clock;
  /** auto: how long to wait for the first reply to a direct/fragment first packet (default 5 s). */
  probeTimeoutMs?: number;
  /** Told about every attempt (counters, tests). Carries no destination. */
  onRoute?: (e: RouteEvent) => void;
  /**
   * Resolve names for the direct and fragment routes (dns/lookup.ts DirectLookup over the tunnel
   * or the filtering stub) instead of the system resolver. A `forged` result is the forged-dns
   * failure pattern: auto moves the name on; otherwise the genuine address, if any, is used.
   */
  lookup?: (name: string) => Promise<LookupResult>;
  /**
   * At debug only (destinations are private): one line per connection with its route, why (the
   * rule and its line, the learned failure, or the mode) and the destination, and one per retry.
   */
  log?: Logger;
}

/** Why a decision was made, in words for the debug line. */
function decisionWhy(d: Decision, mode: string): string {
  if (d.source === 'learned') return `learned after ${d.reason ?? 'a failure'}`;
  if (d.source === 'mode') return `--route ${mode}`;
  if (!d.rule) return "the rules' final route";
  const m: Matcher = d.rule.match;
  const value = m.kind === 'domain-regex' ? m.value.source : m.value;
  const at = d.rule.line !== undefined ? ` at line ${d.rule.line}` : '';
  return `${d.rule.soft ? 'measured rule' : 'rule'}${at}: ${m.kind === 'cidr' ? 'ip-cidr' : m.kind},${value}`;
}

const TLS_HANDSHAKE = 0x16;

function looksLikeClientHello(b: Uint8Array | undefined): boolean {
  return !!b && b.length >= 6 && b[0] === TLS_HANDSHAKE && b[1] === 3 && b[5] === 1;
}

/** The errno behind a dial failure ('timeout' for our own connect timer). */
function errnoOf(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } };
  if (e.code === 'ERR_CONNECT_TIMEOUT') return 'timeout';
  // The ShadowTLS dialer names its reset (transport/shadowtls-reset.ts); for routing, a reset.
  if (isShadowTlsReset(err)) return 'ECONNRESET';
  return e.cause?.code ?? e.code;
}

type Held = { ok: true } | { ok: false; errorCode: string; bytesReceived: 0 };

/**
 * A tunnel planned for the addon (planNative) lets the relay open the server's answer itself
 * (LADDER_NATIVE_SALT: no JS call for it) when nobody listens to route events (no onRoute: the
 * CLI's client), unless LADDER_ROUTE_SALT=0 (then the answer comes to JS for every plan, as
 * before). With a listener the answer still comes to JS: its route event goes out then.
 */
export function routeSaltFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_ROUTE_SALT', env);
}

export class RoutingDialer implements Dialer {
  readonly router: Router;
  readonly #tunnel: Dialer;
  readonly #direct: Dialer;
  readonly #fragment: Dialer;
  readonly #clock: Clock;
  readonly #probeMs: number;
  readonly #onRoute: RoutingDialerOptions['onRoute'];
  readonly #lookup: RoutingDialerOptions['lookup'];
  readonly #log: Logger | undefined;
  /** planNative's answerWanted: a route event someone hears must go out when the server answers. */
  readonly #answerWanted: boolean;
  /**
   * What blocks() decided for a destination the inbound then dials (the same object): the dial
   * takes that decision instead of evaluating the rules again.
   */
  readonly #decided = new WeakMap<SocksAddress, Decision>();

  constructor(opts: RoutingDialerOptions) {
    this.router = opts.router;
    this.#tunnel = opts.tunnel;
    this.#direct = opts.direct ?? new DirectDialer();
    this.#fragment = opts.fragment ?? new FragmentDialer();
    this.#clock = opts.clock ?? systemClock;
    this.#probeMs = opts.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    this.#onRoute = opts.onRoute;
    this.#lookup = opts.lookup;
    this.#log = opts.log?.isLevelEnabled('debug') ? opts.log : undefined;
    // A proxy route's 'ok' event reaches only onRoute (it has no retry to tell at debug).
    this.#answerWanted = opts.onRoute !== undefined || !routeSaltFromEnv();
  }

  /** The router's decision for `dest`, told at debug. */
  #decide(dest: SocksAddress): Route {
    const d = this.#decided.get(dest) ?? this.router.decide(dest.host);
    this.#decided.delete(dest);
    this.#log?.debug(`route ${formatAddress(dest)}: ${d.route} (${decisionWhy(d, this.router.mode)})`);
    return d.route;
  }

  /**
   * True when the rules block `dest` (told at debug with why): the inbound refuses the
   * application at once (SOCKS5 reply 2, HTTP 403) instead of dialling.
   */
  blocks(dest: SocksAddress): boolean {
    const d = this.router.decide(dest.host);
    if (d.route !== 'block') {
      this.#decided.set(dest, d);
      return false;
    }
    this.#log?.debug(`route ${formatAddress(dest)}: block (${decisionWhy(d, this.router.mode)})`);
    return true;
  }

  /** An attempt's outcome to onRoute; a retry by another route told at debug. */
  #event(dest: SocksAddress, e: RouteEvent): void {
    this.#onRoute?.(e);
    if (e.retry && this.#log)
      this.#log.debug(
        `route ${formatAddress(dest)}: ${e.retry} (retry after ${e.kind ?? 'a failure'} by ${e.route})`,
      );
  }

  /**
   * The address to dial for a direct or fragment route: `dest` itself, or the name resolved by
   * our lookup; 'forged' when the lookup saw injection and there is a better route to take.
   */
  async #target(
    dest: SocksAddress,
    route: Route,
  ): Promise<SocksAddress | { forged: true } | { error: string }> {
    if (!this.#lookup || dest.type !== 'domain') return dest;
    const r = await this.#lookup(dest.host);
    if ('forged' in r) {
      const next = this.router.reportFailure(dest.host, route, 'forged-dns');
      if (next || r.address === undefined) {
        this.#event(dest, { route, outcome: 'failed', kind: 'forged-dns', retry: next });
        return { forged: true };
      }
      return toSocksAddress(r.address, dest.port);
    }
    if ('error' in r) return r;
    return toSocksAddress(r.address, dest.port);
  }

  #dialerFor(route: Route): Dialer {
    return route === 'proxy' ? this.#tunnel : route === 'fragment' ? this.#fragment : this.#direct;
  }

  async dial(
    dest: SocksAddress,
    firstData?: FirstData,
    signal?: AbortSignal,
    hints?: DialHints,
  ): Promise<DialedConnection> {
    // Hints reach the tunnel only: the direct and fragment routes make their own sockets.
    let route = this.#decide(dest);
    if (route === 'proxy') return this.#once(route, dest, firstData, signal, hints);
    // The inbounds refuse blocked destinations before asking (blocks()); a caller that did not
    // gets a dial that reached nothing.
    if (route === 'block')
      throw Object.assign(new UpstreamDialError('ERR_CONNECT', 'the destination is blocked by a rule'), {
        dialled: false,
      });
    if (this.router.mode !== 'auto') {
      const target = await this.#target(dest, route);
      if ('forged' in target)
        throw viaRoute(new UpstreamDialError('ERR_CONNECT', 'the name drew only forged DNS answers'), route);
      if ('error' in target)
        throw viaRoute(new UpstreamDialError('ERR_CONNECT', `name lookup failed: ${target.error}`), route);
      return this.#once(route, target, firstData, signal);
    }
    // auto with a direct or fragment route: settle the first data once so a retry can resend it.
    const data = firstData === undefined || firstData instanceof Uint8Array ? firstData : await firstData;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (route === 'proxy') return this.#once(route, dest, data, signal, hints);
      const target = await this.#target(dest, route);
      if ('forged' in target) {
        const next = this.router.decide(dest.host).route;
        if (next === route)
          throw viaRoute(
            new UpstreamDialError('ERR_CONNECT', 'the name drew only forged DNS answers'),
            route,
          );
        route = next;
        continue;
      }
      if ('error' in target) {
        if (target.error === 'NXDOMAIN')
          throw viaRoute(new UpstreamDialError('ERR_CONNECT', 'name lookup failed: NXDOMAIN'), route);
        // No answer at all (SERVFAIL, timeout): what DNS blocking looks like from here.
        const next: Route | undefined = this.router.reportFailure(dest.host, route, 'connect-failed');
        this.#event(dest, { route, outcome: 'failed', kind: 'connect-failed', retry: next });
        if (!next)
          throw viaRoute(new UpstreamDialError('ERR_CONNECT', `name lookup failed: ${target.error}`), route);
        route = next;
        continue;
      }
      let conn: DialedConnection;
      try {
        conn = await this.#dialerFor(route).dial(target, data, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        const kind = classifyFailure({
          phase: 'connect',
          errorCode: localDnsFailure(err) ? 'ETIMEDOUT' : errnoOf(err),
          bytesSent: 0,
          bytesReceived: 0,
          sentClientHello: false,
        });
        const next: Route | undefined = kind ? this.router.reportFailure(dest.host, route, kind) : undefined;
        this.#event(dest, { route, outcome: 'failed', kind, retry: next });
        if (!next) throw viaRoute(err, route);
        route = next;
        continue;
      }
      if (!data || data.length === 0) {
        this.#event(dest, { route, outcome: 'ok' });
        return conn;
      }
      const held = await this.#hold(conn.socket, signal);
      if (held.ok) {
        this.router.reportSuccess(dest.host, route);
        this.#event(dest, { route, outcome: 'ok' });
        return conn;
      }
      conn.socket.destroy();
      if (signal?.aborted) throw new UpstreamDialError('ERR_ABORTED', 'dial aborted');
      const kind = classifyFailure({
        phase: 'established',
        errorCode: held.errorCode,
        bytesSent: data.length,
        bytesReceived: 0,
        sentClientHello: looksLikeClientHello(data),
      });
      const next: Route | undefined = kind ? this.router.reportFailure(dest.host, route, kind) : undefined;
      this.#event(dest, { route, outcome: 'failed', kind, retry: next });
      if (!next)
        throw viaRoute(
          new UpstreamDialError('ERR_CLOSED', `destination closed before replying (${held.errorCode})`),
          route,
        );
      route = next;
    }
    throw new UpstreamDialError('ERR_CONNECT', 'no route left to try');
  }

  /**
   * dial() for a tunnel set up in the addon (native-dial.ts NativeTunnelPlan): only for a
   * destination the router sends through the tunnel; its route event once the connect is known
   * (when the server answers, for an onRoute listener; at the end otherwise, heard by nobody).
   */
  planNative(dest: SocksAddress, data: Uint8Array, hints: DialHints): NativeTunnelPlan | undefined {
    if (this.router.decide(dest.host).route !== 'proxy') return undefined;
    const inner = nativePlanner(this.#tunnel)?.planNative(dest, data, hints);
    if (!inner) return undefined;
    if (this.#log) this.#decide(dest); // told once: dial() is not called for a plan
    return {
      ...inner,
      ...(this.#answerWanted ? { answerWanted: true } : {}), // the route event goes out when the server answers
      connected: () => {
        this.#event(dest, { route: 'proxy', outcome: 'ok' });
        inner.connected();
      },
      failed: async (err) => {
        try {
          const conn = await inner.failed(err);
          this.#event(dest, { route: 'proxy', outcome: 'ok' });
          return conn;
        } catch (e) {
          this.#event(dest, { route: 'proxy', outcome: 'failed' });
          throw e;
        }
      },
    };
  }

  async #once(
    route: Route,
    dest: SocksAddress,
    firstData: FirstData,
    signal?: AbortSignal,
    hints?: DialHints,
  ): Promise<DialedConnection> {
    try {
      const conn = await this.#dialerFor(route).dial(
        dest,
        firstData,
        signal,
        route === 'proxy' ? hints : undefined,
      );
      this.#event(dest, { route, outcome: 'ok' });
      return conn;
    } catch (err) {
      if (!signal?.aborted) this.#event(dest, { route, outcome: 'failed' });
      throw viaRoute(err, route);
    }
  }

  /**
   * Wait for the first reply bytes without consuming them: ok when they come (they are put back),
   * a failure on reset/close/end/timeout/abort first.
   */
  #hold(socket: Duplex, signal?: AbortSignal): Promise<Held> {
    return new Promise((resolve) => {
      let timer: Timer | undefined;
      const finish = (h: Held): void => {
        if (timer) this.#clock.clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('end', onEnd);
        socket.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        resolve(h);
      };
      const onData = (chunk: Buffer): void => {
        socket.pause();
        socket.unshift(chunk);
        finish({ ok: true });
      };
      const onError = (err: NodeJS.ErrnoException): void =>
        finish({ ok: false, errorCode: err.code ?? 'ECONNRESET', bytesReceived: 0 });
      // A FIN (or close) with nothing received after our first packet: treat like a reset.
      const onEnd = (): void => finish({ ok: false, errorCode: 'ECONNRESET', bytesReceived: 0 });
      const onClose = onEnd;
      const onAbort = (): void => finish({ ok: false, errorCode: 'ERR_ABORTED', bytesReceived: 0 });
      socket.on('data', onData);
      socket.once('error', onError);
      socket.once('end', onEnd);
      socket.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      if (this.#probeMs > 0) {
        timer = this.#clock.setTimeout(
          () => finish({ ok: false, errorCode: 'timeout', bytesReceived: 0 }),
          this.#probeMs,
        );
        timer.unref?.();
      }
    });
  }
}

/**
 * `err` marked with the route that failed when it is not the tunnel (direct, fragment), so the
 * log says a direct connection failed, not that the server refused (tunnel.ts logDialFailure).
 */
function viaRoute<E>(err: E, route: Route): E {
  if (route !== 'proxy' && typeof err === 'object' && err !== null) Object.assign(err, { route });
  return err;
}

/**
 * A local name lookup that failed (ENOTFOUND/EAI_AGAIN): for a direct route this is what DNS
 * blocking looks like from here, so auto mode escalates it like a connect failure.
 */
function localDnsFailure(err: unknown): boolean {
  const c = errnoOf(err);
  return c === 'ENOTFOUND' || c === 'EAI_AGAIN' || c === 'EAI_FAIL';
}
