/**
 * The client side of the gRPC transport (./grpc-stream.ts): one HTTP/2 connection per server,
 * each Shadowsocks connection one `Tun` call on it (gRPC's own multiplexing), a new connection
 * when it closes or is told to go away. The request's headers are those Xray's grpc-go client
 * sends (its TLS is its own, so grpc-go sees a plain connection and says `:scheme: http`); Host
 * (`:authority`) and TLS server name are set apart from the dialled address as for WebSocket
 * (./web-tls.ts). The call's first bytes leave with its headers: no round trip is waited for.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { DEFAULT_CONNECT_TIMEOUT_MS, UpstreamDialError, type NextHop } from './dialer.js';
import { MUX_BULK_BYTES } from './mux.js';
import { envSwitch } from '../shared/env.js';
import { upgradeRefused } from './upgrade-refused.js';
import { grpcCallPath } from '../protocol/sip002/transport.js';
import { GRPC_STREAM_WINDOW, GrpcStream } from './grpc-stream.js';
import { hostName, pinnedTlsConnect, webTlsOptions, type WebTlsEndpoint } from './web-tls.js';

/** The user-agent grpc-go sends (Xray before 25.x, sing-box's lite client). */
export const GRPC_USER_AGENT = 'grpc-go/1.65.0';

export interface GrpcTransportOptions extends WebTlsEndpoint {
  /** The address dialled (a CDN edge, say) and its port. */
  address: string;
  port: number;
  /** TLS (ALPN h2) or h2c with prior knowledge. */
  tls: boolean;
  /** The gRPC service name: calls go to `/<serviceName>/Tun`. */
  serviceName: string;
  /** `:authority` (default: the TLS server name, else the address when it is a name). */
  host?: string | undefined;
  connectTimeoutMs?: number | undefined;
  /** Keepalive PING period of a connection carrying calls (default GRPC_KEEPALIVE_MS; 0: none). */
  keepaliveMs?: number | undefined;
  /** How long after a keepalive PING a connection that read nothing is dead (default 20 s). */
  keepaliveTimeoutMs?: number | undefined;
}

/**
 * grpc-go's client keepalive (keepalive.ClientParameters Time; Xray's `idle_timeout`): a PING
 * this long after the last read on a connection that carries calls. Not shorter than grpc-go servers'
 * default enforcement (EnforcementPolicy MinTime, 5 min: pings closer together are strikes, and the
 * third is answered with GOAWAY ENHANCE_YOUR_CALM, which would end every tunnel on it — an Xray
 * server sets no policy of its own), with a margin for delays on the way.
 */
export const GRPC_KEEPALIVE_MS = 330_000;

/** grpc-go's keepalive Timeout default: nothing read this long after a PING: the connection is dead. */
export const GRPC_KEEPALIVE_TIMEOUT_MS = 20_000;

/** How many times a keepalive period a connection's reads are looked at. */
const KEEPALIVE_STEPS = 10;

/** The request headers of one Tun call, in grpc-go's order. */
export function grpcRequestHeaders(opts: GrpcTransportOptions): Record<string, string> {
  return {
    ':method': 'POST',
    ':scheme': 'http',
    ':path': grpcCallPath(opts.serviceName),
    ':authority': authorityOf(opts),
    'content-type': 'application/grpc',
    'user-agent': GRPC_USER_AGENT,
    te: 'trailers',
  };
}

function authorityOf(opts: GrpcTransportOptions): string {
  if (opts.host) return opts.host;
  if (opts.servername) return opts.servername;
  return opts.address.includes(':') ? `[${opts.address}]` : opts.address;
}

/** Why a call's answer is not a gRPC stream (an UpstreamDialError), or undefined when it is. */
function refusal(h: IncomingHttpHeaders): UpstreamDialError | undefined {
  const status = Number(h[':status']);
  // Another status, or a page (the decoy's 200) where a gRPC answer was due: refused (dial-hint.ts).
  if (status !== 200) return upgradeRefused('gRPC call', Number.isInteger(status) ? status : undefined);
  const ct = h['content-type'];
  if (typeof ct !== 'string' || !/^application\/grpc/i.test(ct))
    return upgradeRefused('gRPC call (answered with a page)', 200);
  const gs = h['grpc-status'];
  if (gs !== undefined && gs !== '0')
    return new UpstreamDialError('ERR_CONNECT', `gRPC call failed (grpc-status ${String(gs)})`);
  return undefined;
}

