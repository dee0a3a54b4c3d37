/**
 * What the lab's emulated users do: plain DNS lookups through the path resolver, HTTP and HTTPS
 * requests directly or through a SOCKS5 proxy (a contender's local client). Every failure is
 * classified (RST, TIMEOUT, FIN, DNS_FORGED, ...) so the survival report can say how it failed.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import dnsPacket from 'dns-packet';
import type { Clock } from '../shared/clock.js';
import { encodeAddress, toSocksAddress } from '../protocol/socks5/address.js';
import type { Endpoint } from './censor.js';
import { assertLoopback } from './world.js';

export type Outcome =
  | 'OK'
  | 'RST'
  | 'TIMEOUT'
  | 'FIN'
  | 'REFUSED'
  | 'DNS_FORGED'
  | 'DNS_FAIL'
  | 'TLS_FAIL'
  | 'SOCKS_FAIL'
  | 'ERROR';

export interface OpResult {
  readonly outcome: Outcome;
  readonly detail?: string;
  readonly status?: number;
  readonly body?: string;
}

/** Wait `ms` of the clock's time but at least `floorMs` of real time. */
function deadline(clock: Clock, ms: number, floorMs: number, fn: () => void): () => void {
  let v = false;
  let r = false;
  const vt = clock.setTimeout(() => {
    v = true;
    if (r) fn();
  }, ms);
  const rt = setTimeout(() => {
    r = true;
    if (v) fn();
  }, floorMs);
  return () => {
    clock.clearTimeout(vt);
    clearTimeout(rt);
  };
}

export interface OpOptions {
  readonly clock: Clock;
  /** Virtual ms before giving up. */
  readonly timeoutMs: number;
  /** Real-time floor for the timeout. */
  readonly minRealMs?: number;
  /** Source address for direct connections (a domestic 127.0.1.x). */
  readonly localAddress?: string;
}

export interface DnsAnswer {
  readonly type: string;
  readonly data: string;
}

/**
 * Send one query and collect every reply that arrives within the window (forged replies race
 * the genuine one). The naive client uses the first.
 */
export async function dnsQuery(
  resolver: Endpoint,
  name: string,
  qtype: 'A' | 'AAAA' | 'TXT',
  opts: OpOptions & { collectMs?: number },
): Promise<{ replies: DnsAnswer[][]; first?: DnsAnswer[] }> {
  assertLoopback(resolver.host);
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, opts.localAddress ?? '127.0.0.1', r));
  const id = 1 + Math.floor(Math.random() * 65534);
  const q = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: qtype, name, class: 'IN' }],
  });
  const replies: DnsAnswer[][] = [];
  return new Promise((resolve) => {
    const finish = (): void => {
      cancel();
      sock.close();
      resolve({ replies, ...(replies[0] ? { first: replies[0] } : {}) });
    };
    const cancel = deadline(opts.clock, opts.collectMs ?? opts.timeoutMs, opts.minRealMs ?? 100, finish);
    sock.on('message', (m) => {
      try {
        const p = dnsPacket.decode(m);
        if (p.id !== id) return;
        replies.push(
          (p.answers ?? []).map((a) => {
            const d = (a as { data?: unknown }).data;
            return { type: a.type, data: Array.isArray(d) ? d.map((x) => String(x)).join('') : String(d) };
          }),
        );
      } catch {
        // ignore garbage
      }
    });
    sock.send(q, resolver.port, resolver.host);
  });
}

/** SOCKS5 CONNECT (no auth) over an open socket; resolves when the proxy has replied success. */
export function socksConnect(proxy: Endpoint, target: Endpoint): Promise<net.Socket> {
  assertLoopback(proxy.host);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: proxy.host, port: proxy.port });
    let buf = Buffer.alloc(0);
    let stage = 0;
    const fail = (msg: string): void => {
      s.destroy();
      reject(Object.assign(new Error(msg), { code: 'SOCKS_FAIL' }));
    };
    s.on('error', (e) => reject(e));
    s.on('connect', () => s.write(Buffer.from([5, 1, 0])));
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (stage === 0 && buf.length >= 2) {
        if (buf[0] !== 5 || buf[1] !== 0) return fail('SOCKS5 method not accepted');
        buf = buf.subarray(2);
        stage = 1;
        s.write(
          Buffer.concat([Buffer.from([5, 1, 0]), encodeAddress(toSocksAddress(target.host, target.port))]),
        );
      }
      if (stage === 1 && buf.length >= 5) {
        if (buf[1] !== 0) return fail(`SOCKS5 reply ${buf[1]}`);
        const atyp = buf[3];
        const len = atyp === 1 ? 10 : atyp === 4 ? 22 : 7 + buf[4]!;
        if (buf.length < len) return;
        s.off('data', onData);
        s.removeAllListeners('error');
        const rest = buf.subarray(len);
        if (rest.length) s.unshift(rest);
        resolve(s);
      }
    };
    s.on('data', onData);
  });
}

