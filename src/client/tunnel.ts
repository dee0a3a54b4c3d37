import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../shared/logger.js';
import { DEFAULT_FIRST_DATA_WAIT_MS, DEFAULT_IDLE_SECONDS } from '../config/defaults.js';
import { formatAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { pipeConnection, type DialedConnection, type Dialer, type PipeOptions } from '../transport/dialer.js';
import type { NativeTunnels } from './native-tunnel.js';
import { dialErrno, hintDialFailureOnce } from './dial-hint.js';

/**
 * How long to wait, after telling the application its CONNECT succeeded, for its first bytes so
 * they leave in the same write as the tunnel header.
 *
 * 50 ms, chosen because:
 * - Client-speaks-first protocols (HTTP, TLS: nearly all traffic) send within a millisecond or
 *   two of the reply, so they never wait the full time.
 * - The wait runs concurrently with the TCP handshake to the server, which for a server outside
 *   a censored network is typically 50-300 ms. Server-speaks-first protocols (SMTP, IMAP, FTP,
 *   MySQL) therefore pay max(0, 50 ms - RTT): usually nothing.
 * - Longer than Outline's 10 ms helloWait, because a header sent alone has a length that depends
 *   only on the address type (73 bytes for IPv4 with a 32-byte salt) - a fingerprint - and a slow
 *   application (a phone building a TLS ClientHello, a GC pause, a loaded 2-core box) can easily
 *   miss a 10 ms window.
 * The native SOCKS5 front (native-socks.ts) waits the same time but before the dial, so there a
 * server-speaks-first destination pays the whole wait plus the connect.
 */
export { DEFAULT_FIRST_DATA_WAIT_MS };

/** Default idle timeout for a tunnelled connection (no bytes either way). */
export const DEFAULT_IDLE_TIMEOUT_MS = DEFAULT_IDLE_SECONDS * 1000;

export interface TunnelContext {
  dialer: Dialer;
  firstDataWaitMs: number;
  idleTimeoutMs: number;
  log: Logger;
  /** Track an outbound socket so the client can close everything on shutdown. */
  track(socket: Duplex): void;
  /** The native relay (native-tunnel.ts), for the inbounds that use it (SOCKS5). */
  native?: NativeTunnels | undefined;
}

/**
 * Send a final answer and close. Our sockets allow half-open connections, so end() alone would
 * leave the connection open for as long as the peer keeps its side open; drain what the peer
 * still sends and destroy after `lingerMs` at the latest.
 */
export function endWith(socket: Socket, bytes: string | Buffer, lingerMs = 2000): void {
  socket.on('data', () => {});
  socket.resume();
  socket.end(bytes);
  const t = setTimeout(() => socket.destroy(), lingerMs);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}

interface FirstDataWait {
  data: Promise<Buffer | undefined>;
  /** True once the application sent FIN before the relay took over. */
  readonly ended: boolean;
  /** Remove listeners (call right before the relay attaches its own). */
  release(): void;
}

/**
 * Collect the application's first bytes: `initial` if it already sent some (bytes pipelined
 * behind the request), else the first chunk that arrives within `waitMs`, else nothing. The
 * socket is left paused with no 'data' listener.
 */
function waitFirstData(
  app: Socket,
  initial: Buffer | undefined,
  waitMs: number,
  waited: FirstDataWaited | undefined,
): FirstDataWait {
  let ended = waited?.ended ?? false;
  let settled = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let resolveData!: (d: Buffer | undefined) => void;
  const data = new Promise<Buffer | undefined>((r) => (resolveData = r));
  const onEnd = (): void => {
    ended = true;
    done(undefined);
  };
  const onData = (chunk: Buffer): void => done(chunk);
  function done(d: Buffer | undefined): void {
    if (settled) return;
    settled = true;
    if (timer) clearTimeout(timer);
    app.off('data', onData);
    app.pause();
    resolveData(d);
  }
  app.once('end', onEnd);
  if ((initial && initial.length > 0) || waited) {
    done(initial);
  } else {
    app.on('data', onData);
    timer = setTimeout(() => done(undefined), waitMs);
    app.resume();
  }
  return {
    data,
    get ended() {
      return ended;
    },
    release() {
      done(undefined);
      app.off('end', onEnd);
    },
  };
}

/** The first-data wait already ran elsewhere (the native SOCKS5 front): what it saw. */
export interface FirstDataWaited {
  /** The application sent FIN instead of data. */
  ended: boolean;
}

/** The log lines of a failed tunnel dial (no destination below debug). */
export function logDialFailure(err: unknown, dest: SocksAddress, log: Logger): void {
  const code = (err as { code?: string }).code ?? 'ERR_UNKNOWN';
  // The errno (ECONNREFUSED, ETIMEDOUT...) says whether the server is down or blocked;
  // neither it nor the code names the server or the destination.
  const errno = ((err as { cause?: { code?: string } }).cause ?? {}).code;
  const route = (err as { route?: unknown }).route;
  if (code === 'ERR_ABORTED') log.debug({ code }, 'tunnel abandoned');
  else if ((err as { dialled?: boolean }).dialled === false)
    log.info({ code }, `tunnel not dialled: ${(err as Error).message}`);
  else if (route === 'direct' || route === 'fragment')
    // The routing rules sent it around the tunnel: the destination failed, not the server.
    log.info(
      errno ? { code, errno, route } : { code, route },
      `${route} connection failed (the destination itself, not through the tunnel)`,
    );
  else {
    // A refused upgrade (ERR_UPGRADE_REFUSED): its HTTP status says why (dial-hint.ts).
    const status = code === 'ERR_UPGRADE_REFUSED' ? (err as { status?: number }).status : undefined;
    log.info(
      errno ? { code, errno } : status !== undefined ? { code, status } : { code },
      'tunnel dial failed',
    );
    hintDialFailureOnce(dialErrno(err), log);
  }
  if (log.isLevelEnabled('debug')) log.debug(`dial to ${formatAddress(dest)} failed: ${String(err)}`);
}

/** Relay an application socket (paused, no 'data' listener) and a dialed connection until both end. */
export function pipeTunnel(app: Socket, conn: DialedConnection, appEnded: boolean, ctx: TunnelContext): void {
  ctx.track(conn.socket);
  if (app.destroyed) {
    conn.socket.destroy();
    return;
  }
  const pipe: PipeOptions = {
    idleTimeoutMs: ctx.idleTimeoutMs,
    appEnded,
    onClose: (reason) => {
      if (reason !== 'done') ctx.log.debug({ reason }, 'tunnel closed');
    },
  };
  if (ctx.native) ctx.native.pipe(app, conn, pipe);
  else pipeConnection(app, conn, pipe);
}

/**
 * Carry an accepted application socket (already told "connected") to `dest` through the dialer:
 * the first bytes ride with the dialer's first write; then relay until both sides finish.
 * `waited`: the first-data wait already ran (initial holds what it got), so none here.
 * Never throws; failures close the application socket.
 */
export async function runTunnel(
  app: Socket,
  dest: SocksAddress,
  initial: Buffer | undefined,
  ctx: TunnelContext,
  waited?: FirstDataWaited,
): Promise<void> {
  const ac = new AbortController();
  const onAppClose = (): void => ac.abort();
  app.once('close', onAppClose);
  const first = waitFirstData(app, initial, ctx.firstDataWaitMs, waited);
  let conn;
  try {
    conn = await ctx.dialer.dial(dest, first.data, ac.signal);
  } catch (err) {
    first.release();
    app.off('close', onAppClose);
    app.destroy();
    logDialFailure(err, dest, ctx.log);
    return;
  }
  first.release();
  app.off('close', onAppClose);
  pipeTunnel(app, conn, first.ended, ctx);
}
