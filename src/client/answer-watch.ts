/**
 * Says, in one plain line at info, why a tunnelled connection got nothing back from the server.
 *
 * A Shadowsocks server never explains a refusal on the wire: a destination it will not or cannot
 * reach gets a prompt close, and a key it does not know (wrong, disabled, expired, over quota)
 * gets silence until the client gives up (the uniform reaction that keeps it unrecognisable to
 * probes). Without this the person sees "SOCKS5 request granted" and then an empty reply or a
 * hang. What the client can infer, it tells:
 *
 * - the server closed (FIN or reset) before sending a byte, while we were still sending: the
 *   key was accepted but the destination refused, did not resolve or was not allowed;
 * - the server closed right after the application finished sending, with nothing: either that,
 *   or a key it does not accept (it answers our FIN with a FIN);
 * - nothing came back within `noAnswerMs` of the application's first bytes (or the application
 *   gave up after a while): a key the server does not accept, or not a Shadowsocks server;
 * - bytes came back that this key cannot open: not a Shadowsocks server for this key.
 *
 * The connection itself is left alone (no extra timeout, no bytes changed). Lines never name the
 * destination, the server or the key, and each kind is logged at most once per `repeatMs`, with
 * a count of the repeats; at debug (opt-in) a line per connection names its destination.
 */
import { formatAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import { envSwitch } from '../shared/env.js';
import type { Logger } from '../shared/logger.js';
import { RepeatLimiter } from '../shared/repeat-limiter.js';
import type { DialHints, DialedConnection, Dialer, FirstData } from '../transport/dialer.js';
import { nativePlanner, type NativeAnswer, type NativeTunnelPlan } from '../transport/native-dial.js';
import type { Transform } from '../transport/relay.js';
import { DeadlineQueue, type Deadline } from './deadline-queue.js';
import { dialErrno, hintDialFailureOnce } from './dial-hint.js';

/** Default wait for a first answer before telling the user (the connection stays open). */
export const DEFAULT_NO_ANSWER_MS = 10_000;
/** The same message at most once per this window, then a count. */
export const DEFAULT_ANSWER_REPEAT_MS = 10_000;
/** A connection the application gives up on sooner than this, unanswered, is not reported. */
const GAVE_UP_REPORT_MS = 2000;

export interface AnswerWatchOptions {
  log: Logger;
  clock?: Clock;
  /**
   * Tell the user when the server has sent nothing this long after the application's first
   * bytes went out (default 10 s: a TLS or HTTP answer normally takes well under a second).
   */
  noAnswerMs?: number;
  repeatMs?: number;
  /**
   * Hook for a key source that can say why a key stopped working (e.g. the error message of a
   * dynamic-key server, not built yet): its text is added to the lines that may be about the
   * key. It must hold no secret and no destination.
   */
  keySourceMessage?: () => string | undefined;
  /** The tunnel uses 2022-edition keys, whose requests carry a timestamp the server checks. */
  edition2022?: boolean;
  /** The no-answer waits on one timer (default: sharedWatchTimerFromEnv()); false: a timer each. */
  sharedTimer?: boolean;
}

/** The no-answer waits of all connections on one timer, unless LADDER_WATCH_TIMER=0 (a timer each, as before). */
export function sharedWatchTimerFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_WATCH_TIMER', env);
}

type Kind = 'closed' | 'closed-after-fin' | 'no-answer' | 'not-shadowsocks' | 'upgrade-refused';

/** The debug line's words for each finding (the info line explains it). */
const KIND_WORDS: Record<Kind, string> = {
  closed: 'the server closed it without data',
  'closed-after-fin': 'the server closed it without data after the application finished sending',
  'no-answer': 'no answer from the server',
  'not-shadowsocks': 'the server answered with bytes this key cannot decrypt',
  'upgrade-refused': 'the web front refused the upgrade',
};

