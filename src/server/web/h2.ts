/**
 * HTTP/2 for the decoy on the TLS web port. Nearly every HTTPS site offers `h2` in ALPN; a port
 * 443 that offers only `http/1.1` is a (weak) fingerprint, and a prober speaking h2 (a browser,
 * curl) would otherwise get another protocol than from the site we imitate.
 *
 * The TLS listener stays Node's https server: its HTTP/1.1 side (the WebSocket upgrades on the
 * secret path, the decoy, timeouts, the socket hand-back after a refused upgrade) is untouched.
 * Only a connection that negotiated `h2` is handed to an HTTP/2 server of its own, which serves
 * every request with the decoy — the secret path included (there are no WebSocket endpoints over
 * h2: no extended CONNECT, no `:protocol`; our clients and v2ray-plugin's offer http/1.1 or no ALPN).
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
import type { Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';

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
  const own = server.listeners('secureConnection');
  const http1 = own[0] as ((socket: TLSSocket) => void) | undefined;
  if (own.length !== 1 || http1 === undefined)
    throw new Error('web front: unexpected https server listeners (HTTP/2 cannot be attached)');
  server.removeListener('secureConnection', http1);

  const h2 = http2.createServer({ settings: { ...NGINX_H2_SETTINGS } });
  const sessions = new Set<Http2Session>();
  h2.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.setLocalWindowSize(MAX_WINDOW);
  });
  h2.setTimeout(opts.idleTimeoutMs);
  h2.on('timeout', (session: Http2Session) => {
    session.close();
    setTimeout(() => session.destroy(), GOAWAY_GRACE_MS).unref();
  });
  // Protocol errors end the session (nghttp2 has sent GOAWAY); nothing to report.
  h2.on('sessionError', () => {});
  h2.on('stream', (stream: ServerHttp2Stream) => {
    if (stream.endAfterHeaders || !(opts.requestTimeoutMs > 0)) return;
    const deadline = setTimeout(() => {
      if (stream.closed || stream.destroyed || stream.state.remoteClose) return;
      stream.close(stream.state.localClose ? NGHTTP2_NO_ERROR : NGHTTP2_PROTOCOL_ERROR);
    }, opts.requestTimeoutMs);
    deadline.unref();
    stream.once('close', () => clearTimeout(deadline));
  });
  h2.on('request', onRequest);
  // Node answers these itself (405, 417, with nothing but a date); nginx's answers come from onRequest.
  h2.on('connect', onRequest);
  h2.on('checkExpectation', onRequest);

  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') h2.emit('connection', socket);
    else http1.call(server, socket);
  });
  return {
    close() {
      for (const s of sessions) s.destroy();
      sessions.clear();
    },
  };
}
