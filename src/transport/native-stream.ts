/**
 * Raw TCP connections accepted and read by the native addon (native/tcp_accept.cc, Linux), so
 * that the server's short connections never build a net.Socket: the listening socket is polled
 * in C++, each connection arrives with what it already sent in one JS call, and its bytes go to
 * the addon's relay by descriptor (takeFd) once JS has decided everything.
 *
 * NativeStream gives a connection the part of a Duplex the server's pre-relay state machine uses
 * ('data', 'end', 'error', 'close', pause, resume, end, destroy); it never writes. Paths that need
 * a real stream (relay.ts, UDP over TCP) turn it into a net.Socket (toSocket) at that point:
 * nothing is read while it is paused, so no byte is lost in between.
 *
 * On by default where the native relay is in use; LADDER_NATIVE_ACCEPT=0 turns it off (read once
 * per server; each data-plane worker makes one).
 */
import { Socket } from 'node:net';
import { nativeAddon } from '../protocol/shadowsocks/native.js';
import { envSwitch } from '../shared/env.js';

/** The addon's SIP004 key trial at the accept (acceptKeys; server/accept-trial.ts reads it). */
export interface AcceptedTrial {
  /** The key's index in acceptKeys' list; -1: no key's tag verified. */
  readonly index: number;
  /** That key's decoder and its state, once it read the first read (undefined: invalid length). */
  readonly codec: object | undefined;
  readonly info: Int32Array | undefined;
  /** The plaintext of the rest of the first read, or a decode status (1 cipher, 2 length). */
  readonly after: Buffer | number | undefined;
  /** The lean path's checks in the addon (LeanChecks): 1 or 3, they passed and the client salt is in the filter. */
  readonly checked?: number | undefined;
}

/** The addon's accept and pre-relay reads (native/tcp_accept.cc). */
export interface NativeAccept {
  acceptListen(
    fd: number,
    onConn: (
      id: number,
      first: Buffer | undefined,
      code: number,
      peer: string,
      ageMs: number,
      trial?: number,
      codec?: object,
      info?: Int32Array,
      after?: Buffer | number,
      checked?: number,
    ) => void,
    onEvent: (id: number, chunk: Buffer | undefined, code: number) => void,
    waitMs?: number,
    maxWaiting?: number,
    clientSalts?: Uint8Array,
    serverSalts?: Uint8Array,
    allowPrivate?: boolean,
    names?: boolean,
  ): object;
  /** Absent in an older build. */
  acceptKeys?(listener: object, methods?: Int32Array, keys?: Uint8Array[]): void;
  acceptClose(listener: object): void;
  acceptPending(listener: object): number;
  connRead(id: number, on: boolean): void;
  connEnd(id: number): void;
  connClose(id: number): void;
  connRelease(id: number): number;
  acceptLive(): number;
}

const FUNCTIONS: readonly (keyof NativeAccept)[] = [
  'acceptListen',
  'acceptClose',
  'acceptPending',
  'connRead',
  'connEnd',
  'connClose',
  'connRelease',
  'acceptLive',
];

/** The addon's accept; undefined without the addon, off Linux, or in an older build. */
export function nativeAccept(): NativeAccept | undefined {
  const a = nativeAddon() as Partial<NativeAccept> | null;
  if (!a || !FUNCTIONS.every((f) => typeof a[f] === 'function')) return undefined;
  return a as NativeAccept;
}

/**
 * The addon waits for a connection's first bytes before JS hears of it (one JS call per
 * connection instead of two) unless LADDER_NATIVE_HANDSHAKE=0.
 */
export function nativeHandshakeFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_HANDSHAKE', env);
}

/** The server's native accept is on unless LADDER_NATIVE_ACCEPT=0. */
export function nativeAcceptFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_ACCEPT', env);
}

/** Connections accepted natively on this thread and not yet closed or handed on (tests). */
export function nativeAcceptLive(): number {
  return nativeAccept()?.acceptLive() ?? 0;
}

type Events = {
  data: (chunk: Buffer) => void;
  end: () => void;
  error: (err: Error) => void;
  close: () => void;
};
type EventName = keyof Events;

/** The low 20 bits of an id name its slot (native/tcp_accept.cc); live streams by slot. */
const SLOT_MASK = 0xfffff;
const live: (NativeStream | undefined)[] = [];

function readError(code: number): Error {
  return Object.assign(new Error(`read failed (errno ${-code})`), { code: 'ERR_SOCKET_READ', errno: code });
}

/**
 * One natively accepted connection before its hand-off. Events come from the addon's loop,
 * 'close' on the next tick after destroy() (as net.Socket's does).
 */