const CLOSED =
  'the server accepted the connection but closed it without data: the destination refused, did not resolve or was not allowed (a private address needs --allow-private on the server), or the key was changed';
const CLOSED_AFTER_FIN =
  'the server closed the connection without data once the application had finished sending: the destination refused or was not allowed (a private address needs --allow-private on the server), or the key may be disabled, expired or over quota, deleted or rotated (a new secret), or its password or method does not match the server (a mistyped key)';
const NOT_SHADOWSOCKS =
  'the server answered with bytes this key cannot decrypt: it is not a Shadowsocks server for this key (wrong method or password, or another service on that port)';

function noAnswer(ms: number, edition2022: boolean): string {
  const s = ms >= 10_000 || ms % 1000 === 0 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
  const clock = edition2022 ? ', or the clocks of client and server differ by more than 30 s' : '';
  return `no answer from the server in ${s}: the key may be disabled, expired or over quota, deleted or rotated (a new secret)${clock}, or its password or method does not match the server (a mistyped key), or the server is not a Shadowsocks server for this key`;
}

/** True when a decode result holds at least one byte of payload. */
function hasPayload(out: Buffer | Buffer[] | undefined): boolean {
  if (out === undefined) return false;
  if (Array.isArray(out)) return out.some((b) => b.length > 0);
  return out.length > 0;
}

/** A Dialer around the tunnel dialer that watches each connection for a server that never answers. */
export class AnswerWatchDialer implements Dialer {
  readonly #inner: Dialer;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #noAnswerMs: number;
  readonly #keySourceMessage: (() => string | undefined) | undefined;
  readonly #limiter: RepeatLimiter;
  /** The text last logged for each kind (the no-answer line carries a time). */
  readonly #lines = new Map<Kind, string>();
  readonly #repeatMs: number;
  readonly #edition2022: boolean;
  /** Every connection's no-answer wait on one timer (deadline-queue.ts); undefined: a timer each. */
  readonly #deadlines: DeadlineQueue | undefined;
  /** What each connection's Watch needs of this dialer. */
  readonly #host: WatchHost;
  #closed = false;

  constructor(inner: Dialer, opts: AnswerWatchOptions) {
    this.#inner = inner;
    this.#log = opts.log;
    this.#clock = opts.clock ?? systemClock;
    this.#noAnswerMs = opts.noAnswerMs ?? DEFAULT_NO_ANSWER_MS;
    if (!(this.#noAnswerMs > 0)) throw new RangeError('noAnswerMs must be positive');
    this.#keySourceMessage = opts.keySourceMessage;
    this.#edition2022 = opts.edition2022 ?? false;
    this.#deadlines =
      (opts.sharedTimer ?? sharedWatchTimerFromEnv())
        ? new DeadlineQueue(this.#clock, this.#noAnswerMs)
        : undefined;
    this.#host = {
      clock: this.#clock,
      deadlines: this.#deadlines,
      noAnswerMs: this.#noAnswerMs,
      edition2022: this.#edition2022,
      log: this.#log,
      tell: (kind, text) => this.#tell(kind, text),
      closed: () => this.#closed,
    };
    const repeatMs = (this.#repeatMs = opts.repeatMs ?? DEFAULT_ANSWER_REPEAT_MS);
    this.#limiter = new RepeatLimiter({
      clock: this.#clock,
      windowMs: repeatMs,
      onRepeats: (kind, count) => {
        const line = this.#lines.get(kind as Kind);
        if (line !== undefined)
          this.#log.info({ repeats: count }, `${line} (${count} more in the last ${this.#repeatText()})`);
      },
    });
  }

  #repeatText(): string {
    return `${Math.round(this.#repeatMs / 100) / 10} s`;
  }

