/**
 * A connection to the server made by the addon (native/tcp_connect.cc) for a caller that relays
 * in C++ from the first byte (DialHints.native; client/native-socks.ts): no net.Socket exists
 * for it. What the dialer returns as the connection's `socket` is a NativeServerSocket, a small
 * stand-in that carries the descriptor and the first write (salt, header, first data) to the
 * caller, and on which the caller replays, from the relay's reports, the events the wrapping
 * dialers watch on a real socket ('end', 'error' with ECONNRESET, 'close'; `destroyed`,
 * `writableEnded`), so answer-watch and failover keep their bookkeeping unchanged.
 */
import { EventEmitter } from 'node:events';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import util from 'node:util';
import type { SocksAddress } from '../protocol/socks5/address.js';
import {
  UpstreamDialError,
  type DialHints,
  type DialedConnection,
  type Dialer,
  type NativeConnect,
} from './dialer.js';

/** What a relay that opens the server's answer itself saw (NativeServerSocket.answer). */
export interface NativeAnswer {
  /** A payload opened. */
  answered: boolean;
  /** Bytes read from the server. */
  bytesIn: number;
  /** Bytes came that this key cannot open (the relay ended on them). */
  failed: boolean;
  /** The connect to the server has not finished (a tunnel set up in the addon): nothing to judge yet. */
  connecting?: boolean;
}

export class NativeServerSocket extends EventEmitter {
  /** The connected descriptor while nobody took it (take()). */
  #fd: number;
  readonly #fns: NativeConnect;
  /** Salt, request header and first data: the relay's first bytes to the server. */
  readonly firstWrite: Buffer;
  destroyed = false;
  /** Set by the caller when it reports the server's FIN: whether ours had gone out before. */
  writableEnded = false;
  /**
   * Set by the caller when the relay opens the server's answer itself (no JS decode): what it
   * saw so far, asked by those who watch for an answer (client/answer-watch.ts) when they judge.
   */
  answer: (() => NativeAnswer) | undefined;

  constructor(fd: number, firstWrite: Buffer, fns: NativeConnect) {
    super();
    this.#fd = fd;
    this.firstWrite = firstWrite;
    this.#fns = fns;
  }

  /** The descriptor, now the caller's (-1 when it was closed already). */
  take(): number {
    const fd = this.#fd;
    this.#fd = -1;
    return fd;
  }

  /** Close (the descriptor, if still here) and say so once ('close'). */
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    const fd = this.take();
    if (fd >= 0) this.#fns.fdClose(fd);
    this.emit('close', false);
    return this;
  }

  /** Report a socket error to those who watch for one (none: nothing happens). */
  fail(code: string): void {
    if (this.listenerCount('error') === 0) return;
    this.emit('error', Object.assign(new Error(`socket error (${code})`), { code }));
  }

  /** As the connection's `socket` (DialedConnection): the wrappers use only the members above. */
  asDuplex(): Duplex {
    return this as unknown as Duplex;
  }
}

export function isNativeServerSocket(s: unknown): s is NativeServerSocket {
  return s instanceof NativeServerSocket;
}

/**
 * A raw SIP004 tunnel its caller sets up without a dial (client/native-socks.ts: the addon
 * connects and starts the relay with no JS call, native/client_tunnel.cc). Made synchronously by
 * each wrapping dialer's `planNative`, which does there what its dial() does before the inner
 * dial, and leaves in `connected` and `failed` what it does once that dial resolved or rejected.
 */
export interface NativeTunnelPlan {
  /** The server: an IP literal, its port, the connect's time budget. */
  ip: string;
  port: number;
  timeoutMs: number;
  /** socket: a NativeServerSocket with no descriptor (-1) holding the first write; decode; native. */
  conn: DialedConnection;
  /**
   * The connect succeeded: called at the first JS call after it (the server's first answer, or the
   * relay's end when the relay opens the answer itself: LADDER_NATIVE_SALT).
   */
  connected(): void;
  /**
   * connected() must run at the server's first answer, not at the end (a routing dialer's route
   * event when an onRoute listener hears it: tests, an embedder; a proxy route's 'ok' teaches the
   * router nothing): the relay hands the answer to JS instead of opening it itself.
   */
  answerWanted?: boolean;
  /** The connect failed with `err`: what dial() does then (rejects with it, or another connection). */
  failed(err: UpstreamDialError): Promise<DialedConnection>;
}

