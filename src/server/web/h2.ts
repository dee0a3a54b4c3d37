/**
 * HTTP/2 for the decoy on the TLS web port. Nearly every HTTPS site offers `h2` in ALPN; a port
 * 443 that offers only `http/1.1` is a (weak) fingerprint, and a prober speaking h2 (a browser,
 * curl) would otherwise get another protocol than from the site we imitate.
 *
 * The TLS listener stays Node's https server: its HTTP/1.1 side (the WebSocket upgrades on the
 * secret path, the decoy, timeouts, the socket hand-back after a refused upgrade) is untouched.
 * Only a connection that negotiated `h2` is handed to an HTTP/2 server of its own, which serves
 * every request with the decoy — except gRPC calls on the secret path, which the front hands to
 * its tunnel handler (./grpc.ts; `DecoyH2.tunnel` exempts them from the request deadline and
 * their session from the idle close). There are no WebSocket endpoints over h2 (no extended
 * CONNECT, no `:protocol`; our clients and v2ray-plugin's offer http/1.1 or no ALPN). On a plain
 * port with gRPC on, `attachH2c` takes connections that start with the HTTP/2 preface (nginx's
 * grpc_pass) the same way.
 *
 * The h2 server speaks like nginx 1.22 (checked in test/web/h2.test.ts against Debian's nginx
 * with `http2`): SETTINGS carries MAX_CONCURRENT_STREAMS 128, INITIAL_WINDOW_SIZE 65536 and
 * MAX_FRAME_SIZE 16777215 and nothing else, and the connection window is opened to 2^31-1 with a
 * WINDOW_UPDATE of 2147418112. An idle connection gets GOAWAY after the keep-alive timeout.
 *
 * Each stream gets the HTTP/1.1 side's request deadline (`requestTimeout`, 300 s by default) to
 * finish sending its request (END_STREAM). A stream already answered is closed at once (by Node, as
 * by nginx), but one whose answer waits for the body (the proxy decoy) stayed open otherwise: a
 * peer sending a frame now and then kept up to 128 of them open as long as the session was busy.
 * At the deadline it gets RST_STREAM PROTOCOL_ERROR, as nginx resets a stream that timed out
 * (NO_ERROR if our answer is complete). Request headers trickled in CONTINUATION frames are bounded
 * only by the session's idle timeout (nghttp2 reports the stream once its headers are complete).
 */
import http2 from 'node:http2';
import type { Http2ServerRequest, Http2ServerResponse, Http2Session, ServerHttp2Stream } from 'node:http2';
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { GRPC_STREAM_WINDOW } from '../../transport/grpc-stream.js';

/** nginx's SETTINGS frame (ngx_http_v2_send_settings with the default http2_* values). */
export const NGINX_H2_SETTINGS: Readonly<http2.Settings> = {
  maxConcurrentStreams: 128,
  initialWindowSize: 65_536,
  maxFrameSize: 16_777_215,
};

const { NGHTTP2_NO_ERROR, NGHTTP2_PROTOCOL_ERROR } = http2.constants;

/** nginx's connection window (NGX_HTTP_V2_MAX_WINDOW). */
const MAX_WINDOW = 2 ** 31 - 1;

/** How long a session gets to finish its streams after GOAWAY before it is cut. */
const GOAWAY_GRACE_MS = 5_000;

export interface DecoyH2Options {
  /** Close (GOAWAY) a connection idle this long (the HTTP/1.1 keep-alive timeout). */
  idleTimeoutMs: number;
  /** Reset a stream whose request (headers and body) is not complete this long after it opened. */
  requestTimeoutMs: number;
}

export interface DecoyH2 {
  /** End every HTTP/2 session now. */
  close(): void;
  /**
   * Make the stream of `req` a tunnel (a gRPC call on the secret path, ./grpc.ts): no request
   * deadline, and its session is not closed as idle while it is open (the tunnel's own idle
   * timeout applies). Returns the connection's socket (TLS or TCP) for the caller's bookkeeping.
   */
  tunnel(req: Http2ServerRequest): Duplex | undefined;
}