/**
 * The most calls one HTTP/2 connection carries before another is opened: the server's
 * MAX_CONCURRENT_STREAMS (nginx's and Ladder's 128; grpc-go's default is unlimited), at most 100.
 * A call over the limit would wait inside nghttp2 until another ended (a tunnel may last hours).
 */
const MAX_CALLS = 100;

/**
 * With 4 MiB windows a bulk call can put 4 MiB ahead of a new call's answer in the connection's
 * buffers (Mux.Cool's problem, ws-dialer.ts MuxPool): new calls go to a connection without a bulk
 * call, another opened for them, up to this many; past it they share.
 */
const MAX_CONNECTIONS = 6;

/**
 * Receive windows: Node's default 64 KiB per stream and per connection let a download take 64
 * KiB per round trip whatever the link (1 MiB/s at a 50 ms round trip, bench/web.ts --grpc
 * --delay-ms 25; grpc-go grows its windows to 16 MiB by its BDP estimate). Each call gets the
 * window both ends give a tunnel's streams (GRPC_STREAM_WINDOW), the connection room for several.
 */
const CONNECTION_WINDOW = 32 * 1024 * 1024;

/**
 * HTTP/2 connections to the server, opened on demand: one carries every call until it has as many
 * as the server allows (then the next one is opened); one that closes or is told to go away takes
 * no new calls.
 */
export class GrpcSessionPool {
  readonly #opts: GrpcTransportOptions;
  readonly #headers: Record<string, string>;
  /** Usable connections and their open calls. */
  readonly #sessions = new Map<ClientHttp2Session, number>();
  #connecting: Promise<ClientHttp2Session> | undefined;
  /** Each connection's open calls (their bytes say which are bulk). */
  readonly #calls = new WeakMap<ClientHttp2Session, Set<GrpcStream>>();
  /** New calls avoid connections with a bulk call (LADDER_MUX_BULK_APART=0: they share). */
  readonly #bulkApart = envSwitch('LADDER_MUX_BULK_APART');
  #closed = false;

  constructor(opts: GrpcTransportOptions) {
    this.#opts = opts;
    this.#headers = grpcRequestHeaders(opts);
  }

  /** The first usable HTTP/2 connection, if any (tests). */
  get session(): ClientHttp2Session | undefined {
    return this.#sessions.keys().next().value;
  }

