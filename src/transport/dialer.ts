import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SocksAddress } from '../protocol/socks5/address.js';
import { CodedError } from '../shared/errors.js';
import { relay, type RelayCloseReason, type RelayHandle, type Transform } from './relay.js';

/**
 * The application's first bytes, or a promise of them. A dialer that is handed a promise starts
 * connecting at once and writes its handshake only when the promise settles, so the wait for the
 * application overlaps the TCP handshake to the next hop and the handshake leaves in the same
 * write as the first bytes. `undefined` (or a promise of it) means "no first bytes": the peer
 * speaks first, or the application is slow.
 */
export type FirstData = Uint8Array | PromiseLike<Uint8Array | undefined> | undefined;

/**
 * A connection a Dialer opened: the socket to the next hop plus the transforms that turn the
 * application's bytes into wire bytes (`encode`) and back (`decode`). Absent transforms mean
 * identity (a direct connection). Kept as socket + transforms rather than a wrapping Duplex so
 * relay() can pump the raw socket with no extra stream layer; see DialerStream for a Duplex.
 * `decode` may overwrite the socket read it is given (payloads are opened in place): a caller
 * must not read that buffer afterwards.
 */
export interface DialedConnection {
  readonly socket: Duplex;
  readonly encode?: Transform | undefined;
  readonly decode?: Transform | undefined;
  /**
   * Set by a dialer whose connection the native relay can carry (raw SIP004 over TCP): the
   * addon codecs under `encode` and `decode` (client/native-tunnel.ts). A wrapping dialer passes
   * it on only if it needs to see nothing after the first payload its `decode` returns; one
   * that drops it keeps the connection on the JS relay.
   */
  readonly native?: NativeCodecs | undefined;
}

/**
 * The addon's codecs of a dialed connection, each undefined while it has none: the encoder's
 * once its salt went out (the dialer's first write), the decoder's once the server's salt came.
 */
export interface NativeCodecs {
  encoder(): object | undefined;
  decoder(): object | undefined;
  /**
   * The master key (SIP004), for a relay that reads the server's salt and keys the decoder itself
   * (native/relay_pair.cc: relayPair's decoder argument); absent: the relay takes decoder().
   */
  masterKey?(): Uint8Array;
}

/**
 * Opens connections to destinations. `dial` resolves once the next hop accepted the TCP
 * connection and the first write (handshake plus `firstData`) has been handed to the socket; it
 * rejects with an UpstreamDialError. Destinations given as domains are passed on unresolved where
 * the dialer tunnels (socks5h semantics).
 *
 * Composable by design: a failover dialer (several endpoints) or a shaping dialer (prefix bytes,
 * TLS-record fragmentation) is just another Dialer wrapping these.
 */
export interface Dialer {
  dial(
    dest: SocksAddress,
    firstData?: FirstData,
    signal?: AbortSignal,
    hints?: DialHints,
  ): Promise<DialedConnection>;
}

/**
 * What the caller of a dial can take besides a net.Socket. A wrapping dialer passes the hints
 * on to the dialer that reaches the server (and drops them for a route that does not, e.g.
 * direct); a dialer that cannot use them ignores them.
 */
export interface DialHints {
  /**
   * The caller (client/native-socks.ts) relays in C++ from the first byte: a raw SIP004 dialer
   * may connect with the addon (transport/native-dial.ts) and return a NativeServerSocket as
   * the connection's socket, with its first write not yet sent.
   */
  native?: NativeConnect | undefined;
  /**
   * The destination as its caller read it off the wire (client/native-socks.ts: the SOCKS5
   * request's ATYP..PORT bytes), which is what encodeAddress(dest) gives: a Shadowsocks dialer
   * sends it as the request header instead of encoding dest again. Only bytes that decode and
   * encode back unchanged (IPv4, IPv6, an ASCII name).
   */
  header?: Uint8Array | undefined;
}

/** The addon's connect (native/tcp_connect.cc) and close, for DialHints.native. */
export interface NativeConnect {
  tcpConnect(ip: string, port: number, onDone: (fd: number, errno: number) => void): object;
  tcpConnectCancel(connect: object): void;
  fdClose(fd: number): void;
}

/**
 * Why a Dialer could not open a connection to its next hop (a proxy server, or the destination
 * itself for a direct route). Not the server's DialError (src/server/destination.ts), which is the
 * server failing to reach a client's destination and carries a metric status.
 */
export type UpstreamDialErrorCode =
  'ERR_CONNECT' | 'ERR_CONNECT_TIMEOUT' | 'ERR_ABORTED' | 'ERR_CLOSED' | 'ERR_UPGRADE_REFUSED';

