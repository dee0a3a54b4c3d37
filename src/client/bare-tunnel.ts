/**
 * The bare tunnel in the addon (issue 15, session 21): where the lean tunnel (lean-tunnel.ts)
 * would take a CONNECT — answer-watch over one raw SIP004 key to an IP literal, no routing,
 * failover or picker — the SOCKS5 front hands it to native/client_bare.cc instead of JS: the
 * addon seals the first write (a salt from a pool this module fills, the request's ATYP..PORT
 * and first data in one chunk, the bytes lean-tunnel.ts's leanFirst makes), connects, and relays
 * (relay_pair.cc) with no JS call per connection. JS is entered only for what needs it, each a
 * call of #onEvent:
 *
 * - a failed, timed-out or refused connect: logDialFailure's line (the application's socket is
 *   closed by the addon, as the lean tunnel closes it); a relay that would not start (debug);
 * - answer-watch's signals: the server's FIN or reset before an answer, a close that the watch
 *   judges (the server's bytes would not open, or the application gave up after gaveUpMs), the
 *   no-answer wait (noAnswerMs), each judged by AnswerWatchDialer.bareJudge as the lean
 *   tunnel's Watch would; with debug logging, every close that was not "done" (its line).
 *
 * What the addon does not take goes to the lean tunnel or #plan as before: a name that is not
 * ASCII, a first write that would not be one chunk outside the prober's length trigger (shaping
 * splits those), and any CONNECT while the salt pool is empty (that connection's JS call refills
 * it: one JS call per SALT_BATCH connections). Closing the set (client shutdown) closes every
 * tunnel it holds, connecting or relaying. On unless LADDER_CLIENT_NATIVE_TUNNEL=0.
 */
import { decodeAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { envSwitch } from '../shared/env.js';
import type { Logger } from '../shared/logger.js';
import { connectError, type NativeAnswer } from '../transport/native-dial.js';
import { NATIVE_RELAY_REASON, type NativeRelay } from '../transport/native-sockets.js';
import { logDialFailure } from './tunnel.js';
import { FAIL_RELAY, FAIL_TIMEOUT } from './tunnel-args.js';

/** On unless LADDER_CLIENT_NATIVE_TUNNEL=0 (then the lean tunnel takes every bare CONNECT, as before). */
export function bareTunnelFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_CLIENT_NATIVE_TUNNEL', env);
}

/** Salts drawn per refill. */
export const SALT_BATCH = 256;

/** native/client_bare.cc. */
export interface NativeBare {
  bareTunnels(
    ip: string,
    port: number,
    timeoutMs: number,
    masterKey: Uint8Array,
    method: number,
    idleMs: number,
    noAnswerMs: number,
    gaveUpMs: number,
    onEvent: (
      code: number,
      a: number,
      b: number,
      addr: Buffer | undefined,
      up: number,
      sentAgoMs: number,
    ) => void,
    atOnce: boolean,
    debug: boolean,
  ): object;
  bareSalts(set: object, salts: Uint8Array): number;
  bareTake(set: object, fd: number, request: Uint8Array, addrLength: number): boolean;
  bareClose(set: object): void;
  bareCount(set: object): [live: number, started: number, salts: number];
  socks5FrontBare(front: object, set: object): boolean;
}

/** The dialer parts the addon's tunnels need (ShadowsocksDialer.leanTarget, .bareParts). */
export interface BareSource {
  leanTarget(): { ip: string; port: number; timeoutMs: number; masterKey: Buffer } | undefined;
  bareParts?(): { method: number; salts(n: number): Buffer } | undefined;
}

/** answer-watch.ts AnswerWatchDialer, as the addon's tunnels use it. */
export interface BareWatcher {
  bareTimes?(): { noAnswerMs: number; gaveUpMs: number };
  bareJudge?(
    signal: 'server-closed' | 'closed' | 'due',
    seen: NativeAnswer,
    shut: boolean,
    sentAgoMs: number,
    dest: () => SocksAddress,
  ): void;
}

const FAIL = 0;
const SERVER_CLOSED = 1;
const CLOSED = 2;
const REFUSED_AT_ONCE = 3;

/** The addon's bare tunnels of one SOCKS5 front. */
export class BareTunnels {
  readonly #fns: NativeBare;
  readonly #set: object;
  readonly #salts: (n: number) => Buffer;
  readonly #watcher: Required<BareWatcher>;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  #closed = false;

