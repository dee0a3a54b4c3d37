import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { isIPv6, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { toSocksAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { DialerStream } from '../transport/dialer-stream.js';
import { listen } from '../shared/listen.js';
import { safeEqual } from '../shared/safe-equal.js';
import { endWith, runTunnel, type TunnelContext } from './tunnel.js';
import type { SocksCredentials } from './socks5-inbound.js';

export interface HttpInboundOptions extends TunnelContext {
  host: string;
  port: number;
  /** Require `Proxy-Authorization: Basic` with these credentials (407 otherwise). */
  auth?: SocksCredentials | undefined;
  onSocket?: (socket: Socket) => void;
  /** Serve this proxy auto-config at /proxy.pac (origin-form GET to the proxy itself). */
  pac?: (() => string) | undefined;
  /** The rules block this destination: answer 403 at once, dial nothing. */
  blocked?: ((dest: SocksAddress) => boolean) | undefined;
}

const BLOCKED_TEXT = 'blocked by the proxy rules (a block route)';
const BLOCKED = `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${BLOCKED_TEXT.length + 1}\r\nConnection: close\r\n\r\n${BLOCKED_TEXT}\n`;

export interface HttpInbound {
  readonly server: http.Server;
  readonly address: AddressInfo;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy-specific ones; never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Raw header list minus hop-by-hop headers and the ones named in Connection. */
export function filterHeaders(raw: readonly string[]): string[] {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (k === 'connection' || k === 'proxy-connection') {
      for (const t of raw[i + 1]!.split(',')) if (t.trim()) named.add(t.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(k) || named.has(k)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** "host:port" of a CONNECT request (authority form; IPv6 in brackets) to a SocksAddress. */
export function parseAuthority(authority: string): SocksAddress | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  if (m[1] !== undefined && !isIPv6(m[1])) return undefined;
  try {
    return toSocksAddress(m[1] ?? m[2]!, port);
  } catch {
    return undefined;
  }
}

function checkProxyAuth(header: string | undefined, cred: SocksCredentials): boolean {
  const m = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  const got = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
  return safeEqual(got, `${cred.username}:${cred.password}`);
}

const AUTH_REQUIRED =
  'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="ladder"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';

/**
 * HTTP proxy inbound on node:http:
 * - A destination the rules block: 403 at once, nothing dialled.
 * - CONNECT host:port: answer 200, then tunnel raw bytes through the dialer (the first bytes
 *   after the 200, e.g. a TLS ClientHello, ride in the dialer's first write).
 * - Absolute-URI requests (GET http://host/path): rewritten to origin-form, hop-by-hop and
 *   Proxy-* headers dropped, sent upstream over one fresh dialed connection with
 *   `Connection: close`, response streamed back. The client's own connection stays keep-alive.
 */
export async function startHttpInbound(opts: HttpInboundOptions): Promise<HttpInbound> {
  const log = opts.log;
  const server = http.createServer();

  server.on('connection', (socket: Socket) => {
    socket.setNoDelay(true);
    opts.onSocket?.(socket);
  });

  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const s = socket as Socket;
    s.on('error', () => s.destroy());
    if (opts.auth && !checkProxyAuth(req.headers['proxy-authorization'], opts.auth)) {
      endWith(s, AUTH_REQUIRED);
      return;
    }
    const dest = parseAuthority(req.url ?? '');
    if (!dest) {
      endWith(s, 'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    if (opts.blocked?.(dest)) {
      endWith(s, BLOCKED);
      return;
    }
    s.write('HTTP/1.1 200 Connection established\r\n\r\n');
    void runTunnel(s, dest, head.length > 0 ? Buffer.from(head) : undefined, opts);
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const fail = (status: number, text: string): void => {
      res.writeHead(status, { 'Content-Type': 'text/plain', Connection: 'close' }).end(`${text}\n`);
    };
    // The PAC file names only the proxy's own address, so it is served without credentials.
    if (opts.pac && (req.url === '/proxy.pac' || req.url?.startsWith('/proxy.pac?'))) {
      res.writeHead(200, {
        'Content-Type': 'application/x-ns-proxy-autoconfig',
        'Cache-Control': 'no-cache',
      });
      res.end(opts.pac());
      return;
    }
    if (opts.auth && !checkProxyAuth(req.headers['proxy-authorization'], opts.auth)) {
      res.writeHead(407, { 'Proxy-Authenticate': 'Basic realm="ladder"', 'Content-Length': '0' }).end();
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      fail(400, 'this is a proxy: send absolute-URI requests (GET http://host/path) or CONNECT');
      return;
    }
    if (url.protocol !== 'http:') {
      fail(
        400,
        `only http:// URLs can be fetched through the proxy; use CONNECT for ${url.protocol.replace(':', '')}`,
      );
      return;
    }
    let dest: SocksAddress;
    try {
      dest = toSocksAddress(url.hostname, url.port ? Number(url.port) : 80);
    } catch {
      fail(400, 'bad host in request URL');
      return;
    }
    if (opts.blocked?.(dest)) {
      fail(403, BLOCKED_TEXT);
      return;
    }
    // RFC 9112 §3.2.2: with an absolute-form target the proxy replaces Host with the URL's.
    const headers = filterHeaders(req.rawHeaders).filter(
      (_, i, a) => a[i - (i % 2)]!.toLowerCase() !== 'host',
    );
    headers.unshift('Host', url.host);
    headers.push('Connection', 'close');
    const upstream = http.request({
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers: headers as unknown as http.OutgoingHttpHeaders,
      setHost: false,
      createConnection: () => new DialerStream(opts.dialer, dest) as unknown as Socket,
    });
    upstream.on('response', (ures: IncomingMessage) => {
      res.writeHead(ures.statusCode ?? 502, ures.statusMessage ?? '', filterHeaders(ures.rawHeaders));
      ures.pipe(res);
      ures.on('error', () => res.destroy());
    });
    upstream.on('error', (err) => {
      log.debug({ code: (err as NodeJS.ErrnoException).code ?? 'ERR_UPSTREAM' }, 'http upstream failed');
      if (!res.headersSent) fail(502, 'upstream connection failed');
      else res.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });

  // Upgrade requests (WebSocket to a ws:// URL through the proxy): forward the rewritten head
  // and then relay raw bytes both ways; the head is the first data of the tunnel.
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, bodyHead: Buffer) => {
    const s = socket as Socket;
    s.on('error', () => s.destroy());
    const reject = (status: string): void => {
      endWith(s, `HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    };
    if (opts.auth && !checkProxyAuth(req.headers['proxy-authorization'], opts.auth)) {
      endWith(s, AUTH_REQUIRED);
      return;
    }
    let url: URL;
    let dest: SocksAddress;
    try {
      url = new URL(req.url ?? '');
      if (url.protocol !== 'http:' && url.protocol !== 'ws:') throw new Error('scheme');
      dest = toSocksAddress(url.hostname, url.port ? Number(url.port) : 80);
    } catch {
      reject('400 Bad Request');
      return;
    }
    if (opts.blocked?.(dest)) {
      endWith(s, BLOCKED);
      return;
    }
    const lines = [`${req.method ?? 'GET'} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!.toLowerCase();
      if (k === 'host' || k.startsWith('proxy-')) continue;
      lines.push(`${raw[i]}: ${raw[i + 1]}`);
    }
    const head = Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), bodyHead]);
    void runTunnel(s, dest, head, opts);
  });

  server.on('clientError', (_err, socket: Duplex) => {
    if (socket.writable) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      setTimeout(() => socket.destroy(), 2000).unref();
    } else socket.destroy();
  });

  const address = await listen(server, { port: opts.port, host: opts.host });
  server.on('error', (err) =>
    log.error({ code: (err as NodeJS.ErrnoException).code }, 'http listener error'),
  );
  return { server, address };
}