export class UpstreamDialError extends CodedError<UpstreamDialErrorCode> {
  override readonly name = 'UpstreamDialError';
}

export interface ConnectOptions {
  /** Give up when the TCP handshake takes longer than this (default 10 s). */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Opens the byte stream to the next hop for a tunnel dialer (default: TCP to the server). A
 * WebSocket transport gives one that resolves with a WebSocket or Mux.Cool session stream.
 */
export type NextHop = (signal?: AbortSignal) => Promise<Duplex>;

/**
 * TCP connect with a timeout and an abort signal. The socket comes back with Nagle off, not
 * flowing (nothing is read until a 'data' listener or resume()), and with an 'error' listener
 * that keeps a late error from crashing the process before its user attaches its own.
 * Error messages do not name the host (they may reach logs).
 */
export function connectTcp(host: string, port: number, opts: ConnectOptions = {}): Promise<Socket> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const signal = opts.signal;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
      return;
    }
    // allowHalfOpen: a FIN from the peer must not end our side; relay() forwards it instead.
    const socket = net.connect({ host, port, allowHalfOpen: true });
    socket.setNoDelay(true);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: UpstreamDialError): void => {
      cleanup();
      socket.on('error', ignore);
      socket.destroy();
      reject(err);
    };
    const onConnect = (): void => {
      cleanup();
      socket.on('error', ignore);
      resolve(socket);
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      fail(
        new UpstreamDialError('ERR_CONNECT', `connect failed: ${err.code ?? err.message}`, { cause: err }),
      );
    };
    const onAbort = (): void => fail(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
    const timer = setTimeout(
      () => fail(new UpstreamDialError('ERR_CONNECT_TIMEOUT', `connect timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function ignore(): void {}

/**
 * Await the first data while watching the connected socket: if the next hop closes or errors, or
 * the signal aborts, while we wait for the application, reject instead of writing into a dead
 * socket.
 */
export function awaitFirstData(
  socket: Duplex,
  firstData: FirstData,
  signal?: AbortSignal,
): Promise<Uint8Array | undefined> {
  if (firstData === undefined || firstData instanceof Uint8Array) return Promise.resolve(firstData);
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      socket.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
    };
    const onClose = (): void => {
      cleanup();
      reject(new UpstreamDialError('ERR_CLOSED', 'next hop closed before the first write'));
    };
    const onAbort = (): void => {
      cleanup();
      reject(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
    };
    socket.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) {
      onAbort();
      return;
    }
    Promise.resolve(firstData).then(
      (d) => {
        cleanup();
        resolve(d);
      },
      (err: unknown) => {
        cleanup();
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Connects straight to the destination (domains resolved locally). For routing and tests. */
export class DirectDialer implements Dialer {
  readonly #connectTimeoutMs: number;

  constructor(opts: { connectTimeoutMs?: number } = {}) {
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  }

  async dial(dest: SocksAddress, firstData?: FirstData, signal?: AbortSignal): Promise<DialedConnection> {
    const socket = await connectTcp(dest.host, dest.port, { timeoutMs: this.#connectTimeoutMs, signal });
    try {
      const data = await awaitFirstData(socket, firstData, signal);
      if (data && data.length > 0) socket.write(data);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    return { socket };
  }
}

export interface PipeOptions {
  idleTimeoutMs: number;
  /** The application already sent its FIN (seen before the relay was attached). */
  appEnded?: boolean;
  onBytes?: (fromApp: number, fromNextHop: number) => void;
  onClose?: (reason: RelayCloseReason) => void;
}

/**
 * Relay between an accepted application socket and a dialed connection (transforms applied).
 * The application socket must be paused with no 'data' listener; it is resumed here.
 */
export function pipeConnection(app: Socket, conn: DialedConnection, opts: PipeOptions): RelayHandle {
  const handle = relay(app, conn.socket, {
    idleTimeoutMs: opts.idleTimeoutMs,
    ...(conn.encode ? { aToB: conn.encode } : {}),
    ...(conn.decode ? { bToA: conn.decode } : {}),
    ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
    ...(opts.onClose ? { onClose: opts.onClose } : {}),
  });
  // relay() learns of a half-close from the 'end' event, or from readableEnded when the socket
  // emitted it before the relay (then relay() has passed it on already: emitting it again would
  // count the application's end twice and finish the relay before the answer). When the FIN was
  // seen elsewhere (the native front's first-data wait), replay the event for relay's listener.
  if (!opts.appEnded) app.resume();
  else if (!app.readableEnded) app.emit('end');
  conn.socket.resume();
  return handle;
}
