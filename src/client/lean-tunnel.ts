/**
 * The client's lean tunnel (issue 15, session 15), the model being the server's lean path
 * (server/lean-path.ts): a SOCKS5 CONNECT with first data, from the addon's front, whose dialer
 * is the bare tunnel (answer-watch over one raw SIP004 key to an IP literal: no routing, failover
 * or picker) starts the addon's connect and relay (native/client_tunnel.cc, relay_pair.cc with
 * the master key: the relay opens the server's answer itself) from one small object per
 * connection: no SocksAddress, DialHints, NativeServerSocket (an EventEmitter), decoder,
 * connection or plan objects, and no closures beyond the relay's two callbacks.
 *
 * Every decision is the one native-socks.ts #plan makes on the same bytes, in the same order:
 * the same salt, encoder and first write (ShadowsocksDialer.leanFirst is planNative's), the
 * same answer-watch (answer-watch.ts Watch: the same object the full path's listeners drive, fed
 * here by direct calls in the order the full path's events come), the same reactions to a FIN
 * before an answer, a reset, a failed or timed-out connect (closed, the watch quiet, the
 * application's socket closed, logDialFailure) and a relay that would not start. The
 * destination is decoded only for a log line that names it (debug). Anything else (no first
 * data, the application's FIN, a name that is not ASCII, LADDER_RAW_HEADER=0 or
 * LADDER_NATIVE_SALT=0, a route, another transport) goes to #plan or dial() unchanged.
 *
 * On unless LADDER_CLIENT_LEAN=0 (read once per front); loaded at the front's first CONNECT (an
 * idle client does not load it), the connections before it takes the full path.
 */
import { isAscii } from 'node:buffer';
import { decodeAddress, type SocksAddress } from '../protocol/socks5/address.js';
import type { Logger } from '../shared/logger.js';
import type { Dialer } from '../transport/dialer.js';
import { connectError, thrownConnectError, type NativeAnswer } from '../transport/native-dial.js';
import { NATIVE_RELAY_REASON, type NativeRelay } from '../transport/native-sockets.js';
import type { Watch, WatchedSocket } from './answer-watch.js';
import { BareTunnels, type BareSource, type BareWatcher } from './bare-tunnel.js';
import { logDialFailure } from './tunnel.js';
import {
  closedAnswer,
  FAIL_RELAY,
  FAIL_TIMEOUT,
  REASON_ERROR,
  relayAnswer,
  type NativeTunnelConnect,
  type TunnelArgs,
} from './tunnel-args.js';

/** The fixed parts of a raw SIP004 tunnel (ShadowsocksDialer.leanTarget). */
export interface LeanTarget {
  ip: string;
  port: number;
  timeoutMs: number;
  masterKey: Buffer;
}

/** A dialer whose planNative a lean tunnel can stand for (ShadowsocksDialer). */
interface LeanSource {
  leanTarget(): LeanTarget | undefined;
  leanFirst(request: Uint8Array, headerLength: number): { codec: object | undefined; first: Buffer };
}

/** answer-watch.ts AnswerWatchDialer, as the lean tunnel uses it. */
interface LeanWatcher {
  leanSource(): Dialer;
  leanWatch(socket: WatchedSocket & { dest(): SocksAddress }): Watch;
}

function isLeanSource(d: Dialer): d is Dialer & LeanSource {
  const s = d as Partial<LeanSource>;
  return typeof s.leanTarget === 'function' && typeof s.leanFirst === 'function';
}

/** What the lean tunnels of one front share (made once, with the front). */
interface LeanContext {
  fns: NativeRelay & NativeTunnelConnect;
  tunnels: Map<TunnelArgs, object>;
  log: Logger;
  idleMs: number;
  atOnce: boolean;
  watcher: LeanWatcher;
  source: LeanSource;
  target: LeanTarget;
}

/** The lean tunnels of one SOCKS5 front. */
export class LeanTunnels {
  readonly #ctx: LeanContext;

  private constructor(ctx: LeanContext) {
    this.#ctx = ctx;
  }

  /**
   * The lean tunnels for `dialer`, when it is the bare tunnel (answer-watch over a raw SIP004
   * key to an IP literal); undefined otherwise (every connection takes the full path).
   */
  static for(
    dialer: Dialer,
    fns: NativeRelay & NativeTunnelConnect,
    tunnels: Map<TunnelArgs, object>,
    opts: { log: Logger; idleMs: number; atOnce: boolean },
  ): LeanTunnels | undefined {
    const w = dialer as Partial<LeanWatcher>;
    if (typeof w.leanSource !== 'function' || typeof w.leanWatch !== 'function') return undefined;
    const source = w.leanSource();
    if (!isLeanSource(source)) return undefined;
    const target = source.leanTarget();
    if (!target) return undefined;
    return new LeanTunnels({ fns, tunnels, ...opts, watcher: w as LeanWatcher, source, target });
  }

  /** The same tunnels in the addon, attached to the SOCKS5 front (bare-tunnel.ts); undefined: none. */
  attachBare(front: object): BareTunnels | undefined {
    const ctx = this.#ctx;
    const opts = { log: ctx.log, idleMs: ctx.idleMs, atOnce: ctx.atOnce };
    return BareTunnels.attach(
      ctx.fns,
      front,
      ctx.watcher as LeanWatcher & BareWatcher,
      ctx.source as LeanSource & BareSource,
      opts,
    );
  }

