/**
 * The web front: one HTTP/1.1 listener (plain, or TLS with ALPN `h2` and `http/1.1`) where a WebSocket
 * upgrade on the secret path goes to `onUpgrade` and everything else — other paths, plain
 * requests, upgrades that `onUpgrade` refuses, garbage — gets the decoy, exactly as an ordinary
 * nginx-fronted site would answer. The path is the only secret: it is compared in constant time,
 * and a refused upgrade is answered by the same code, on the same socket, with the same
 * keep-alive rules as any other request.
 *
 * Node's http server hands every `Upgrade:` request to the 'upgrade' event with the parser
 * already detached. For the decoy we answer on that socket with a ServerResponse of our own and,
 * when the connection stays open, give the socket back to the server as a fresh connection, so
 * the next request on it is parsed as usual (pipelined bytes included).
 *
 * On the TLS port a connection that negotiates `h2` gets the decoy over HTTP/2 (./h2.ts): every
 * path there is an ordinary page or 404, except gRPC calls on the secret path when `onH2Tunnel`
 * takes them (./grpc.ts); with `onH2Tunnel` a plain front also takes h2c with prior knowledge.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContextOptions } from 'node:tls';
import { silentLogger, type Logger } from '../../shared/logger.js';
import type { Decoy } from './decoy.js';
import { attachDecoyH2, attachH2c, type DecoyH2 } from './h2.js';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { badHost } from './host.js';
import { limitPipelining } from './pipelining.js';
import { headersTooLarge, MAX_HEADER_SIZE, readRequestLines, firstHeadRead } from './request-line.js';
import { watchSends } from './send-timeout.js';
import {
  closeAfter,
  continueIfExpected,
  hasRequestBody,
  isH2,
  rawErrorResponse,
  SERVER_HEADER,
  connectionValue,
  httpDate,
  sendError,
  writeHead,
} from './static.js';
import type { WebRequest, WebResponse } from './static.js';
import { clientAddress, normaliseAddress, parseTrustedProxies, type TrustedProxies } from './trust-proxy.js';
import { PendingLimits, type PendingCaps, type PendingEntry } from '../pending-limits.js';

/** The front's caps (WebFrontOptions.pending): behind trusted proxies no per-address cap unless asked. */
function pendingLimits(opt: WebFrontOptions['pending'], proxied: boolean): PendingLimits | undefined {
  if (opt === false) return undefined;
  if (opt instanceof PendingLimits) return opt;
  return new PendingLimits({ ...opt, perAddress: opt?.perAddress ?? (proxied ? 0 : undefined) });
}

export interface WebFrontTls {
  cert: string | Buffer;
  key: string | Buffer;
}

/** Answers HTTP-01 challenges: token → key authorization, or undefined. */
export type Http01Responder = (token: string) => string | undefined;

export type UpgradeHandler = (
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  clientAddress: string,
) => boolean;

export type H2TunnelHandler = (
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  clientAddress: string,
) => boolean;

export interface WebFrontOptions {
  port: number;
  host?: string;
  /** '/SECRET': upgrades on it or below it (`/SECRET/tcp`, `/SECRET/udp`) reach onUpgrade. */
  secretPath: string;
  /** TLS credentials (PEM); plain HTTP when absent (behind a CDN / reverse proxy). */
  tls?: WebFrontTls;
  /** Offer `h2` in ALPN for the decoy (TLS only; default true). False: ALPN `http/1.1` only. */
  h2?: boolean;
  decoy: Decoy;
  /** CIDRs whose forwarding headers are believed (see ./trust-proxy.ts). */
  trustProxy?: readonly string[];
  /** Take the upgrade (return true) or refuse it untouched (false → the decoy answers). */
  onUpgrade: UpgradeHandler;
  /**
   * HTTP/2 requests on the secret path or below it (gRPC tunnels, ./grpc.ts): take the stream
   * (true) or refuse it untouched (false → the decoy answers). On a plain front it also turns on
   * h2c with prior knowledge (what nginx's grpc_pass sends; ./h2.ts attachH2c).
   */
  onH2Tunnel?: H2TunnelHandler;
  /**
   * Caps on connections not (yet) upgraded on the secret path, per client address and in all
   * (../pending-limits.ts: over a cap the oldest is closed, as nginx closes idle connections when
   * it runs short). Default: the default caps, except that with `trustProxy` the per-address cap
   * is off unless `perAddress` is given (a CDN's edge addresses carry many users). False: none.
   */
  pending?: PendingLimits | PendingCaps | false;
  /** HTTP-01 challenge answers (ACME), served at /.well-known/acme-challenge/TOKEN. */
  http01?: Http01Responder;
  logger?: Logger;
  /**
   * Server timeouts in ms; nginx-like defaults (headers 60 s, keep-alive 65 s, request 300 s; the
   * request deadline also bounds each HTTP/2 stream's request).
   */
  headersTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** nginx's send_timeout: a connection whose pending bytes do not move this long is closed (60 s). */
  sendTimeoutMs?: number;
}