  private constructor(
    fns: NativeBare,
    make: (onEvent: Parameters<NativeBare['bareTunnels']>[8]) => object,
    salts: (n: number) => Buffer,
    watcher: Required<BareWatcher>,
    log: Logger,
    timeoutMs: number,
  ) {
    this.#fns = fns;
    this.#salts = salts;
    this.#watcher = watcher;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
    this.#set = make((code, a, b, addr, up, sentAgo) => this.#onEvent(code, a, b, addr, up, sentAgo));
  }

  /**
   * The front's bare tunnels (attached to `front`), when the addon, the dialer and the watch
   * offer what they need; undefined otherwise (the lean tunnel keeps every CONNECT).
   */
  static attach(
    fns: Partial<NativeBare> & NativeRelay,
    front: object,
    watcher: BareWatcher,
    source: BareSource,
    opts: { log: Logger; idleMs: number; atOnce: boolean },
  ): BareTunnels | undefined {
    if (typeof fns.bareTunnels !== 'function' || typeof fns.socks5FrontBare !== 'function') return undefined;
    if (typeof watcher.bareJudge !== 'function' || typeof watcher.bareTimes !== 'function') return undefined;
    const target = source.leanTarget();
    const parts = source.bareParts?.();
    if (!target || !parts) return undefined;
    const full = fns as NativeBare;
    const times = watcher.bareTimes();
    let bare: BareTunnels;
    try {
      bare = new BareTunnels(
        full,
        (onEvent) =>
          full.bareTunnels(
            target.ip,
            target.port,
            target.timeoutMs,
            target.masterKey,
            parts.method,
            opts.idleMs,
            times.noAnswerMs,
            times.gaveUpMs,
            onEvent,
            opts.atOnce,
            opts.log.isLevelEnabled('debug'),
          ),
        parts.salts,
        watcher as Required<BareWatcher>,
        opts.log,
        target.timeoutMs,
      );
      bare.refill();
      if (!full.socks5FrontBare(front, bare.#set)) {
        bare.close();
        return undefined;
      }
    } catch (err) {
      opts.log.debug({ err: (err as Error).message }, 'native bare tunnels not started');
      return undefined;
    }
    return bare;
  }

  /** A batch of salts for the addon (the front's CONNECTs take one each). */
  refill(): void {
    if (!this.#closed) this.#fns.bareSalts(this.#set, this.#salts(SALT_BATCH));
  }

  /** refill() once the pool is empty (a CONNECT the lean tunnel took: maybe for want of a salt). */
  refillIfEmpty(): void {
    if (!this.#closed && this.#fns.bareCount(this.#set)[2] === 0) this.refill();
  }

  /** Tunnels connecting or relaying now. */
  get live(): number {
    return this.#closed ? 0 : this.#fns.bareCount(this.#set)[0];
  }

  /** Tunnels the addon started so far (tests: which path a connection took). */
  get started(): number {
    return this.#fns.bareCount(this.#set)[1];
  }

  /** Test entry: a CONNECT's fd and request (ATYP..PORT || data) as the front would hand it. */
  take(fd: number, request: Buffer, addrLength: number): boolean {
    return this.#fns.bareTake(this.#set, fd, request, addrLength);
  }

  /** Close every tunnel (connecting or relaying); no more start. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#fns.bareClose(this.#set);
  }

  #onEvent(code: number, a: number, b: number, addr: Buffer | undefined, up: number, sentAgo: number): void {
    const dest = (): SocksAddress => decodeAddress(addr!, 0)!.address;
    if (code === FAIL) {
      if (b === FAIL_RELAY) this.#log.debug('native SOCKS5 relay not started');
      else {
        const errno = b === FAIL_TIMEOUT ? undefined : b === REFUSED_AT_ONCE || a < 0 ? a : undefined;
        logDialFailure(connectError(errno, this.#timeoutMs), dest(), this.#log);
      }
      return;
    }
    const seen: NativeAnswer = {
      answered: false,
      bytesIn: up,
      failed: code === CLOSED && (a === REASON_CIPHER || a === REASON_PAYLOAD_SIZE),
    };
    if (code === SERVER_CLOSED) this.#watcher.bareJudge('server-closed', seen, a === 1, sentAgo, dest);
    else if (code === CLOSED) {
      if (b === 1) this.#watcher.bareJudge('closed', seen, false, sentAgo, dest);
      const why = NATIVE_RELAY_REASON[a] ?? 'error';
      if (why !== 'done') this.#log.debug({ reason: why }, 'tunnel closed');
    } else this.#watcher.bareJudge('due', seen, false, sentAgo, dest);
  }
}

const REASON_CIPHER = 4;
const REASON_PAYLOAD_SIZE = 5;