  /**
   * A CONNECT with first data (the application did not end): started, and true; false with
   * nothing done (the full path then) for a name that is not ASCII or a key with no codec.
   * `request`: the request's ATYP..PORT (its first `addrLength` bytes, sent as the tunnel's
   * request header) followed by the first data, as the front hands them over (one Buffer).
   */
  start(fd: number, request: Buffer, addrLength: number): boolean {
    if (request[0] === 3 && !isAscii(request.subarray(2, addrLength - 2))) return false;
    const ctx = this.#ctx;
    let made: { codec: object | undefined; first: Buffer };
    try {
      made = ctx.source.leanFirst(request, addrLength);
    } catch {
      return false; // the full path fails it the usual way
    }
    if (!made.codec) return false;
    new LeanTunnel(ctx, fd, request, made.codec, made.first).connect();
    return true;
  }
}

/** One lean tunnel from its connect to its end: the watch's socket too (WatchedSocket). */
class LeanTunnel implements WatchedSocket {
  destroyed = false;
  writableEnded = false;
  readonly #ctx: LeanContext;
  readonly #fd: number;
  /** The request's ATYP..PORT, then its first data (decoded only when a line names it). */
  readonly #addr: Buffer;
  readonly #args: TunnelArgs;
  readonly #watch: Watch;
  /** What the relay saw, once it ended. */
  #ended: NativeAnswer | undefined;
  /** The tunnel is over (relay closed, or not started): inside tunnelConnect with atOnce. */
  #gone = false;

  constructor(ctx: LeanContext, fd: number, addr: Buffer, codec: object, first: Buffer) {
    this.#ctx = ctx;
    this.#fd = fd;
    this.#addr = addr;
    // The first write's array apart: a nested literal is copied by V8's runtime, not its builtin.
    const writes: [undefined, Buffer, undefined] = [undefined, first, undefined];
    this.#args = [
      -1,
      fd,
      ctx.target.masterKey,
      codec,
      writes,
      ctx.idleMs,
      (reason: number, up: number, _down: number, side?: number, opened?: boolean) =>
        this.#onClose(reason, up, side, opened),
      3, // both descriptors are the relay's as they are
      (chunk: Buffer | null, shut: boolean) => this.#onFirst(chunk, shut),
    ];
    this.#watch = ctx.watcher.leanWatch(this);
  }

  /** The destination (answer-watch's debug line, logDialFailure): decoded only then. */
  dest(): SocksAddress {
    return decodeAddress(this.#addr, 0)!.address;
  }

  connect(): void {
    const ctx = this.#ctx;
    const { ip, port, timeoutMs } = ctx.target;
    try {
      const t = ctx.fns.tunnelConnect(
        ip,
        port,
        timeoutMs,
        ctx.fns.relayPair,
        this.#args,
        this.#onFail,
        ctx.atOnce,
      );
      if (!this.#gone) ctx.tunnels.set(this.#args, t);
    } catch (err) {
      // Refused at once: with its errno (EADDRNOTAVAIL, EMFILE...), else the addon's own words.
      this.#failed(thrownConnectError(err, timeoutMs));
    }
  }

  /** What the relay saw so far (answer-watch asks when it judges). */
  answer(): NativeAnswer {
    return this.#ended ?? relayAnswer(this.#ctx.fns, this.#args[9]);
  }

  /** The relay opens the answer itself: called only for the server's FIN before an answer. */
  #onFirst(chunk: Buffer | null, shut: boolean): undefined {
    if (chunk !== null) throw new Error('the relay holds the key'); // not reached: ends the relay (reason 4)
    this.writableEnded = shut;
    this.#watch.serverClosed();
    return undefined;
  }

  #onClose(reason: number, up: number, side?: number, opened?: boolean): void {
    const ended = (this.#ended = closedAnswer(reason, up, opened));
    this.#gone = true;
    this.#ctx.tunnels.delete(this.#args);
    if (!ended.answered && reason === REASON_ERROR && side === 0) this.#watch.serverClosed(); // a reset
    this.#destroy();
    const why = NATIVE_RELAY_REASON[reason] ?? 'error';
    if (why !== 'done') this.#ctx.log.debug({ reason: why }, 'tunnel closed');
  }

  #destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#watch.closed();
  }

  readonly #onFail = (errno: number, why: number): void => {
    if (why === FAIL_RELAY) {
      this.#gone = true;
      this.#ctx.tunnels.delete(this.#args);
      this.#destroy();
      this.#ctx.log.debug('native SOCKS5 relay not started');
      return;
    }
    this.#failed(connectError(why === FAIL_TIMEOUT ? undefined : errno, this.#ctx.target.timeoutMs));
  };

  /** The connect failed: the watch ends quietly, the application's socket closes, the log says why. */
  #failed(err: Error): void {
    const ctx = this.#ctx;
    ctx.tunnels.delete(this.#args);
    this.#destroy();
    this.#watch.settle();
    ctx.fns.fdClose(this.#fd);
    logDialFailure(err, this.dest(), ctx.log);
  }
}