export interface WebFront {
  readonly port: number;
  readonly host: string;
  readonly tls: boolean;
  /** ALPN `h2` offered (the decoy over HTTP/2). */
  readonly h2: boolean;
  /** The caps on connections not upgraded on the secret path (WebFrontOptions.pending). */
  readonly pending: PendingLimits | undefined;
  /** Swap the certificate without dropping connections (ACME renewal). Throws on a plain front. */
  setTlsCredentials(tls: WebFrontTls): void;
  /** Stop listening and end every connection, including upgraded ones; closes the decoy. */
  close(): Promise<void>;
}

/**
 * nginx's TLS cipher policy: `ssl_ciphers HIGH:!aNULL:!MD5` with OpenSSL's TLS 1.3 suites, and
 * `ssl_prefer_server_ciphers off` (the client's order decides). Node's server default is its own
 * list in its own order, which picks another cipher than nginx for the same ClientHello.
 */
export const NGINX_TLS_CIPHERS = {
  ciphers: 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:HIGH:!aNULL:!MD5',
  honorCipherOrder: false,
} as const;

export { MAX_HEADER_SIZE } from './request-line.js';

/** Validate a secret path: '/' followed by URL-safe characters, no query, no trailing slash. */
export function validateSecretPath(p: string): string {
  if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]+$/.test(p) || p.endsWith('/') || p.includes('//'))
    throw new Error(
      `--web-path: expected /SECRET (letters, digits, - . _ ~; no trailing slash), got ${JSON.stringify(p)}`,
    );
  return p;
}

/** A fresh random secret path (`/` + 22 URL-safe characters, 128 bits) for when none is configured. */
export function generateSecretPath(): string {
  return '/' + randomBytes(16).toString('base64url');
}

/** Constant-time "is `path` the secret path or below it" (query string ignored). */
export function secretPathMatcher(secretPath: string): (url: string | undefined) => boolean {
  const secret = Buffer.from(secretPath);
  const secretDigest = createHash('sha256').update(secret).digest();
  return (url) => {
    const u = url ?? '';
    const q = u.indexOf('?');
    const path = Buffer.from(q >= 0 ? u.slice(0, q) : u);
    const head = path.subarray(0, secret.length);
    // Hash both sides so the comparison time depends on neither the secret's nor the path's length.
    const same = timingSafeEqual(createHash('sha256').update(head).digest(), secretDigest);
    const next = path[secret.length];
    return same && (next === undefined || next === 0x2f);
  };
}

type PrivateResponse = ServerResponse & { _hasBody: boolean; _last: boolean };

/**
 * Who may speak h2c to a plain front (nginx's grpc_pass): the trusted proxies (--trust-proxy), or
 * without any, loopback (an nginx on the same host).
 */
function h2cPeer(address: string, trusted: TrustedProxies | undefined): boolean {
  const a = normaliseAddress(address);
  return trusted ? trusted.contains(a) : a.startsWith('127.') || a === '::1';
}