  /** Calls counted on the usable connections (tests). */
  get calls(): number {
    let n = 0;
    for (const c of this.#sessions.values()) n += c;
    return n;
  }

  /** Usable HTTP/2 connections (tests). */
  get sessions(): number {
    return this.#sessions.size;
  }

  async open(signal?: AbortSignal): Promise<Duplex> {
    // #usable has counted the call on the session it returns; the call's close uncounts it.
    let session = await this.#usable(signal);
    let req: ClientHttp2Stream;
    try {
      req = session.request(this.#headers, { endStream: false });
    } catch (err) {
      // Closing under us (GOAWAY, a socket error not yet reported): forget it, dial again once.
      this.#forget(session);
      if ((err as { code?: string }).code === undefined) throw err;
      session = await this.#usable(signal);
      try {
        req = session.request(this.#headers, { endStream: false });
      } catch (again) {
        // Twice: that one goes too, with the slot #usable counted for a call never made (it was
        // kept for the connection's life, one of its 100 calls gone for good).
        this.#forget(session);
        throw again;
      }
    }
    const owner = session;
    this.#used.get(owner)?.();
    const stream = new GrpcStream(req);
    const calls = this.#calls.get(owner) ?? new Set<GrpcStream>();
    this.#calls.set(owner, calls.add(stream));
    req.once('close', () => {
      calls.delete(stream);
      this.#uncount(owner);
    });
    req.once('response', (h) => {
      const why = refusal(h);
      if (why) stream.destroy(why);
    });
    req.once('trailers', (h) => {
      const gs = h['grpc-status'];
      if (gs !== undefined && gs !== '0')
        stream.destroy(new Error(`gRPC call ended with grpc-status ${String(gs)}`));
    });
    return stream;
  }

  /** No new calls on `session`: out of the pool, closed once its calls end (close() waits for them). */
  #forget(session: ClientHttp2Session): void {
    this.#sessions.delete(session);
    session.close();
  }

  /** A call on `session` is over: its slot is free. */
  #uncount(session: ClientHttp2Session): void {
    const n = this.#sessions.get(session);
    if (n !== undefined) this.#sessions.set(session, n - 1);
  }

  async #usable(signal?: AbortSignal): Promise<ClientHttp2Session> {
    for (;;) {
      if (this.#closed) throw new UpstreamDialError('ERR_ABORTED', 'client closed');
      // A connection with room and no bulk call; one with room when MAX_CONNECTIONS are open.
      let busy: ClientHttp2Session | undefined;
      for (const [s, calls] of this.#sessions) {
        if (s.closed || s.destroyed) this.#sessions.delete(s);
        else if (calls < Math.min(MAX_CALLS, s.remoteSettings.maxConcurrentStreams ?? MAX_CALLS)) {
          if (this.#bulkApart && this.#bulk(s)) busy ??= s;
          else return this.#take(s, calls);
        }
      }
      if (busy && this.#sessions.size >= MAX_CONNECTIONS) return this.#take(busy, this.#sessions.get(busy)!);
      // One connection being opened at a time; callers that find it full open the next.
      this.#connecting ??= this.#connect(signal).finally(() => (this.#connecting = undefined));
      await this.#connecting;
    }
  }

  #take(s: ClientHttp2Session, calls: number): ClientHttp2Session {
    this.#sessions.set(s, calls + 1);
    return s;
  }

  /** Whether a call on `s` has moved MUX_BULK_BYTES (the Mux.Cool pool's threshold). */
  #bulk(s: ClientHttp2Session): boolean {
    for (const c of this.#calls.get(s) ?? []) if (c.moved >= MUX_BULK_BYTES) return true;
    return false;
  }

  #connect(signal?: AbortSignal): Promise<ClientHttp2Session> {
    const o = this.#opts;
    const host = authorityOf(o);
    const { pin, ...tls } = webTlsOptions(o, hostName(host));
    const timeoutMs = o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    // The socket first (its certificate checked against the pin, ALPN h2 confirmed), HTTP/2 only
    // then: a socket destroyed by the pin check under http2.connect's own 'secureConnect'
    // listener aborted the whole process (node_http2.cc Consume: Assertion failed).
    const socket: Socket | TLSSocket = o.tls
      ? pinnedTlsConnect({ host: o.address, port: o.port, ...tls, ALPNProtocols: ['h2'] }, pin)
      : netConnect({ host: o.address, port: o.port });
    const ready = o.tls ? 'secureConnect' : 'connect';
    let session: ClientHttp2Session | undefined;
    return new Promise((resolve, reject) => {
      const fail = (err: UpstreamDialError): void => {
        cleanup();
        socket.on('error', () => {});
        socket.destroy();
        session?.on('error', () => {});
        session?.destroy();
        reject(err);
      };
      const onSocket = (): void => {
        if (socket.destroyed) return; // the pin check's error follows
        if (o.tls && (socket as TLSSocket).alpnProtocol !== 'h2')
          return fail(
            new UpstreamDialError(
              'ERR_CONNECT',
              'gRPC connect failed: the server did not agree to HTTP/2 (ALPN h2)',
            ),
          );
        try {
          session = http2.connect(`${o.tls ? 'https' : 'http'}://${host}`, {
            createConnection: () => socket,
            settings: { initialWindowSize: GRPC_STREAM_WINDOW },
          });
        } catch (err) {
          return onError(err as NodeJS.ErrnoException); // an authority the URL parser refuses
        }
        session.once('connect', onConnect);
        session.once('error', onError);
      };
      const onConnect = (): void => {
        cleanup();
        const s = session!;
        if (this.#closed) return fail(new UpstreamDialError('ERR_ABORTED', 'client closed'));
        const forget = (): void => {
          this.#sessions.delete(s);
        };
        s.on('error', forget);
        s.once('goaway', forget);
        s.once('close', forget);
        s.setLocalWindowSize(CONNECTION_WINDOW);
        this.#sessions.set(s, 0);
        this.#keepAlive(s, socket);
        resolve(s);
      };
      const onError = (err: NodeJS.ErrnoException): void =>
        fail(
          new UpstreamDialError('ERR_CONNECT', `gRPC connect failed: ${err.code ?? err.message}`, {
            cause: err,
          }),
        );
      const onAbort = (): void => fail(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
      const timer = setTimeout(
        () =>
          fail(new UpstreamDialError('ERR_CONNECT_TIMEOUT', `gRPC connect timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      const cleanup = (): void => {
        clearTimeout(timer);
        socket.off(ready, onSocket);
        socket.off('error', onError);
        session?.off('connect', onConnect);
        session?.off('error', onError);
        signal?.removeEventListener('abort', onAbort);
      };
      socket.once(ready, onSocket);
      socket.once('error', onError);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A connection that carries calls and has read nothing for a keepalive period is sent a PING;
   * if it then reads nothing at all within the timeout (neither the ACK nor any other frame), it
   * is dead (a NAT that forgot it, a path that drops it without a word): destroyed, so its calls
   * fail now rather than at their idle timeout and the next call opens a new connection instead
   * of waiting on it. As grpc-go's client: any read counts as alive, so a download keeps its
   * connection however late the ACK queued behind its DATA (up to 32 MiB of window) comes, and
   * no PING goes out while frames arrive. A connection that carried no call for a whole period
   * is closed instead (grpc-go's PermitWithoutStream false: a grpc-go server counts a ping
   * without streams as a strike; the next call dials afresh). Our front and nginx answer PINGs
   * themselves (nghttp2); the tunnels' own idle timeout still governs them.
   */
  #keepAlive(s: ClientHttp2Session, socket: Socket): void {
    const every = this.#opts.keepaliveMs ?? GRPC_KEEPALIVE_MS;
    if (every <= 0) return;
    const timeoutMs = this.#opts.keepaliveTimeoutMs ?? GRPC_KEEPALIVE_TIMEOUT_MS;
    let used = true; // a call was open at some point of this period (the first is the dial's)
    let periodAt = Date.now();
    let read = socket.bytesRead; // bytes read when last looked at
    let readAt = periodAt; // when a read was last seen
    let ping: object | undefined; // the PING out, not yet answered nor timed out
    const seen = (now: number): void => {
      if (socket.bytesRead === read) return;
      read = socket.bytesRead;
      readAt = now;
    };
    // Reads are looked for KEEPALIVE_STEPS times a period: a PING goes out at most a step late.
    const timer = setInterval(
      () => {
        if (s.closed || s.destroyed) return clearInterval(timer);
        const now = Date.now();
        seen(now);
        const calls = this.#calls.get(s)?.size ?? 0;
        if (now - periodAt >= every) {
          periodAt = now;
          if (calls === 0 && !used) return this.#forget(s);
          used = calls > 0;
        }
        if (calls === 0 || ping || now - readAt < every) return; // no PING without calls
        const mine = (ping = {});
        const sentAt = read;
        const done = (): void => {
          clearTimeout(dead);
          if (ping === mine) ping = undefined;
        };
        const dead = setTimeout(() => {
          done();
          if (socket.bytesRead === sentAt) s.destroy(); // nothing at all read since the PING
        }, timeoutMs);
        dead.unref();
        try {
          const sent = s.ping(() => {
            done();
            seen(Date.now());
          });
          if (!sent) done(); // pings still outstanding
        } catch {
          done(); // closing under us
        }
      },
      Math.max(1, Math.ceil(every / KEEPALIVE_STEPS)),
    );
    timer.unref();
    s.once('close', () => clearInterval(timer));
    this.#used.set(s, () => (used = true));
  }

  /** Marks a connection's keepalive period as one with a call. */
  readonly #used = new WeakMap<ClientHttp2Session, () => void>();

  close(): void {
    this.#closed = true;
    for (const s of this.#sessions.keys()) s.destroy();
    this.#sessions.clear();
  }
}

/** A NextHop over gRPC: every stream one Tun call on the pool's HTTP/2 connection. */
export function grpcNextHop(opts: GrpcTransportOptions): NextHop & { close(): void; pool: GrpcSessionPool } {
  const pool = new GrpcSessionPool(opts);
  const hop = (signal?: AbortSignal): Promise<Duplex> => pool.open(signal);
  return Object.assign(hop, { close: () => pool.close(), pool });
}
