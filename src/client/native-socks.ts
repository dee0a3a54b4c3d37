/**
 * The SOCKS5 inbound on the addon's front (native/socks5_front.cc): accept, the no-auth
 * handshake and the first-data wait run in C++, and a CONNECT reaches JS as one call. When the
 * dialer gives a raw SIP004 connection (DialHints.native: ShadowsocksDialer over plain TCP,
 * through the picker, failover and answer-watch as they are), the server is connected by the
 * addon and relayPair (native/relay_pair.cc) carries the connection from its first byte, with
 * the client's roles (see native-tunnel.ts): no net.Socket is made for it on either side.
 *
 * A CONNECT with first data whose dialers offer a plan (planNative: a raw SIP004 key to an IP
 * literal, through routing and answer-watch; not failover or the picker) is not dialled at all:
 * #plan runs the dialers' setup synchronously and the addon connects and starts the relay
 * (native/client_tunnel.cc), so the connection enters JS three times (request, first answer,
 * end) instead of four; twice (request, end) when the relay also opens the server's answer
 * itself (nativeSaltFromEnv). LADDER_NATIVE_TUNNEL=0 dials them as below.
 *
 * On unless LADDER_NATIVE_SOCKS=0 (read once when the client starts), with the native relay on,
 * the addon present and no SOCKS5 authentication configured; otherwise socks5-inbound.ts. The
 * client suites, interop and lab defences passed with it forced on before it became the default.
 * Everything the front does not finish goes to the JS path with a net.Socket made from the
 * descriptor, so it behaves as today:
 * - a greeting that is not a plain no-auth one, and any request that is not a well-formed
 *   CONNECT (UDP ASSOCIATE, BIND, bad version or address type): handleSocks5 with the bytes read
 *   so far (after the greeting's answer, from the request stage);
 * - a CONNECT without first data (the destination speaks first, or the application sent FIN):
 *   runTunnel, without a second wait (answer-watch then sees the application's later bytes).
 *   The dial starts after the wait here, where the JS inbound overlaps the two: a destination
 *   that speaks first waits firstDataWaitMs (50 ms) plus the connect instead of the longer one;
 * - a route that is not the tunnel (direct, fragment), a WebSocket or 2022 key: the dialer
 *   returns a connection JS carries (relay.ts, or native-tunnel.ts); the application's side is
 *   then a NativeAppSocket (native-app-socket.ts: the addon reads and writes the descriptor, no
 *   net.Socket) unless the connection offers codecs for a later native hand-off or
 *   LADDER_NATIVE_APP=0.
 *
 * The bookkeeping done when the server's first answer is opened happens in the relay's one
 * onFirst call: the wrapping dialers' `decode` opens the salt and first chunk (failover and the
 * picker see the endpoint answer, answer-watch settles), then the relay takes the decoder. The
 * server's FIN or reset before an answer, and the relay's end, are replayed on the connection's
 * NativeServerSocket ('end', 'error' ECONNRESET, 'close') for answer-watch and failover.
 * Not replayed: an application that closes while the server is being dialled does not abort the
 * dial (the relay starts and passes its FIN on), and a socket error's errno (always ECONNRESET).
 */