/** The h2 server both dispatchers hand connections to: nginx's settings, deadlines and idle close. */
function decoyH2Server(
  onRequest: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
  opts: DecoyH2Options,
): { h2: http2.Http2Server; api: DecoyH2; connect(socket: Duplex): void } {
  const h2 = http2.createServer({ settings: { ...NGINX_H2_SETTINGS } });
  const sessions = new Set<Http2Session>();
  /** Each session's socket (session.socket is a proxy) and its open tunnels. */
  const socketOf = new WeakMap<Http2Session, Duplex>();
  const tunnelsOf = new WeakMap<Http2Session, number>();
  const tunnels = new WeakSet<ServerHttp2Stream>();
  const widened = new WeakSet<Http2Session>();
  let connecting: Duplex | undefined;
  h2.on('session', (session: Http2Session) => {
    sessions.add(session);
    if (connecting) socketOf.set(session, connecting);
    session.once('close', () => sessions.delete(session));
    session.setLocalWindowSize(MAX_WINDOW);
  });
  h2.setTimeout(opts.idleTimeoutMs);
  h2.on('timeout', (session: Http2Session) => {
    if ((tunnelsOf.get(session) ?? 0) > 0) return;
    session.close();
    setTimeout(() => session.destroy(), GOAWAY_GRACE_MS).unref();
  });
  // Protocol errors end the session (nghttp2 has sent GOAWAY); nothing to report.
  h2.on('sessionError', () => {});
  h2.on('stream', (stream: ServerHttp2Stream) => {
    if (stream.endAfterHeaders || !(opts.requestTimeoutMs > 0)) return;
    const deadline = setTimeout(() => {
      if (stream.closed || stream.destroyed || stream.state.remoteClose || tunnels.has(stream)) return;
      stream.close(stream.state.localClose ? NGHTTP2_NO_ERROR : NGHTTP2_PROTOCOL_ERROR);
    }, opts.requestTimeoutMs);
    deadline.unref();
    stream.once('close', () => clearTimeout(deadline));
  });
  h2.on('request', onRequest);
  // Node answers these itself (405, 417, with nothing but a date); nginx's answers come from onRequest.
  h2.on('connect', onRequest);
  h2.on('checkExpectation', onRequest);
  const api: DecoyH2 = {
    close() {
      for (const s of sessions) s.destroy();
      sessions.clear();
    },
    tunnel(req) {
      const stream = req.stream;
      const session = stream.session;
      if (!session || tunnels.has(stream)) return undefined;
      tunnels.add(stream);
      // A session that carries a tunnel (a client that knew the service name) gets windows a
      // link's round trip does not throttle; every other keeps nginx's SETTINGS.
      if (!widened.has(session) && !session.destroyed && !session.closed) {
        widened.add(session);
        try {
          session.settings({ initialWindowSize: GRPC_STREAM_WINDOW });
        } catch {
          // the session is going away: its streams end with it
        }
      }
      tunnelsOf.set(session, (tunnelsOf.get(session) ?? 0) + 1);
      stream.once('close', () => tunnelsOf.set(session, (tunnelsOf.get(session) ?? 1) - 1));
      return socketOf.get(session);
    },
  };
  const connect = (socket: Duplex): void => {
    connecting = socket;
    try {
      h2.emit('connection', socket);
    } finally {
      connecting = undefined;
    }
  };
  return { h2, api, connect };
}

/** Remove Node's HTTP/1 listener for `event` (the server's only one) and return it. */
function takeHttp1Listener<S>(
  server: HttpServer | HttpsServer,
  event: 'connection' | 'secureConnection',
): (socket: S) => void {
  const own = server.listeners(event);
  const http1 = own[0] as ((socket: S) => void) | undefined;
  if (own.length !== 1 || http1 === undefined)
    throw new Error(`web front: unexpected ${event} listeners on the server (HTTP/2 cannot be attached)`);
  server.removeListener(event, http1);
  return http1;
}

/**
 * Serve the `h2` connections of `server` (an https server whose ALPNProtocols include 'h2')
 * with `onRequest`; everything else still goes to its HTTP/1.1 handling. Call right after
 * creating the server, before adding 'secureConnection' listeners of your own.
 */
export function attachDecoyH2(
  server: HttpsServer,
  onRequest: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
  opts: DecoyH2Options,
): DecoyH2 {
  // https.Server registers Node's HTTP/1 connection listener as its only 'secureConnection'
  // listener; put a dispatcher by ALPN in its place.
  const http1 = takeHttp1Listener<TLSSocket>(server, 'secureConnection');
  const { api, connect } = decoyH2Server(onRequest, opts);
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') connect(socket);
    else http1.call(server, socket);
  });
  return api;
}

/** The client connection preface of HTTP/2 (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * HTTP/2 with prior knowledge (h2c) on a plain HTTP/1.1 server: what nginx's `grpc_pass
 * grpc://…` and a CDN's gRPC proxying send to the origin (never an `Upgrade: h2c`). A connection
 * whose first bytes are the HTTP/2 preface goes to an h2 server like the TLS port's (./grpc.ts
 * tunnels and the decoy); any other goes to the HTTP/1.1 handling with its bytes put back. A
 * connection that sends nothing is closed after `headersTimeoutMs`, as the HTTP/1.1 side would.
 * Only peers `from` accepts get h2c (the proxies: --trust-proxy, else loopback); any other's
 * connection goes straight to the HTTP/1.1 side, which answers the preface as an nginx without
 * http2 does (its 400, test/web/fixtures.ts DECOY_REQUESTS), so a prober there sees what it saw before.
 * Call right after creating the server, before adding 'connection' listeners of your own.
 */
export function attachH2c(
  server: HttpServer,
  onRequest: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
  opts: DecoyH2Options & { headersTimeoutMs: number; from: (remoteAddress: string) => boolean },
): DecoyH2 {
  const http1 = takeHttp1Listener<Socket>(server, 'connection');
  const { api, connect } = decoyH2Server(onRequest, opts);
  server.on('connection', (socket: Socket) => {
    if (!opts.from(socket.remoteAddress ?? '')) return void http1.call(server, socket);
    let got: Buffer | undefined;
    const timer = setTimeout(() => socket.destroy(), opts.headersTimeoutMs);
    timer.unref();
    const decide = (h2c: boolean): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (got) socket.unshift(got);
      if (h2c) connect(socket);
      else http1.call(server, socket);
    };
    const onData = (chunk: Buffer): void => {
      got = got ? Buffer.concat([got, chunk]) : chunk;
      const n = Math.min(got.length, PREFACE.length);
      const match = got.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (match && got.length < PREFACE.length) return;
      socket.pause();
      decide(match);
      if (!match) socket.resume();
    };
    const onClose = (): void => clearTimeout(timer);
    socket.on('data', onData);
    socket.once('close', onClose);
  });
  return api;
}