export interface HttpOp extends OpOptions {
  /** Where to connect: the emulated site (direct) or the target given to the proxy. */
  readonly connect: Endpoint;
  readonly hostHeader: string;
  readonly path?: string;
  /** TLS with this SNI, trusting `ca`. */
  readonly tls?: { readonly servername: string; readonly ca: Buffer };
  /** Go through this SOCKS5 proxy. */
  readonly socks?: Endpoint;
  /** Wrap the TCP socket under TLS (e.g. a ClientHello record fragmenter, defence D8). */
  readonly wrapTls?: (raw: net.Socket) => Duplex;
  /**
   * TLS: send the request this long (real ms) after the handshake, so the client's Finished
   * leaves in a record of its own rather than together with the request (see C8).
   */
  readonly requestDelayMs?: number;
}

/** One HTTP/1.1 GET with Connection: close. */
export async function httpGet(op: HttpOp): Promise<OpResult> {
  let raw: net.Socket;
  try {
    if (op.socks) {
      raw = await withTimeout(socksConnect(op.socks, op.connect), op);
    } else {
      assertLoopback(op.connect.host);
      raw = net.connect({
        host: op.connect.host,
        port: op.connect.port,
        ...(op.localAddress ? { localAddress: op.localAddress } : {}),
      });
    }
  } catch (err) {
    return { outcome: classifyError(err, 'SOCKS_FAIL'), detail: (err as Error).message };
  }
  return new Promise((resolve) => {
    let settled = false;
    let data = Buffer.alloc(0);
    let sock: net.Socket = raw;
    const done = (r: OpResult): void => {
      if (settled) return;
      settled = true;
      cancel();
      sock.destroy();
      raw.destroy();
      resolve(r);
    };
    const cancel = deadline(op.clock, op.timeoutMs, op.minRealMs ?? 100, () => done({ outcome: 'TIMEOUT' }));
    const req = `GET ${op.path ?? '/'} HTTP/1.1\r\nHost: ${op.hostHeader}\r\nUser-Agent: ladder-lab\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
    raw.on('error', (e) =>
      done({ outcome: classifyError(e, 'ERROR'), detail: (e as NodeJS.ErrnoException).code ?? e.message }),
    );
    if (op.tls) {
      const t = tls.connect({
        socket: op.wrapTls ? op.wrapTls(raw) : raw,
        servername: op.tls.servername,
        ca: op.tls.ca,
      });
      sock = t;
      t.on('secureConnect', () => {
        if (op.requestDelayMs) setTimeout(() => t.writable && t.write(req), op.requestDelayMs);
        else t.write(req);
      });
      let sawFin = false;
      raw.on('end', () => {
        sawFin = true;
      });
      t.on('error', (e: NodeJS.ErrnoException) => {
        const c = sawFin ? 'FIN' : classifyError(e, 'TLS_FAIL');
        done({ outcome: c, detail: e.code ?? e.message });
      });
    } else {
      const send = (): void => void raw.write(req);
      if (op.socks) send();
      else raw.on('connect', send);
    }
    sock.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
    });
    sock.on('end', () => {
      const text = data.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!m) return done({ outcome: 'FIN', detail: `connection closed after ${data.length} bytes` });
      const status = Number(m[1]);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      done({ outcome: status === 200 ? 'OK' : 'ERROR', status, body });
    });
  });
}

async function withTimeout<T>(p: Promise<T>, op: OpOptions): Promise<T> {
  let cancel: () => void = () => undefined;
  const t = new Promise<never>((_, reject) => {
    cancel = deadline(op.clock, op.timeoutMs, op.minRealMs ?? 100, () =>
      reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
    );
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    cancel();
  }
}

function classifyError(err: unknown, fallback: Outcome): Outcome {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'RST';
  if (code === 'ECONNREFUSED') return 'REFUSED';
  if (code === 'ETIMEDOUT') return 'TIMEOUT';
  if (code === 'SOCKS_FAIL') return 'SOCKS_FAIL';
  return fallback;
}