/** A dialer that can plan a native tunnel (undefined: dial() as usual). */
export interface NativePlanner {
  planNative(dest: SocksAddress, data: Uint8Array, hints: DialHints): NativeTunnelPlan | undefined;
}

export function nativePlanner(d: Dialer): NativePlanner | undefined {
  return typeof (d as Partial<NativePlanner>).planNative === 'function'
    ? (d as Dialer & NativePlanner)
    : undefined;
}

/** The error connectNative rejects with for a failed connect (errno < 0) or a timeout (undefined). */
export function connectError(errno: number | undefined, timeoutMs: number): UpstreamDialError {
  if (errno === undefined)
    return new UpstreamDialError('ERR_CONNECT_TIMEOUT', `connect timed out after ${timeoutMs} ms`);
  const code = errnoName(errno);
  return new UpstreamDialError('ERR_CONNECT', `connect failed: ${code}`, {
    cause: Object.assign(new Error(code), { code }),
  });
}

/**
 * TCP connect with the addon: host resolved like net.connect does (an IP literal as is, a name
 * through dns.lookup, its first address), with connectTcp's timeout, abort and error codes
 * (dialer.ts). Resolves with a connected non-blocking descriptor, the caller's to close.
 */
export async function connectNative(
  fns: NativeConnect,
  host: string,
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<number> {
  if (signal?.aborted) throw new UpstreamDialError('ERR_ABORTED', 'dial aborted');
  let ip = host.replace(/^\[|\]$/g, '');
  if (isIP(ip) === 0) {
    try {
      ip = (await lookup(ip)).address;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'ENOTFOUND';
      throw new UpstreamDialError('ERR_CONNECT', `connect failed: ${code}`, { cause: err });
    }
    // An abort during the lookup fired no listener of ours (none yet), and never fires again.
    if (signal?.aborted) throw new UpstreamDialError('ERR_ABORTED', 'dial aborted');
  }
  return new Promise<number>((resolve, reject) => {
    let c: object;
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const giveUp = (err: UpstreamDialError): void => {
      cleanup();
      fns.tcpConnectCancel(c);
      reject(err);
    };
    const onAbort = (): void => giveUp(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
    const failed = (errno: number): UpstreamDialError => connectError(errno, timeoutMs);
    try {
      c = fns.tcpConnect(ip, port, (fd, errno) => {
        cleanup();
        if (fd >= 0) resolve(fd);
        else reject(failed(errno));
      });
    } catch (err) {
      reject(thrownConnectError(err, timeoutMs));
      return;
    }
    const timer = setTimeout(() => giveUp(connectError(undefined, timeoutMs)), timeoutMs);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The error for a connect the addon refused by throwing (tcpConnect, tunnelConnect): with the
 * errno it carries (refused at once: EADDRNOTAVAIL, EMFILE...), else the addon's own message
 * ("cannot poll the socket"), never an errno it did not give.
 */
export function thrownConnectError(err: unknown, timeoutMs: number): UpstreamDialError {
  const errno = (err as { errno?: unknown } | null)?.errno;
  if (typeof errno === 'number' && errno < 0) return connectError(errno, timeoutMs);
  return new UpstreamDialError('ERR_CONNECT', `connect failed: ${(err as Error)?.message ?? String(err)}`);
}

/** ECONNREFUSED for -111, as Node names a libuv errno. */
function errnoName(errno: number): string {
  try {
    return util.getSystemErrorName(errno);
  } catch {
    return 'EIO';
  }
}