import { isAscii } from 'node:buffer';
import { setMaxListeners } from 'node:events';
import net, { type Server, type Socket } from 'node:net';
import { decodeAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { UpstreamDialError, type DialedConnection, type DialHints } from '../transport/dialer.js';
import {
  connectError,
  isNativeServerSocket,
  thrownConnectError,
  nativePlanner,
  type NativePlanner,
  type NativeAnswer,
  type NativeServerSocket,
  type NativeTunnelPlan,
} from '../transport/native-dial.js';
import {
  NATIVE_RELAY_REASON,
  type NativeFirstRead,
  type NativeRelay,
  type NativeSocksFront,
} from '../transport/native-sockets.js';
import { nativeAppConn, NativeAppSocket, type NativeAppConn } from './native-app-socket.js';
import type { LeanTunnels } from './lean-tunnel.js';
import { bareTunnelFromEnv, type BareTunnels } from './bare-tunnel.js';
import {
  closedAnswer,
  FAIL_RELAY,
  FAIL_TIMEOUT,
  frontHandoffFromEnv,
  leanFrontFromEnv,
  leanTunnelFromEnv,
  nativeAppSocketsFromEnv,
  nativeSaltFromEnv,
  nativeTunnelFromEnv,
  rawHeaderFromEnv,
  REASON_ERROR,
  relayAnswer,
  type NativeTunnelConnect,
  tunnelAtOnceFromEnv,
  type TunnelArgs,
} from './tunnel-args.js';

export { nativeTunnelFromEnv } from './tunnel-args.js';
import { handleSocks5, type Socks5InboundOptions } from './socks5-inbound.js';
import { logDialFailure, pipeTunnel, runTunnel } from './tunnel.js';
import { envSwitch } from '../shared/env.js';

/** On unless LADDER_NATIVE_SOCKS=0 (it needs the native relay too: LADDER_NATIVE_RELAY=0 turns both off). */
export function nativeSocksFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_SOCKS', env);
}

/**
 * `addr` (ATYP..PORT as the front read it) when it is what encodeAddress(dest) gives: IPv4, IPv6,
 * or a name of ASCII bytes (a name that is not UTF-8 would not decode and encode back the same).
 */
function wireHeader(dest: SocksAddress, addr: Buffer): Buffer | undefined {
  if (dest.type !== 'domain') return addr;
  return isAscii(addr.subarray(2, addr.length - 2)) ? addr : undefined; // the name (the port is any byte)
}

const KIND_CONNECT = 2;
const KIND_GREETED = 1;
const DEFAULT_HANDSHAKE_MS = 10_000;

function hasPayload(out: Buffer | Buffer[] | undefined): boolean {
  if (out === undefined) return false;
  if (Array.isArray(out)) return out.some((b) => b.length > 0);
  return out.length > 0;
}

function flat(out: Buffer | Buffer[] | undefined): Buffer | undefined {
  const b = Array.isArray(out) ? (out.length === 1 ? out[0] : Buffer.concat(out)) : out;
  return b && b.length > 0 ? b : undefined;
}