export class NativeStream {
  readonly remoteAddress: string;
  /** Milliseconds between the accept and this object (the addon waited for the first bytes). */
  readonly acceptedAgoMs: number;
  readonly #fns: NativeAccept;
  readonly #id: number;
  readonly #listeners: { [K in EventName]: Events[K][] } = { data: [], end: [], error: [], close: [] };
  #paused = false;
  /** The peer's end or a read error that came while paused: delivered at resume(). */
  #held: number | undefined;
  #readEnded = false;
  #writeEnded = false;
  #destroyed = false;
  /** The descriptor went to its new owner (takeFd): nothing here touches it again. */
  #released = false;

  /** `paused`: the addon's connection is paused already (connRead(id, false) was called). */
  constructor(fns: NativeAccept, id: number, remoteAddress: string, acceptedAgoMs = 0, paused = false) {
    this.#fns = fns;
    this.#id = id;
    this.remoteAddress = remoteAddress;
    this.acceptedAgoMs = acceptedAgoMs;
    this.#paused = paused;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** The addon's id of this connection (relayConnect takes the socket by it, in C++). */
  get id(): number {
    return this.#id;
  }

  on<K extends EventName>(event: K, fn: Events[K]): this {
    this.#listeners[event].push(fn);
    return this;
  }

  off<K extends EventName>(event: K, fn: Events[K]): this {
    const list = this.#listeners[event];
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
    return this;
  }

  /** Stop reading (the kernel buffers, then the peer's window fills). */
  pause(): this {
    if (this.#paused || this.#released || this.#destroyed) return this;
    this.#paused = true;
    this.#fns.connRead(this.#id, false);
    return this;
  }

  resume(): this {
    if (!this.#paused || this.#released || this.#destroyed) return this;
    this.#paused = false;
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) process.nextTick(() => this.deliver(undefined, held));
    else if (!this.#readEnded) this.#fns.connRead(this.#id, true);
    return this;
  }

  /**
   * FIN (shutdown of the write half). Closes once the peer ended too. `cb` comes as net.Socket's
   * does: while reading, after a loop turn in which the addon read what had already arrived (a
   * destroy() in `cb` right after a resume(), as when a dial failed, would otherwise close with
   * those bytes unread: an RST after the FIN, and bytes never counted); else on the next tick.
   */
  end(cb?: () => void): this {
    if (this.#released || this.#destroyed || this.#writeEnded) {
      if (cb) process.nextTick(cb);
      return this;
    }
    this.#writeEnded = true;
    this.#fns.connEnd(this.#id);
    const done = (): void => {
      cb?.();
      if (this.#readEnded) this.destroy();
    };
    // Two immediates: at least one poll phase (where the addon reads) runs between, whichever
    // phase this is called in.
    if (this.#paused || this.#readEnded) process.nextTick(done);
    else setImmediate(() => setImmediate(done));
    return this;
  }

  /** Close now (no more events but 'close'). After takeFd only 'close' is emitted. */
  destroy(): this {
    if (this.#destroyed) return this;
    this.#close();
    process.nextTick(() => this.#emit('close'));
    return this;
  }

  /**
   * Close now and emit nothing, not even 'close': for an owner that has finished with the stream
   * and learnt of its end another way (a native relay's onClose), so no tick is queued for an
   * event nobody needs.
   */
  destroySilently(): void {
    if (!this.#destroyed) this.#close();
  }

  #close(): void {
    this.#destroyed = true;
    if (!this.#released) {
      this.#fns.connClose(this.#id);
      this.#unlist();
    }
  }

  /** Hand the descriptor on (to relayPair, which closes it): no reads or events from here. */
  takeFd(): number {
    if (this.#released || this.#destroyed) throw new Error('the stream has no descriptor any more');
    this.#released = true;
    this.#unlist();
    return this.#fns.connRelease(this.#id);
  }

  /**
   * The connection as a net.Socket from here on (relay.ts and uot.ts need a stream): this one
   * lets go of it and emits nothing more. Call while paused (nothing was read since).
   */
  toSocket(): Socket {
    const fd = this.takeFd();
    this.#destroyed = true;
    return new Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
  }

  #unlist(): void {
    const slot = this.#id & SLOT_MASK;
    if (live[slot] === this) live[slot] = undefined;
  }

  #emit<K extends EventName>(event: K, ...args: Parameters<Events[K]>): void {
    const list = this.#listeners[event];
    if (list.length === 1) return (list[0] as (...a: Parameters<Events[K]>) => void)(...args);
    for (const fn of [...list]) (fn as (...a: Parameters<Events[K]>) => void)(...args);
  }

  /** What a read gave (the addon's codes: a chunk, 1 EOF, < 0 an errno). */
  deliver(chunk: Buffer | undefined, code: number): void {
    if (this.#destroyed || this.#released) return;
    if (chunk) this.#emit('data', chunk);
    if (code === 0 || this.#destroyed || this.#released) return;
    if (this.#paused) {
      this.#held = code;
      return;
    }
    if (code === 1) {
      this.#readEnded = true;
      this.#emit('end');
      if (this.#writeEnded && !this.#destroyed) process.nextTick(() => this.destroy());
      return;
    }
    this.#emit('error', readError(code));
    this.destroy();
  }

  static register(s: NativeStream): void {
    live[s.#id & SLOT_MASK] = s;
  }

  static byId(id: number): NativeStream | undefined {
    const s = live[id & SLOT_MASK];
    return s && s.#id === id ? s : undefined;
  }
}

const onEvent = (id: number, chunk: Buffer | undefined, code: number): void =>
  NativeStream.byId(id)?.deliver(chunk, code);

/** What listenNative's onStream may return: told once the first delivery (bytes, end or nothing) is done. */
export interface NativeStreamOwner {
  delivered(): void;
}

/**
 * A first call that may serve the connection without a NativeStream (the server's lean path,
 * server/lean-path.ts): onConn's arguments when the addon made the key trial; true when it took
 * the connection, false to go on as without it (nothing changed).
 */
export type LeanFirst = (
  id: number,
  first: Buffer | undefined,
  code: number,
  peer: string,
  ageMs: number,
  index: number,
  codec: object | undefined,
  info: Int32Array | undefined,
  after: Buffer | number | undefined,
  checked: number | undefined,
) => boolean;

/**
 * The lean path's checks in the addon (native/tcp_accept.cc acceptListen): the port's shared
 * SIP004 replay filters (Uint8Arrays over their whole SharedArrayBuffers) and the private rule's
 * switch; the addon then hands the lean path `checked` (1 passed and the salt added, 2 refused,
 * 0 not checked, 3 passed for a name target: only with `names`, the server's name dial on).
 */
export interface LeanChecks {
  readonly clientSalts: Uint8Array;
  readonly serverSalts: Uint8Array;
  readonly allowPrivate: boolean;
  readonly names?: boolean;
}

/**
 * A listening socket accepted from natively; close() stops accepting (connections live on; those
 * the addon still held waiting for their first bytes are handed to `onStream` first).
 */
export interface NativeListener {
  close(): void;
  /** Connections accepted and still waiting in the addon for their first bytes. */
  pending(): number;
  /** The keys to try at the accept (none: no trial); undefined in an older build. */
  readonly keys: ((methods?: Int32Array, keys?: Uint8Array[]) => void) | undefined;
}

/**
 * Accept from the listening socket `fd` in the addon (it duplicates `fd`: the caller closes its
 * own). Each connection is passed to `onStream` before its first bytes are delivered. With
 * `waitMs` > 0 the addon holds a connection that has sent nothing yet until its first bytes (or
 * EOF) come or `waitMs` pass (then it comes with nothing, `acceptedAgoMs` old): one JS entry for
 * the accept and the first bytes of the common connection instead of two. When `onStream` returns
 * an owner, its delivered() runs right after that first delivery. `lean`, when given, is asked
 * first about each connection the addon's key trial ran on, and may take it (no NativeStream).
 * `maxWaiting` (> 0) bounds how many wait at once: beyond it the oldest comes at once (an older addon ignores it).
 * `checks`, with `lean`: the addon makes the lean path's checks (an older addon ignores them).
 */
export function listenNative(
  fns: NativeAccept,
  fd: number,
  onStream: (s: NativeStream, first: Buffer | undefined, trial?: AcceptedTrial) => NativeStreamOwner | void,
  waitMs = 0,
  lean?: LeanFirst,
  maxWaiting = 0,
  checks?: LeanChecks,
): NativeListener {
  const handle = fns.acceptListen(
    fd,
    (id, first, code, peer, ageMs, index, codec, info, after, checked) => {
      if (
        index !== undefined &&
        lean?.(id, first, code, peer, ageMs, index, codec, info, after, checked) === true
      )
        return;
      const s = new NativeStream(fns, id, peer, ageMs);
      NativeStream.register(s);
      const owner = onStream(
        s,
        first,
        index === undefined ? undefined : { index, codec, info, after, checked },
      );
      s.deliver(first, code);
      owner?.delivered();
    },
    onEvent,
    waitMs > 0 ? Math.max(1, Math.ceil(waitMs)) : 0,
    maxWaiting,
    lean && checks?.clientSalts,
    lean && checks?.serverSalts,
    checks?.allowPrivate,
    checks?.names,
  );
  const keys = fns.acceptKeys?.bind(fns, handle);
  return { close: () => fns.acceptClose(handle), pending: () => fns.acceptPending(handle), keys };
}
