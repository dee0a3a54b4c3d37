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
import { isNativeServerSocket, nativePlanner, type NativeTunnelPlan } from '../transport/native-dial.js';
import type { Transform } from '../transport/relay.js';
import { DeadlineQueue, type Deadline } from './deadline-queue.js';

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

type Kind = 'closed' | 'closed-after-fin' | 'no-answer' | 'not-shadowsocks';

/** The debug line's words for each finding (the info line explains it). */
const KIND_WORDS: Record<Kind, string> = {
  closed: 'the server closed it without data',
  'closed-after-fin': 'the server closed it without data after the application finished sending',
  'no-answer': 'no answer from the server',
  'not-shadowsocks': 'the server answered with bytes this key cannot decrypt',
};

const CLOSED =
  'the server accepted the connection but closed it without data: the destination refused, did not resolve or was not allowed (a private address needs --allow-private on the server), or the key was changed';
const CLOSED_AFTER_FIN =
  'the server closed the connection without data once the application had finished sending: the destination refused or was not allowed (a private address needs --allow-private on the server), or the key may be disabled, expired or over quota, deleted or rotated (a new secret)';
const NOT_SHADOWSOCKS =
  'the server answered with bytes this key cannot decrypt: it is not a Shadowsocks server for this key (wrong method or password, or another service on that port)';

function noAnswer(ms: number, edition2022: boolean): string {
  const s = ms >= 10_000 || ms % 1000 === 0 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
  const clock = edition2022 ? ', or the clocks of client and server differ by more than 30 s' : '';
  return `no answer from the server in ${s}: the key may be disabled, expired or over quota, deleted or rotated (a new secret)${clock}, or the server is not a Shadowsocks server for this key`;
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
    const clock = this.#clock;
    const socket = conn.socket;
    let sent = false;
    let sentAt = 0;
    let bytesIn = 0; // bytes from the server before the first payload opened
    let opened = false;
    let settled = false; // a payload opened, or a finding was told: nothing more to say
    let timer: Timer | Deadline | undefined;
    const clear = (): void => {
      if (timer) {
        if (this.#deadlines) (timer as Deadline).cancel();
        else clock.clearTimeout(timer as Timer);
      }
      timer = undefined;
    };
    const settle = (kind?: Kind, text?: string): void => {
      if (settled) return;
      settled = true;
      clear();
      if (kind && text) {
        this.#tell(kind, text);
        // The info line names no destination; at debug, which one it was (every time).
        if (this.#log.isLevelEnabled('debug'))
          this.#log.debug({ tunnel: kind }, `tunnel to ${formatAddress(dest)}: ${KIND_WORDS[kind]}`);
      }
    };
    /**
     * A relay that opens the server's answer itself (native-socks.ts: no decode here) is asked
     * what it saw when there is something to judge; true when that settled the watch.
     */
    const asked = (): boolean => {
      const answer = isNativeServerSocket(socket) ? socket.answer?.() : undefined;
      if (!answer || settled) return settled;
      if (answer.bytesIn > bytesIn) bytesIn = answer.bytesIn;
      if (answer.answered) {
        opened = true;
        settle();
      } else if (answer.failed) settle('not-shadowsocks', NOT_SHADOWSOCKS);
      return settled;
    };
    /** What to tell when the server did not open a payload for us by `waited` ms. */
    const unanswered = (waited: number): void => {
      if (asked()) return;
      if (bytesIn > 0) settle('not-shadowsocks', NOT_SHADOWSOCKS);
      else settle('no-answer', noAnswer(waited, this.#edition2022));
    };
    const markSent = (): void => {
      if (sent) return;
      sent = true;
      sentAt = clock.now();
      const due = (): void => {
        timer = undefined;
        if (!socket.destroyed) unanswered(this.#noAnswerMs);
      };
      if (this.#deadlines) timer = this.#deadlines.add(due);
      else {
        const t = clock.setTimeout(due, this.#noAnswerMs);
        t.unref?.();
        timer = t;
      }
    };
    if (sentFirst) markSent();

    // The request (target address) went out with the first write, with or without application
    // bytes, so a close is an answer to it; a silent server is judged only once the application
    // sent something (it may be waiting for a greeting, or a connection opened ahead of use).
    const serverClosed = (): void => {
      if (settled || asked()) return;
      if (bytesIn > 0) settle('not-shadowsocks', NOT_SHADOWSOCKS);
      else if (socket.writableEnded) settle('closed-after-fin', CLOSED_AFTER_FIN);
      else settle('closed', CLOSED);
    };
    socket.once('end', serverClosed);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') serverClosed();
    });
    socket.once('close', () => {
      if (asked()) return;
      // The application gave up (or reset) before the server said anything.
      if (!settled && sent && clock.now() - sentAt >= Math.min(GAVE_UP_REPORT_MS, this.#noAnswerMs))
        unanswered(clock.now() - sentAt);
      else settle();
    });

    const innerDecode: Transform | undefined = conn.decode;
    const decode: Transform = (chunk) => {
      if (opened) return innerDecode ? innerDecode(chunk) : chunk;
      bytesIn += chunk.length;
      let out: Buffer | Buffer[] | undefined;
      try {
        out = innerDecode ? innerDecode(chunk) : chunk;
      } catch (err) {
        settle('not-shadowsocks', NOT_SHADOWSOCKS);
        throw err;
      }
      if (hasPayload(out)) {
        opened = true;
        settle();
      }
      return out;
    };
    const innerEncode: Transform | undefined = conn.encode;
    const encode: Transform = (chunk) => {
      if (!sent && chunk.length > 0) markSent();
      return innerEncode ? innerEncode(chunk) : chunk;
    };
    // Passed on: once a payload opened (the native relay hands over no sooner), this watch is done.
    return {
      conn: { socket, encode, decode, ...(conn.native ? { native: conn.native } : {}) },
      quiet: () => settle(),
    };
  }
}
