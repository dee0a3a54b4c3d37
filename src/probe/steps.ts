/**
 * The probe's network steps, each bounded by a real-time deadline: TCP connect, a TLS handshake
 * with SNI, one HTTP/1.1 GET over an opened stream, and the neutral reachability check that tells
 * a null-routed address from a name-based block.
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { failureOf, withTimeout, type Failure } from './failure.js';

export interface TlsOptions {
  /** Extra trust anchors (the lab's CA); default the system store. */
  readonly ca?: string | Buffer | undefined;
  /** false: finish the handshake whatever the certificate, for a caller that checks it itself. */
  readonly verify?: boolean | undefined;
}

/** Connect TCP to ip:port. `allow` may refuse an address (the lab refuses anything off loopback). */
export async function connectTcp(
  ip: string,
  port: number,
  timeoutMs: number,
  allow?: (ip: string) => boolean,
): Promise<net.Socket> {
  if (allow && !allow(ip))
    throw Object.assign(new Error(`address ${ip} refused by policy`), { code: 'ERR_PROBE_POLICY' });
  const s = net.connect({ host: ip, port });
  s.on('error', () => undefined);
  return withTimeout(
    new Promise<net.Socket>((resolve, reject) => {
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    }),
    timeoutMs,
    () => s.destroy(),
  ).catch((err: unknown) => {
    s.destroy();
    throw err;
  });
}

export interface TlsResult {
  readonly socket?: tls.TLSSocket;
  readonly failure: Failure;
  readonly tls_version?: string;
  readonly cipher_suite?: string;
  readonly negotiated_protocol?: string;
}

/** A TLS handshake over `stream` with SNI `servername`, verifying the certificate for it. */
export async function handshake(
  stream: Duplex,
  servername: string,
  opts: TlsOptions,
  timeoutMs: number,
): Promise<TlsResult> {
  const t = tls.connect({
    socket: stream,
    servername: net.isIP(servername) ? '' : servername,
    // An address sends no SNI (RFC 6066) but is still what the certificate must name: without
    // `host` beside the socket Node checked 'localhost' (ERR_TLS_CERT_ALTNAME_INVALID).
    ...(net.isIP(servername) ? { host: servername } : {}),
    ...(opts.ca ? { ca: opts.ca } : {}),
    ...(opts.verify === false ? { rejectUnauthorized: false } : {}),
    ALPNProtocols: ['http/1.1'],
  });
  t.on('error', () => undefined);
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        t.once('secureConnect', () => resolve());
        t.once('error', reject);
        t.once('close', () => reject(Object.assign(new Error('connection closed'), { code: 'EOF' })));
      }),
      timeoutMs,
      () => t.destroy(),
    );
    return {
      socket: t,
      failure: null,
      tls_version: t.getProtocol() ?? '',
      cipher_suite: t.getCipher()?.standardName ?? '',
      negotiated_protocol: t.alpnProtocol || '',
    };
  } catch (err) {
    t.destroy();
    stream.destroy();
    return { failure: failureOf(err) };
  }
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** The body read, at most `maxBody` bytes. */
  readonly body: Buffer;
  readonly truncated: boolean;
}

/** One GET of `url` over an opened stream (plain or TLS); the stream is closed afterwards. */
export async function getOver(
  stream: Duplex,
  url: URL,
  timeoutMs: number,
  maxBody: number,
): Promise<HttpResponse> {
  const req = http.request({
    method: 'GET',
    path: `${url.pathname}${url.search}`,
    headers: {
      host: url.host,
      'user-agent': 'Mozilla/5.0 (ladder-probe)',
      accept: 'text/html,application/xhtml+xml,*/*;q=0.8',
      'accept-language': 'en-US;q=0.8,en;q=0.5',
      connection: 'close',
    },
    createConnection: () => stream as net.Socket,
  });
  req.on('error', () => undefined);
  try {
    return await withTimeout(
      new Promise<HttpResponse>((resolve, reject) => {
        req.once('error', reject);
        req.once('response', (res) => {
          const chunks: Buffer[] = [];
          let n = 0;
          let truncated = false;
          const done = (): void => {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers))
              if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
            resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks), truncated });
          };
          res.on('data', (c: Buffer) => {
            if (n + c.length > maxBody) {
              chunks.push(c.subarray(0, maxBody - n));
              n = maxBody;
              truncated = true;
              done();
              res.destroy();
              return;
            }
            chunks.push(c);
            n += c.length;
          });
          res.once('end', done);
          res.once('error', reject);
        });
        req.end();
      }),
      timeoutMs,
      () => req.destroy(),
    );
  } finally {
    req.destroy();
    stream.destroy();
  }
}

/**
 * Does ip:port answer anything to a neutral request (no sensitive name: a TLS ClientHello
 * without SNI, or an HTTP HEAD with the address as Host)? A null route answers nothing to any
 * request; a name-based filter lets the neutral one through.
 */
export async function answersNeutral(
  ip: string,
  port: number,
  https: boolean,
  timeoutMs: number,
): Promise<boolean> {
  let s: net.Socket;
  try {
    s = await connectTcp(ip, port, timeoutMs);
  } catch {
    return false;
  }
  return withTimeout(
    new Promise<boolean>((resolve) => {
      if (https) {
        const t = tls.connect({ socket: s, rejectUnauthorized: false, servername: '' });
        t.once('secureConnect', () => resolve(true));
        // A TLS alert is an answer too; a reset or silence is not.
        t.once('error', (e: NodeJS.ErrnoException) =>
          resolve(!/ECONNRESET|EPIPE/.test(e.code ?? '') && !/before secure TLS/.test(e.message)),
        );
      } else {
        s.once('data', () => resolve(true));
        s.once('error', () => resolve(false));
        s.once('end', () => resolve(false));
        s.write(`HEAD / HTTP/1.1\r\nHost: ${ip}\r\nConnection: close\r\n\r\n`);
      }
    }),
    timeoutMs,
  )
    .catch(() => false)
    .finally(() => s.destroy());
}

/** The page title, whitespace collapsed, at most 200 characters. */
export function titleOf(body: Buffer): string {
  const m = /<title[^>]*>([^<]{0,2000})<\/title>/i.exec(body.toString('latin1'));
  return m ? m[1]!.replace(/\s+/g, ' ').trim().slice(0, 200) : '';
}