/** The descriptor of a listening net.Server. */
function serverFd(server: Server): number | undefined {
  const fd = (server as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The SOCKS5 front of one listener: its connections in C++ and the relays it started. */
export class NativeSocks {
  readonly #fns: NativeSocksFront & NativeRelay;
  readonly #opts: Socks5InboundOptions;
  readonly #live = new Set<object>();
  /** Aborts every dial still running at close(): one for all (a controller per dial costs more). */
  readonly #abort = new AbortController();
  #front: object | undefined;
  #closed = false;
  /** The addon's application connections (undefined: net.Socket for the JS path). */
  readonly #app: NativeAppConn | undefined;
  /** The addon's tunnel setup and the dialer's planner (undefined: dial() for every tunnel). */
  readonly #tunnelFns: NativeTunnelConnect | undefined;
  readonly #planner: NativePlanner | undefined;
  /** Tunnels set up in the addon: relayPair's arguments -> the connect. */
  readonly #tunnels = new Map<TunnelArgs, object>();
  #tunnelled = 0;
  #salted = 0;
  /** The bare tunnel's lean path (lean-tunnel.ts, loaded at the first CONNECT; undefined: #plan). */
  #lean: LeanTunnels | undefined;
  #leanLoad: Promise<void> | undefined;
  readonly #leanWanted: boolean;
  readonly #bareWanted: boolean;
  #leaned = 0;
  /** The bare tunnel in the addon (bare-tunnel.ts), attached with the lean path. */
  #bare: BareTunnels | undefined;
  readonly #rawHeader = rawHeaderFromEnv();
  readonly #nativeSalt = nativeSaltFromEnv();
  readonly #atOnce = tunnelAtOnceFromEnv();

  /**
   * `tunnel`: set raw SIP004 tunnels up in the addon (default: nativeTunnelFromEnv()); `lean`:
   * the bare tunnel's through lean-tunnel.ts (default: leanTunnelFromEnv()); `bare`: those in
   * the addon with no JS call (bare-tunnel.ts; default: bareTunnelFromEnv()).
   */
  constructor(
    fns: NativeSocksFront & NativeRelay,
    opts: Socks5InboundOptions,
    tunnel = nativeTunnelFromEnv(),
    lean = leanTunnelFromEnv(),
    bare = bareTunnelFromEnv(),
  ) {
    this.#fns = fns;
    this.#opts = opts;
    this.#app = nativeAppSocketsFromEnv() ? nativeAppConn() : undefined;
    const t = fns as Partial<NativeTunnelConnect>;
    if (tunnel && typeof t.tunnelConnect === 'function' && typeof t.tunnelConnectCancel === 'function') {
      this.#tunnelFns = t as NativeTunnelConnect;
      this.#planner = nativePlanner(opts.dialer);
    }
    this.#leanWanted = lean && this.#tunnelFns !== undefined && this.#rawHeader && this.#nativeSalt;
    this.#bareWanted = bare;
    setMaxListeners(0, this.#abort.signal); // one listener per running dial
  }

  /** Native relays running, and tunnels connecting in the addon (each holds two sockets). */
  get size(): number {
    return this.#live.size + this.#tunnels.size + (this.#bare?.live ?? 0);
  }

  /** Tunnels set up in the addon so far, bare ones included (tests: which path a connection took). */
  get tunnelled(): number {
    return this.#tunnelled + (this.#bare?.started ?? 0);
  }

  /** Of those, the ones whose relay opens the server's answer itself (tests). */
  get salted(): number {
    return this.#salted + (this.#bare?.started ?? 0);
  }

  /** Of those, the ones the lean path took (tests). */
  get leaned(): number {
    return this.#leaned;
  }

  /** The addon's bare tunnels, once attached (tests). */
  get bare(): BareTunnels | undefined {
    return this.#bare;
  }

  /** The lean path loaded (or not wanted): at the first CONNECT, or now (tests). */
  leanReady(): Promise<void> {
    this.#leanLoad ??= !this.#leanWanted
      ? Promise.resolve()
      : import('./lean-tunnel.js').then(
          (m) => {
            const fns = this.#tunnelFns as NativeTunnelConnect & NativeRelay;
            const opts = { log: this.#opts.log, idleMs: this.#idleMs(), atOnce: this.#atOnce };
            this.#lean = m.LeanTunnels.for(this.#opts.dialer, fns, this.#tunnels, opts);
            if (this.#lean && this.#front && !this.#closed && this.#bareWanted)
              this.#bare = this.#lean.attachBare(this.#front);
          },
          () => {}, // #plan then, as with LADDER_CLIENT_LEAN=0
        );
    return this.#leanLoad;
  }

  /** Connections in their handshake in C++ (tests). */
  get handshakes(): number {
    return this.#front ? this.#fns.socks5FrontLive(this.#front) : 0;
  }

  /**
   * Take over `server`'s listening socket: the front polls a duplicate of it and the server is
   * closed (its connection handler stays for anything it accepted before). False, with the
   * server left as it was, when the front cannot start.
   */
  adopt(server: Server): boolean {
    const fd = serverFd(server);
    if (fd === undefined) return false;
    try {
      this.#front = this.#fns.socks5Front(
        fd,
        Math.max(1, Math.ceil(this.#opts.firstDataWaitMs)),
        Math.max(1, Math.ceil(this.#opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_MS)),
        (cfd, kind, bytes, addrLength, ended) => this.#onConn(cfd, kind, bytes, addrLength, ended),
        leanFrontFromEnv(),
        this.#atOnce && this.#tunnelFns !== undefined && frontHandoffFromEnv(),
        true,
      );
    } catch (err) {
      this.#opts.log.debug({ err: (err as Error).message }, 'native SOCKS5 front not started');
      return false;
    }
    server.close();
    return true;
  }

  /** Stop accepting and close everything this front started (client shutdown). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#front) this.#fns.socks5FrontClose(this.#front);
    this.#bare?.close();
    this.#abort.abort();
    for (const r of [...this.#live]) this.#fns.relayClose(r);
    for (const [args, t] of [...this.#tunnels]) {
      this.#tunnels.delete(args);
      const relay = args[9];
      if (relay !== undefined) this.#fns.relayClose(relay);
      else {
        this.#tunnelFns?.tunnelConnectCancel(t); // no onFail: the application's descriptor is ours
        this.#fns.fdClose(args[1]);
      }
    }
  }

  /** A net.Socket for the JS path, tracked like an accepted one. */
  #socket(fd: number): Socket {
    const s = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
    s.on('error', () => s.destroy());
    this.#opts.onSocket?.(s);
    return s;
  }

  /**
   * The application's side of a tunnel JS carries: the addon's reads and writes
   * (native-app-socket.ts) where it has them, else a net.Socket. Tracked like an accepted one.
   */
  #appSocket(fd: number): Socket {
    if (!this.#app) return this.#socket(fd);
    let s: NativeAppSocket;
    try {
      s = new NativeAppSocket(this.#app, fd);
    } catch {
      return this.#socket(fd); // the addon could not take it (no watch): a net.Socket, as before
    }
    s.on('error', () => s.destroy());
    const socket = s as unknown as Socket; // the relays and shutdown use only what a Duplex has
    this.#opts.onSocket?.(socket);
    return socket;
  }

  /**
   * The front's call (its joined layout): `bytes` = the request's ATYP..PORT (`addrLength`
   * bytes, a CONNECT's) followed by the application's first bytes. The lean tunnel takes them
   * as they are; anything else gets the two parts.
   */
  #onConn(fd: number, kind: number, bytes: Buffer | undefined, addrLength: number, ended: boolean): void {
    if (
      kind === KIND_CONNECT &&
      !ended &&
      !this.#closed &&
      this.#lean !== undefined &&
      bytes !== undefined &&
      addrLength > 0 &&
      bytes.length > addrLength &&
      this.#lean.start(fd, bytes, addrLength)
    ) {
      this.#tunnelled++;
      this.#salted++;
      this.#leaned++;
      this.#bare?.refillIfEmpty();
      return;
    }
    const addr = bytes !== undefined && addrLength > 0 ? bytes.subarray(0, addrLength) : undefined;
    const data =
      bytes === undefined || bytes.length === addrLength
        ? undefined
        : addrLength > 0
          ? bytes.subarray(addrLength)
          : bytes;
    this.#onParts(fd, kind, addr, data, ended);
  }

  /** A connection the lean tunnel did not take: the request's address and first bytes apart. */
  #onParts(
    fd: number,
    kind: number,
    addr: Buffer | undefined,
    data: Buffer | undefined,
    ended: boolean,
  ): void {
    if (this.#closed) {
      this.#fns.fdClose(fd);
      return;
    }
    if (kind !== KIND_CONNECT) {
      const s = this.#socket(fd);
      if (data) s.unshift(data);
      handleSocks5(s, this.#opts, kind === KIND_GREETED);
      return;
    }
    if (this.#leanLoad === undefined) void this.leanReady();
    let dest: SocksAddress | undefined;
    try {
      dest = addr ? decodeAddress(addr, 0)?.address : undefined;
    } catch {
      dest = undefined; // the front checked the address: not reached
    }
    if (!dest) {
      this.#fns.fdClose(fd);
      return;
    }
    if (!data) {
      void runTunnel(this.#socket(fd), dest, undefined, this.#opts, { ended });
      return;
    }
    const hints: DialHints = {
      native: this.#fns,
      header: this.#rawHeader ? wireHeader(dest, addr!) : undefined,
    };
    if (!ended && this.#plan(fd, dest, data, hints)) return;
    void this.#tunnel(fd, dest, data, ended, hints);
  }

  async #tunnel(
    fd: number,
    dest: SocksAddress,
    data: Buffer,
    ended: boolean,
    hints: DialHints,
  ): Promise<void> {
    let conn: DialedConnection;
    try {
      conn = await this.#opts.dialer.dial(dest, data, this.#abort.signal, hints);
    } catch (err) {
      this.#fns.fdClose(fd);
      logDialFailure(err, dest, this.#opts.log);
      return;
    }
    this.#carry(fd, conn, ended);
  }

  /** A dialled connection: to the native relay from its first byte, or to a relay JS carries. */
  #carry(fd: number, conn: DialedConnection, ended: boolean): void {
    const server = conn.socket;
    if (this.#closed) {
      this.#fns.fdClose(fd);
      server.destroy();
      return;
    }
    if (!isNativeServerSocket(server)) {
      // A connection with codecs may move to the native relay later (native-tunnel.ts), which
      // takes a net.Socket's descriptor; the others never do.
      pipeTunnel(conn.native ? this.#socket(fd) : this.#appSocket(fd), conn, ended, this.#opts);
      return;
    }
    const enc = conn.native?.encoder();
    const decode = conn.decode;
    if (!enc || !decode || !conn.native) {
      this.#fns.fdClose(fd);
      server.destroy();
      this.#opts.log.debug('native SOCKS5: the connection offers no codecs');
      return;
    }
    this.#relay(fd, server, conn, enc, decode);
  }

  /**
   * The relay's JS calls for a connection: onFirst (the server's first answer), onClose.
   * `relayOf`: the relay opens the answer itself (a master key for decoder): onFirst hears only
   * a FIN before an answer, and server.answer asks the relay (then onClose) what it saw.
   */
  #callbacks(
    server: NativeServerSocket,
    conn: DialedConnection,
    decode: NonNullable<DialedConnection['decode']>,
    first: () => void,
    done: () => void,
    relayOf?: () => object | undefined,
  ): {
    onFirst: NativeFirstRead;
    onClose: (reason: number, up: number, down: number, side?: number, answered?: boolean) => void;
  } {
    const log = this.#opts.log;
    let answered = false;
    let ended: NativeAnswer | undefined;
    if (relayOf) {
      server.answer = () => ended ?? relayAnswer(this.#fns, relayOf());
    }
    const onFirst: NativeFirstRead = (chunk, shut) => {
      first();
      if (chunk === null) {
        server.writableEnded = shut;
        server.emit('end');
        return undefined;
      }
      const out = decode(chunk); // a chunk that does not open throws: the relay ends (reason 4)
      if (!answered && hasPayload(out)) answered = true;
      const plain = flat(out);
      const dec = answered ? conn.native?.decoder() : undefined;
      return dec ? [dec, plain] : plain;
    };
    const onClose = (reason: number, up: number, _down: number, side?: number, opened?: boolean): void => {
      if (relayOf) {
        ended = closedAnswer(reason, up, opened);
        answered = ended.answered;
      }
      first();
      done();
      if (!answered && reason === REASON_ERROR && side === 0) server.fail('ECONNRESET');
      server.destroy();
      const why = NATIVE_RELAY_REASON[reason] ?? 'error';
      if (why !== 'done') log.debug({ reason: why }, 'tunnel closed');
    };
    return { onFirst, onClose };
  }

  #relay(
    appFd: number,
    server: NativeServerSocket,
    conn: DialedConnection,
    enc: object,
    decode: NonNullable<DialedConnection['decode']>,
  ): void {
    const sfd = server.take();
    const box: { relay?: object } = {};
    const { onFirst, onClose } = this.#callbacks(
      server,
      conn,
      decode,
      () => {},
      () => {
        if (box.relay) this.#live.delete(box.relay);
      },
    );
    try {
      box.relay = this.#fns.relayPair(
        sfd,
        appFd,
        null,
        enc,
        [undefined, server.firstWrite, undefined],
        this.#idleMs(),
        onClose,
        3, // both descriptors are the relay's as they are (no duplicate): closed by it, also on a throw
        onFirst,
      );
    } catch (err) {
      server.destroy();
      this.#opts.log.debug({ err: (err as Error).message }, 'native SOCKS5 relay not started');
      return;
    }
    this.#live.add(box.relay);
  }

  #idleMs(): number {
    return Math.max(1, Math.ceil(this.#opts.idleTimeoutMs));
  }

  /**
   * The tunnel set up in the addon (native/client_tunnel.cc): the dialers' planNative (routing,
   * answer-watch, the SIP004 dialer's first write) runs now, synchronously; the addon connects
   * and starts the relay with no JS call until the server's first answer or the relay's end. A
   * failed connect comes back to onFail and goes where dial()'s rejection goes today. False when
   * the dialers offer no plan (a route other than the tunnel, a host name, another transport):
   * dial() then.
   */
  #plan(fd: number, dest: SocksAddress, data: Buffer, hints: DialHints): boolean {
    const fns = this.#tunnelFns;
    const planner = this.#planner;
    if (!fns || !planner) return false;
    let plan: NativeTunnelPlan | undefined;
    try {
      plan = planner.planNative(dest, data, hints);
    } catch {
      return false; // dial() fails it the usual way
    }
    if (!plan) return false;
    const { conn } = plan;
    const server = conn.socket;
    const enc = conn.native?.encoder();
    const decode = conn.decode;
    if (!isNativeServerSocket(server) || !enc || !decode) {
      plan.failed(new UpstreamDialError('ERR_CONNECT', 'the connection offers no codecs')).catch(() => {});
      return false;
    }
    let connected = false;
    /** The tunnel is over (relay closed, or not started): inside tunnelConnect with atOnce. */
    let gone = false;
    const first = (): void => {
      if (connected) return;
      connected = true;
      plan.connected();
    };
    // relayPair's arguments; [0] the server's descriptor once connected, [9] the relay (the addon's).
    const key = this.#nativeSalt && plan.answerWanted !== true ? conn.native?.masterKey?.() : undefined;
    const args: TunnelArgs = [
      -1,
      fd,
      key ?? null,
      enc,
      [undefined, server.firstWrite, undefined],
      this.#idleMs(),
    ];
    const { onFirst, onClose } = this.#callbacks(
      server,
      conn,
      decode,
      first,
      () => {
        gone = true;
        this.#tunnels.delete(args);
      },
      key ? () => args[9] : undefined,
    );
    args.push(onClose, 3, onFirst);
    /** The connect failed: where dial()'s rejection goes (another connection, or the log). */
    const failed = (err: UpstreamDialError): void => {
      this.#tunnels.delete(args);
      server.destroy();
      plan.failed(err).then(
        (c) => this.#carry(fd, c, false),
        (e: unknown) => {
          this.#fns.fdClose(fd);
          logDialFailure(e, dest, this.#opts.log);
        },
      );
    };
    const onFail = (errno: number, why: number): void => {
      if (why === FAIL_RELAY) {
        gone = true;
        this.#tunnels.delete(args);
        first();
        server.destroy();
        this.#opts.log.debug('native SOCKS5 relay not started');
        return;
      }
      failed(connectError(why === FAIL_TIMEOUT ? undefined : errno, plan.timeoutMs));
    };
    this.#tunnelled++;
    if (key) this.#salted++;
    try {
      const { ip, port, timeoutMs } = plan;
      const t = fns.tunnelConnect(ip, port, timeoutMs, this.#fns.relayPair, args, onFail, this.#atOnce);
      if (!gone) this.#tunnels.set(args, t);
    } catch (err) {
      // Refused at once: with its errno (EADDRNOTAVAIL, EMFILE...), else the addon's own words.
      failed(thrownConnectError(err, plan.timeoutMs));
    }
    return true;
  }
}