export async function startWebFront(opts: WebFrontOptions): Promise<WebFront> {
  const log = opts.logger ?? silentLogger;
  const host = opts.host ?? '0.0.0.0';
  validateSecretPath(opts.secretPath);
  const isSecret = secretPathMatcher(opts.secretPath);
  const trusted =
    opts.trustProxy && opts.trustProxy.length > 0 ? parseTrustedProxies(opts.trustProxy) : undefined;
  const decoy = opts.decoy;

  const serverOptions: http.ServerOptions = {
    maxHeaderSize: MAX_HEADER_SIZE,
    requireHostHeader: false, // the decoy answers a missing Host with nginx's 400, not Node's
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 65_000,
    headersTimeout: opts.headersTimeoutMs ?? 60_000,
    requestTimeout: opts.requestTimeoutMs ?? 300_000,
    connectionsCheckingInterval: 1_000,
    joinDuplicateHeaders: false,
  };
  // Also on every certificate swap: setSecureContext resets what it is not given.
  const tlsOptions = (t: WebFrontTls): SecureContextOptions & { honorCipherOrder: boolean } => ({
    cert: t.cert,
    key: t.key,
    ...NGINX_TLS_CIPHERS,
  });
  const withH2 = Boolean(opts.tls) && opts.h2 !== false;
  const ALPNProtocols = withH2 ? ['h2', 'http/1.1'] : ['http/1.1'];
  const server: http.Server = opts.tls
    ? https.createServer({ ...serverOptions, ...tlsOptions(opts.tls), ALPNProtocols, minVersion: 'TLSv1.2' })
    : http.createServer(serverOptions);
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 65_000;
  // A request followed by the client's FIN is answered, then the connection closes (nginx); Node
  // dropped the request unanswered.
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  // Request lines nginx reads where Node's parser refuses them (./request-line.ts): before h2.ts
  // takes the HTTP/1 listener, so h2 and h2c connections never reach it.
  readRequestLines(server, opts.tls ? 'secureConnection' : 'connection', serverOptions.headersTimeout!);
  // Before any 'secureConnection' listener of ours: it takes the place of Node's HTTP/1 one.
  const h2Request = (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    if (req.method === 'CONNECT') return sendError(res, 400);
    if (opts.onH2Tunnel && isSecret(req.url) && !badHost(req) && h2Tunnel(req, res)) return;
    answer(req, res);
  };
  const h2Opts = {
    idleTimeoutMs: server.keepAliveTimeout,
    requestTimeoutMs: serverOptions.requestTimeout ?? 300_000,
    headersTimeoutMs: serverOptions.headersTimeout ?? 60_000,
  };
  const h2: DecoyH2 | undefined = withH2
    ? attachDecoyH2(server as https.Server, h2Request, h2Opts)
    : !opts.tls && opts.onH2Tunnel
      ? attachH2c(server, h2Request, { ...h2Opts, from: (a) => h2cPeer(a, trusted) })
      : undefined;
  server.timeout = 0;

  const sockets = new Set<Duplex>();
  const track = (s: Duplex): void => {
    if (sockets.has(s)) return;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  server.on('connection', track);
  const pending = pendingLimits(opts.pending, trusted !== undefined);
  /** The pending entry of each TCP connection not upgraded on the secret path. */
  const pendingOf = new WeakMap<Duplex, PendingEntry>();
  if (pending) {
    server.on('connection', (s: Socket) => {
      if (pendingOf.has(s)) return; // a kept-alive socket after a decoy answer to an upgrade
      pendingOf.set(
        s,
        pending.add(s.remoteAddress, () => s.destroy()),
      );
      s.once('close', () => pendingOf.get(s)?.remove());
    });
  }
  if (opts.tls) server.on('secureConnection', track);
  /** Sockets handed to the WebSocket endpoints (and the TCP sockets under them): not watched. */
  const upgraded = new WeakSet<Duplex>();
  const sends = watchSends(sockets, upgraded, opts.sendTimeoutMs);
  /** A gRPC call on the secret path: the handler's, and its connection is no longer pending. */
  const h2Tunnel = (req: Http2ServerRequest, res: Http2ServerResponse): boolean => {
    let taken = false;
    try {
      taken = opts.onH2Tunnel?.(req, res, clientAddress(req as unknown as IncomingMessage, trusted)) === true;
    } catch (err) {
      log.debug({ err: (err as Error).message }, 'web front: h2 tunnel handler threw; serving the decoy');
    }
    if (!taken) return false;
    const socket = h2?.tunnel(req);
    const under = (socket as (Duplex & { _parent?: Duplex | null }) | undefined)?._parent ?? undefined;
    for (const s of [socket, under]) if (s) upgraded.add(s);
    const tcp = under ?? socket;
    if (tcp) {
      pendingOf.get(tcp)?.remove();
      tunnelCalls.set(tcp, (tunnelCalls.get(tcp) ?? 0) + 1);
      req.stream.once('close', () => h2TunnelClosed(tcp, socket!));
    }
    return true;
  };
  /** Open gRPC calls of each HTTP/2 connection (its TCP socket). */
  const tunnelCalls = new WeakMap<Duplex, number>();
  /**
   * A connection whose last call closed is an idle HTTP/2 connection again: pending (the caps may
   * evict it) and watched as before, or one call would exempt it for its life.
   */
  const h2TunnelClosed = (tcp: Duplex, socket: Duplex): void => {
    const n = (tunnelCalls.get(tcp) ?? 1) - 1;
    tunnelCalls.set(tcp, n);
    if (n > 0 || tcp.destroyed) return;
    for (const s of [socket, tcp]) upgraded.delete(s);
    if (pending && pendingOf.has(tcp))
      pendingOf.set(
        tcp,
        pending.add((tcp as Socket).remoteAddress, () => tcp.destroy()),
      );
  };
  if (opts.tls) {
    // Plain HTTP on the TLS port gets nginx's answers (nginx reads non-TLS bytes as HTTP): its
    // "plain HTTP request was sent to HTTPS port" page for what OpenSSL recognises as an HTTP
    // request, its generic 400 for other non-TLS bytes; a broken TLS handshake just closes.
    server.on('tlsClientError', (err: NodeJS.ErrnoException, s: Duplex) => {
      const raw = (s as Duplex & { _parent?: Socket | null })._parent;
      const page =
        err.code === 'ERR_SSL_HTTP_REQUEST'
          ? rawErrorResponse(400, 'The plain HTTP request was sent to HTTPS port')
          : err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || err.code === 'ERR_SSL_HTTPS_PROXY_REQUEST'
            ? rawErrorResponse(400)
            : undefined;
      if (page === undefined || !raw?.writable) {
        s.destroy();
        return;
      }
      raw.on('error', () => raw.destroy());
      raw.end(page);
    });
  }

  const acmePrefix = '/.well-known/acme-challenge/';
  const answer = (req: WebRequest, res: WebResponse): void => {
    // nginx's header buffers, then its Host check, come before any location (ACME's too).
    if (!isH2(res) && headersTooLarge(req))
      return sendError(res, 400, [], 'Request Header Or Cookie Too Large');
    if (badHost(req)) return sendError(res, 400);
    if (!isH2(res)) {
      // Request lines nginx refuses before any location: `OPTIONS *` (400), a major version
      // above 1 over HTTP/1 (505), a version 0.x written out (`HTTP/0.9`: 400; Node serves it),
      // TRACE (405); each closes the connection.
      const refused =
        req.url === '*' || req.httpVersionMajor === 0
          ? 400
          : req.httpVersionMajor > 1
            ? 505
            : req.method === 'TRACE'
              ? 405
              : 0;
      if (refused !== 0) {
        closeAfter(res);
        return sendError(res, refused);
      }
    }
    // nginx refuses Transfer-Encoding on HTTP/1.0 (400), and knows one transfer coding, `chunked`
    // alone: anything else is its 501; both close.
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 0) {
      closeAfter(res);
      return sendError(res, 400);
    }
    if (te !== undefined && req.httpVersionMajor === 1 && te.trim().toLowerCase() !== 'chunked') {
      closeAfter(res);
      return sendError(res, 501);
    }
    const url = req.url ?? '/';
    if (opts.http01 && url.startsWith(acmePrefix) && (req.method === 'GET' || req.method === 'HEAD')) {
      const keyAuth = opts.http01(url.slice(acmePrefix.length).split('?')[0] ?? '');
      if (keyAuth !== undefined) {
        continueIfExpected(req, res); // a file nginx would serve from the challenge directory
        writeHead(res, 200, [
          ['Server', SERVER_HEADER],
          ['Date', httpDate()],
          ['Content-Type', 'text/plain'],
          ['Content-Length', String(Buffer.byteLength(keyAuth))],
          ['Connection', connectionValue(res)],
        ]);
        if (req.method === 'HEAD') res.end();
        else res.end(keyAuth);
        return;
      }
    }
    decoy.handle(req, res);
  };

  // A client that pipelines requests without reading the answers is not read without end.
  const onPipelined = limitPipelining(answer);
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    firstHeadRead(req);
    onPipelined(req, res);
  };
  server.on('request', onRequest);
  // Expect as nginx answers it: "100 Continue" only where it reads or discards the body (a file
  // served, a proxied request: static.ts continueIfExpected), none before an error page (Node
  // would send one before every answer); any other expectation is ignored (Node answers 417).
  server.on('checkContinue', onRequest);
  server.on('checkExpectation', onRequest);

  /** Answer an upgrade request with the decoy on its detached socket, then hand the socket back. */
  const decoyOnUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const onError = (): void => {
      socket.destroy();
    };
    socket.on('error', onError);
    const res = new http.ServerResponse(req) as PrivateResponse;
    const v10 = req.httpVersionMajor === 1 && req.httpVersionMinor === 0;
    const conn = (req.headers.connection ?? '').toLowerCase();
    // HTTP/1.1 persists unless "close"; 1.0 only with "keep-alive". A body we cannot parse (the
    // parser is gone) means we cannot find the next request: close after answering.
    let keepAlive = v10 ? /\bkeep-alive\b/.test(conn) : !/\bclose\b/.test(conn);
    if (hasRequestBody(req)) keepAlive = false;
    res.shouldKeepAlive = keepAlive;
    if (req.method === 'HEAD') res._hasBody = false;
    res.assignSocket(socket as Socket);
    res.on('finish', () => {
      res.detachSocket(socket as Socket);
      socket.removeListener('error', onError);
      if (!keepAlive || res._last || socket.destroyed) {
        socket.on('error', () => {});
        (socket as Socket).destroySoon();
        return;
      }
      if (head.length > 0) socket.unshift(head);
      // A fresh parser for the next request; idle sockets time out like any keep-alive one.
      server.emit(opts.tls ? 'secureConnection' : 'connection', socket);
      (socket as Socket).setTimeout(server.keepAliveTimeout + 1000);
    });
    answer(req, res);
  };

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    firstHeadRead(req);
    // A bad Host gets nginx's 400 on the secret path too (nginx checks it before any location);
    // every WebSocket client sends a valid one (its server's name or address).
    if (isSecret(req.url) && !badHost(req)) {
      let taken = false;
      try {
        taken = opts.onUpgrade(req, socket, head, clientAddress(req, trusted));
      } catch (err) {
        log.debug({ err: (err as Error).message }, 'web front: upgrade handler threw; serving the decoy');
      }
      if (taken) {
        upgraded.add(socket);
        const under = (socket as Duplex & { _parent?: Duplex | null })._parent;
        if (under) upgraded.add(under);
        pendingOf.get(under ?? socket)?.remove();
        return;
      }
    }
    decoyOnUpgrade(req, socket, head);
  });

  // CONNECT is not for us: nginx answers 400 and closes.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    socket.end(rawErrorResponse(400));
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const s = socket as Socket & { _httpMessage?: unknown; destroySoon(): void };
    // Bytes after a request that closes the connection (HTTP/1.0, `Connection: close`): nginx
    // answers that request and ignores the rest. Node's parser calls them an error while the
    // answer is still being made; the answer (Connection: close) ends the socket itself.
    if (err.code === 'HPE_CLOSED_CONNECTION') {
      s.on('error', () => s.destroy());
      if (!s._httpMessage && s.writable) s.end();
      return;
    }
    // A body that does not parse (a bad chunk) after its request is being answered: nginx sends
    // that answer and closes; Node's destroy() would drop it unsent.
    const inFlight = s._httpMessage as ServerResponse | undefined;
    if (
      inFlight &&
      s.writable &&
      err.code !== 'ERR_HTTP_REQUEST_TIMEOUT' &&
      err.code !== 'ECONNRESET' &&
      !inFlight.writableFinished
    ) {
      s.on('error', () => s.destroy());
      if (!inFlight.headersSent) inFlight.shouldKeepAlive = false;
      inFlight.once('finish', () => s.destroySoon());
      inFlight.once('close', () => s.destroySoon());
      return;
    }
    // Timeouts and resets close silently (nginx logs 408 but sends nothing); a response already
    // in flight cannot be followed by an error page.
    // So does a request cut short by the client's FIN (nginx: "client prematurely closed").
    if (
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ||
      err.code === 'ECONNRESET' ||
      err.code === 'HPE_INVALID_EOF_STATE' ||
      !s.writable ||
      s._httpMessage
    ) {
      s.destroy();
      return;
    }
    const detail = err.code === 'HPE_HEADER_OVERFLOW' ? 'Request Header Or Cookie Too Large' : undefined;
    // A version Node's parser does not know: nginx answers 505 to a major version above 1.
    const raw = (err as NodeJS.ErrnoException & { rawPacket?: Buffer }).rawPacket;
    const newer =
      err.code === 'HPE_INVALID_VERSION' &&
      /^[^\r\n]* HTTP\/[2-9]\.\d\r?\n/.test(raw?.toString('latin1') ?? '');
    s.end(rawErrorResponse(newer ? 505 : 400, detail));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.warn({ err: err.message }, 'web front: server error'));
  const addr = server.address() as AddressInfo;
  log.info({ port: addr.port, tls: Boolean(opts.tls), h2: withH2, decoy: decoy.kind }, 'web front listening');

  return {
    port: addr.port,
    host: addr.address,
    tls: Boolean(opts.tls),
    h2: withH2,
    pending,
    setTlsCredentials(t) {
      if (!opts.tls) throw new Error('web front: setTlsCredentials on a plain-HTTP front');
      (server as https.Server).setSecureContext(tlsOptions(t));
    },
    close() {
      return new Promise<void>((resolve) => {
        sends.stop();
        server.close(() => resolve());
        server.closeAllConnections();
        h2?.close();
        for (const s of sockets) s.destroy();
        decoy.close();
      });
    },
  };
}