  /** Log one finding (rate-limited). */
  #tell(kind: Kind, text: string): void {
    if (this.#closed || !this.#log.isLevelEnabled('info')) return;
    if (!this.#limiter.hit(kind)) return;
    let line = text;
    if (kind !== 'not-shadowsocks') {
      const said = this.#keySourceMessage?.();
      if (said) line = `${line}; the key's source says: ${said}`;
    }
    this.#lines.set(kind, line);
    this.#log.info({ tunnel: kind }, line);
  }

  /** Report pending repeat counts and tell nothing more (client shutdown closes every socket). */
  close(): void {
    this.#closed = true;
    this.#limiter.flush();
  }

  async dial(
    dest: SocksAddress,
    firstData?: FirstData,
    signal?: AbortSignal,
    hints?: DialHints,
  ): Promise<DialedConnection> {
    let sent = false;
    let first = firstData;
    if (first instanceof Uint8Array) sent = first.length > 0;
    else if (first !== undefined) {
      first = Promise.resolve(first).then((d) => {
        if (d && d.length > 0) sent = true;
        return d;
      });
    }
    const conn = await this.#inner.dial(dest, first, signal, hints);
    return this.#watch(conn, sent, dest).conn;
  }

  /**
   * dial() for a tunnel set up in the addon (native-dial.ts NativeTunnelPlan): the watch starts
   * now, before the connect (dial() starts it once connected); a failed connect ends it silently.
   */
  planNative(dest: SocksAddress, data: Uint8Array, hints: DialHints): NativeTunnelPlan | undefined {
    const inner = nativePlanner(this.#inner)?.planNative(dest, data, hints);
    if (!inner) return undefined;
    const sent = data.length > 0;
    const { conn, quiet } = this.#watch(inner.conn, sent, dest);
    return {
      ...inner,
      conn,
      failed: async (err) => {
        quiet();
        return this.#watch(await inner.failed(err), sent, dest).conn;
      },
    };
  }

  /** The watched connection; `quiet` ends the watch with nothing told (the connect failed). */
  #watch(
    conn: DialedConnection,
    sentFirst: boolean,
    dest: SocksAddress,
  ): { conn: DialedConnection; quiet: () => void } {
    const socket = conn.socket;
    const w = new Watch(this.#host, socket as unknown as WatchedSocket, dest);
    if (sentFirst) w.markSent();
    // The request (target address) went out with the first write, with or without application
    // bytes, so a close is an answer to it; a silent server is judged only once the application
    // sent something (it may be waiting for a greeting, or a connection opened ahead of use).
    socket.once('end', () => w.serverClosed());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') w.serverClosed();
      // A gRPC call or fast-open HTTPUpgrade refused after the dial: the status says why, once.
      else if (err.code === 'ERR_UPGRADE_REFUSED') {
        w.settle('upgrade-refused', `tunnel refused by the web front: ${err.message}`);
        hintDialFailureOnce(dialErrno(err), this.#log);
      }
    });
    socket.once('close', () => w.closed());
    const innerDecode: Transform | undefined = conn.decode;
    const decode: Transform = (chunk) => w.decode(innerDecode, chunk);
    const innerEncode: Transform | undefined = conn.encode;
    const encode: Transform = (chunk) => {
      if (!w.sent && chunk.length > 0) w.markSent();
      return innerEncode ? innerEncode(chunk) : chunk;
    };
    // Passed on: once a payload opened (the native relay hands over no sooner), this watch is done.
    return {
      conn: { socket, encode, decode, ...(conn.native ? { native: conn.native } : {}) },
      quiet: () => w.settle(),
    };
  }

  /** The dialer watched (client/lean-tunnel.ts: whether the bare tunnel is a raw SIP004 one). */
  leanSource(): Dialer {
    return this.#inner;
  }

  /**
   * The watch of a tunnel the caller carries with no socket object (client/lean-tunnel.ts): the
   * application's first bytes went with the request; the caller reports the server's FIN or
   * reset (serverClosed), the end (closed) or a failed connect (closed, then settle), and
   * `socket` answers what a NativeServerSocket would (destroyed, writableEnded, answer()) and,
   * when a line names it, the destination (dest()).
   */
  leanWatch(socket: WatchedSocket & { dest(): SocksAddress }): Watch {
    const w = new Watch(this.#host, socket, undefined);
    w.markSent();
    return w;
  }

  /** The waits of a tunnel the addon carries (bare-tunnel.ts): no-answer, and "gave up" at the close. */
  bareTimes(): { noAnswerMs: number; gaveUpMs: number } {
    return { noAnswerMs: this.#noAnswerMs, gaveUpMs: Math.min(GAVE_UP_REPORT_MS, this.#noAnswerMs) };
  }

  /**
   * A tunnel the addon carries with no JS object (native/client_bare.cc) reports one signal when
   * its watch has something to judge: what a lean tunnel's watch concludes from the same signal
   * and the same counts (`seen`: the relay's answer then; `shut`: the application's write half
   * was shut down; the first write went `sentAgoMs` ago).
   */
  bareJudge(
    signal: 'server-closed' | 'closed' | 'due',
    seen: NativeAnswer,
    shut: boolean,
    sentAgoMs: number,
    dest: () => SocksAddress,
  ): void {
    const socket = { destroyed: signal === 'closed', writableEnded: shut, answer: () => seen, dest };
    new Watch(this.#host, socket, undefined).judge(signal, sentAgoMs);
  }
}

/** What a watch reads from its connection's socket (a net.Socket, NativeServerSocket or lean tunnel). */
export interface WatchedSocket {
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  /** A relay that opens the server's answer itself: what it saw so far (native-dial.ts NativeAnswer). */
  answer?: (() => NativeAnswer) | undefined;
  /** The destination, for a watch made without one (leanWatch): decoded only when a line names it. */
  dest?: (() => SocksAddress) | undefined;
}

/** The dialer's side of its watches. */
interface WatchHost {
  clock: Clock;
  deadlines: DeadlineQueue | undefined;
  noAnswerMs: number;
  edition2022: boolean;
  log: Logger;
  tell(kind: Kind, text: string): void;
  /** close() was called (client shutdown): a wait still connecting is not armed again. */
  closed(): boolean;
}

/** One connection's watch: its state and reactions in one object (no closures per connection). */
export class Watch {
  readonly #host: WatchHost;
  readonly #socket: WatchedSocket;
  /**
   * The destination (a function: decoded only when a debug line names it; undefined: the
   * socket's dest()).
   */
  readonly #dest: SocksAddress | (() => SocksAddress) | undefined;
  sent = false;
  #sentAt = 0;
  /** Bytes from the server before the first payload opened. */
  #bytesIn = 0;
  #opened = false;
  /** A payload opened, or a finding was told: nothing more to say. */
  #settled = false;
  #timer: Timer | Deadline | undefined;

  constructor(host: WatchHost, socket: WatchedSocket, dest: SocksAddress | (() => SocksAddress) | undefined) {
    this.#host = host;
    this.#socket = socket;
    this.#dest = dest;
  }

  #clear(): void {
    const timer = this.#timer;
    if (timer) {
      if (this.#host.deadlines) (timer as Deadline).cancel();
      else this.#host.clock.clearTimeout(timer as Timer);
    }
    this.#timer = undefined;
  }

  settle(kind?: Kind, text?: string): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#clear();
    if (kind && text) {
      const host = this.#host;
      host.tell(kind, text);
      // The info line names no destination; at debug, which one it was (every time).
      if (host.log.isLevelEnabled('debug')) {
        const d = this.#dest;
        const dest = d === undefined ? this.#socket.dest!() : typeof d === 'function' ? d() : d;
        host.log.debug({ tunnel: kind }, `tunnel to ${formatAddress(dest)}: ${KIND_WORDS[kind]}`);
      }
    }
  }

  /**
   * A relay that opens the server's answer itself (native-socks.ts: no decode here) is asked
   * what it saw when there is something to judge; true when that settled the watch.
   */
  #asked(): boolean {
    const answer = this.#socket.answer?.();
    if (!answer || this.#settled) return this.#settled;
    if (answer.bytesIn > this.#bytesIn) this.#bytesIn = answer.bytesIn;
    if (answer.answered) {
      this.#opened = true;
      this.settle();
    } else if (answer.failed) this.settle('not-shadowsocks', NOT_SHADOWSOCKS);
    return this.#settled;
  }

  /** What to tell when the server did not open a payload for us by `waited` ms. */
  #unanswered(waited: number): void {
    if (this.#asked()) return;
    if (this.#bytesIn > 0) this.settle('not-shadowsocks', NOT_SHADOWSOCKS);
    else this.settle('no-answer', noAnswer(waited, this.#host.edition2022));
  }

  /** bareJudge's signal, the first write made `sentAgoMs` ago (no wait armed). */
  judge(signal: 'server-closed' | 'closed' | 'due', sentAgoMs: number): void {
    this.sent = true;
    this.#sentAt = this.#host.clock.now() - sentAgoMs;
    if (signal === 'server-closed') this.serverClosed();
    else if (signal === 'closed') this.closed();
    else if (!this.#asked()) this.#unanswered(this.#host.noAnswerMs);
  }

  markSent(): void {
    if (this.sent) return;
    this.sent = true;
    const host = this.#host;
    this.#sentAt = host.clock.now();
    this.#arm();
  }

  /** The no-answer wait; again while the connect runs (the server has not had the request yet). */
  #arm(): void {
    const host = this.#host;
    // The queue calls due() (no closure per connection); a timer of its own, a closure.
    if (host.deadlines) this.#timer = host.deadlines.add(this);
    else {
      const t = host.clock.setTimeout(() => this.due(), host.noAnswerMs);
      t.unref?.();
      this.#timer = t;
    }
  }

  /** The no-answer wait is over (#arm's timer or deadline). */
  due(): void {
    this.#timer = undefined;
    if (this.#socket.destroyed) return;
    // A tunnel the front cancelled at shutdown stays "connecting": armed again only until then.
    if (this.#socket.answer?.().connecting === true) {
      if (!this.#host.closed()) this.#arm();
    } else this.#unanswered(this.#host.noAnswerMs);
  }

  /** The server's FIN, or a reset. */
  serverClosed(): void {
    if (this.#settled || this.#asked()) return;
    if (this.#bytesIn > 0) this.settle('not-shadowsocks', NOT_SHADOWSOCKS);
    else if (this.#socket.writableEnded) this.settle('closed-after-fin', CLOSED_AFTER_FIN);
    else this.settle('closed', CLOSED);
  }

  /** The connection closed. */
  closed(): void {
    // Closed before the connect finished (it failed): its own line says so (logDialFailure).
    if (this.#socket.answer?.().connecting === true) return this.settle();
    if (this.#asked()) return;
    // The application gave up (or reset) before the server said anything.
    const now = this.#host.clock.now();
    if (
      !this.#settled &&
      this.sent &&
      now - this.#sentAt >= Math.min(GAVE_UP_REPORT_MS, this.#host.noAnswerMs)
    )
      this.#unanswered(now - this.#sentAt);
    else this.settle();
  }

  decode(innerDecode: Transform | undefined, chunk: Buffer): Buffer | Buffer[] | undefined {
    if (this.#opened) return innerDecode ? innerDecode(chunk) : chunk;
    this.#bytesIn += chunk.length;
    let out: Buffer | Buffer[] | undefined;
    try {
      out = innerDecode ? innerDecode(chunk) : chunk;
    } catch (err) {
      this.settle('not-shadowsocks', NOT_SHADOWSOCKS);
      throw err;
    }
    if (hasPayload(out)) {
      this.#opened = true;
      this.settle();
    }
    return out;
  }
}
