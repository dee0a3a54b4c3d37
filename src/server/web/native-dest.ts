/**
 * The server's destination connections for streams relayed in JS (Mux.Cool sessions, raw
 * WebSocket streams), made by the addon (native/dest_stream.cc, Linux): the connect, the reads
 * and the writes happen on one epoll set per thread, so a short Mux.Cool session builds no
 * net.Socket (no TCPWrap, no stream states, no libuv poll of its own: two epoll_ctl where a
 * net.Socket costs five).
 *
 * NativeDest is the part of a net.Socket that relay.ts and connection.ts use on a destination:
 * 'data', 'end', 'error', 'close' and 'drain' events, write (a send(2) at once; what the socket
 * does not take is kept in the addon and sent when it can, with 'drain' after), cork/uncork (one
 * send for the corked writes), end (FIN once everything is sent), pause/resume, destroy, and the
 * writable* state relay.ts reads. It closes itself once both directions are done, as a
 * half-open net.Socket does.
 *
 * On by default where the addon has it; LADDER_NATIVE_DEST=0 (or LADDER_NATIVE_RELAY=0, which
 * turns the server's other native paths off) keeps net.Socket.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { getSystemErrorName } from 'node:util';
import { nativeAddon } from '../../protocol/shadowsocks/native.js';
import type { Clock } from '../../shared/clock.js';
import { DialError, type ConnectOnce } from '../destination.js';

/** The addon's destination connections (native/dest_stream.cc). */
interface NativeDestFns {
  destInit(onEvent: (id: number, chunk: Buffer | undefined, code: number) => void): void;
  /** The id, or -id when connected already (no connected event follows). */
  destConnect(ip: string, port: number): number;
  destWrite(id: number, bytes: Uint8Array): number;
  destRead(id: number, on: boolean): void;
  destEnd(id: number): void;
  destClose(id: number): void;
  destLive(): number;
}

const FUNCTIONS: readonly (keyof NativeDestFns)[] = [
  'destInit',
  'destConnect',
  'destWrite',
  'destRead',
  'destEnd',
  'destClose',
  'destLive',
];

const DATA = 0;
const EOF = 1;
const CONNECTED = 2;
const DRAINED = 3;
/** Bytes pending in the addon above which write() says false (and 'drain' follows). */
const HIGH_WATER = 64 * 1024;

/** The low 20 bits of an id name its slot (native/dest_stream.cc); live connections by slot. */
const SLOT_MASK = 0xfffff;
const live: (NativeDest | undefined)[] = [];

/** Per thread: the addon's functions once destInit ran here, or null where it is unavailable. */
let fns: NativeDestFns | null | undefined;

function addon(): NativeDestFns | null {
  if (fns !== undefined) return fns;
  const a = nativeAddon() as Partial<NativeDestFns> | null;
  if (!a || !FUNCTIONS.every((f) => typeof a[f] === 'function')) return (fns = null);
  try {
    a.destInit!((id, chunk, code) => {
      const d = live[id & SLOT_MASK];
      if (d && d.id === id) d.event(chunk, code);
    });
  } catch {
    return (fns = null);
  }
  return (fns = a as NativeDestFns);
}

/** Whether the server's WebSocket streams dial their destinations natively (env and addon). */
export function nativeDestAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.LADDER_NATIVE_DEST === '0' || env.LADDER_NATIVE_RELAY === '0') return false;
  return addon() !== null;
}

/** Destination connections of this thread not yet closed (tests: nothing leaks). */
export function nativeDestLive(): number {
  return fns ? fns.destLive() : 0;
}

/** A libuv-style errno (negative) as its name (ECONNREFUSED...); EIO for anything unnamed. */
function errnoName(errno: number): string {
  try {
    return errno < 0 ? getSystemErrorName(errno) : 'EIO';
  } catch {
    return 'EIO';
  }
}

function ioError(errno: number): Error {
  const code = errnoName(errno);
  return Object.assign(new Error(`destination ${code}`), { code, errno });
}

/** One destination connection (see the file comment). */
export class NativeDest extends EventEmitter {
  readonly id: number;
  readonly #fns: NativeDestFns;
  /** While connecting: the dial's answer. */
  #connected: ((errno: number) => void) | undefined;
  #pending = 0;
  #corked: Buffer[] | undefined;
  /** Read before anyone listened for 'data' (the relay attaches after the dial's promise). */
  #held: Buffer[] = [];
  #heldEnd = false;
  #readEnded = false;
  #writeEnded = false;
  #finished = false;
  #destroyed = false;
  #paused = false;

  /** `connected`: the connect's answer to wait for; undefined when it is connected already. */
  constructor(f: NativeDestFns, id: number, connected: ((errno: number) => void) | undefined) {
    super();
    this.#fns = f;
    this.id = id;
    this.#connected = connected;
    live[id & SLOT_MASK] = this;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }
  get writableEnded(): boolean {
    return this.#writeEnded;
  }
  get writableFinished(): boolean {
    return this.#finished;
  }
  get writableLength(): number {
    return this.#pending;
  }
  get writableHighWaterMark(): number {
    return HIGH_WATER;
  }

  /** What the addon reported (see native/dest_stream.cc). */
  event(chunk: Buffer | undefined, code: number): void {
    if (this.#destroyed) return;
    const connected = this.#connected;
    if (connected) {
      this.#connected = undefined;
      if (code === CONNECTED) connected(0);
      else if (code < 0) {
        this.#close();
        connected(code);
      }
      return;
    }
    if (code === DATA && chunk) {
      if (this.listenerCount('data') === 0) this.#hold(chunk);
      else this.emit('data', chunk);
    } else if (code === EOF) {
      if (this.listenerCount('data') === 0) this.#heldEnd = true;
      else this.#onEof();
    } else if (code === DRAINED) {
      this.#pending = 0;
      if (this.#writeEnded) this.#finish();
      this.emit('drain');
    } else if (code < 0) {
      this.destroy(ioError(code));
    }
  }

  #hold(chunk: Buffer): void {
    // Nobody reads yet: stop reading until the first 'data' listener (at most one chunk held).
    this.#held.push(chunk);
    this.#fns.destRead(this.id, false);
  }

  override on(event: string | symbol, fn: Parameters<EventEmitter['on']>[1]): this {
    super.on(event, fn);
    if (event === 'data' && (this.#held.length > 0 || this.#heldEnd)) queueMicrotask(() => this.#release());
    return this;
  }

  #release(): void {
    if (this.#destroyed || this.listenerCount('data') === 0) return;
    const held = this.#held;
    this.#held = [];
    for (const c of held) this.emit('data', c);
    if (this.#heldEnd) {
      this.#heldEnd = false;
      this.#onEof();
    } else if (!this.#paused && !this.#destroyed) this.#fns.destRead(this.id, true);
  }

  #onEof(): void {
    this.#readEnded = true;
    this.emit('end');
    if (this.#finished) process.nextTick(() => this.destroy());
  }

  #finish(): void {
    this.#finished = true;
    if (this.#readEnded) process.nextTick(() => this.destroy());
  }

  write(chunk: Buffer, cb?: (err?: Error | null) => void): boolean {
    if (this.#destroyed || this.#writeEnded) {
      if (cb) process.nextTick(cb, new Error('write after end'));
      return false;
    }
    if (this.#corked) {
      this.#corked.push(chunk);
      if (cb) process.nextTick(cb);
      return true;
    }
    const n = this.#fns.destWrite(this.id, chunk);
    if (n < 0) {
      const err = ioError(n);
      process.nextTick(() => this.destroy(err));
      if (cb) process.nextTick(cb, err);
      return false;
    }
    this.#pending = n;
    if (cb) process.nextTick(cb);
    return n < HIGH_WATER;
  }

  cork(): void {
    this.#corked ??= [];
  }

  uncork(): void {
    const c = this.#corked;
    this.#corked = undefined;
    if (c && c.length > 0) this.write(c.length === 1 ? c[0]! : Buffer.concat(c));
  }

  /** FIN once everything written is sent. */
  end(cb?: () => void): this {
    if (this.#corked) this.uncork();
    if (this.#destroyed || this.#writeEnded) {
      if (cb) process.nextTick(cb);
      return this;
    }
    this.#writeEnded = true;
    this.#fns.destEnd(this.id);
    if (this.#pending === 0) this.#finish();
    if (cb) process.nextTick(cb);
    return this;
  }

  pause(): this {
    if (!this.#paused && !this.#destroyed) {
      this.#paused = true;
      this.#fns.destRead(this.id, false);
    }
    return this;
  }

  resume(): this {
    if (this.#paused && !this.#destroyed) {
      this.#paused = false;
      if (this.#held.length === 0 && !this.#heldEnd) this.#fns.destRead(this.id, true);
    }
    return this;
  }

  #close(): void {
    this.#destroyed = true;
    this.#fns.destClose(this.id);
    if (live[this.id & SLOT_MASK] === this) live[this.id & SLOT_MASK] = undefined;
  }

  /** Close now: 'error' (with `err`) and then 'close', on the next tick. */
  destroy(err?: Error): this {
    if (this.#destroyed) return this;
    this.#close();
    process.nextTick(() => {
      if (err && this.listenerCount('error') > 0) this.emit('error', err);
      this.emit('close');
    });
    return this;
  }
}

/**
 * dialWith's connect for WebSocket streams: the addon's connect with connectOnce's time budget
 * and DialErrors, yielding a NativeDest (a Duplex to relay.ts; see the file comment).
 */
export const nativeDestConnect: ConnectOnce<Duplex> = (
  ip: string,
  port: number,
  deadline: number,
  clock: Clock,
) =>
  new Promise<Duplex>((resolve, reject) => {
    const f = addon();
    if (!f) {
      reject(new DialError('ERR_CONNECT', 'connect failed: EIO', 'EIO'));
      return;
    }
    const failed = (errno: number): void => {
      clock.clearTimeout(timer);
      const code = errnoName(errno);
      reject(new DialError('ERR_CONNECT', `connect failed: ${code}`, code));
    };
    let id: number;
    try {
      id = f.destConnect(ip, port);
    } catch (err) {
      const code = errnoName(Number((err as { errno?: unknown }).errno ?? 0));
      reject(new DialError('ERR_CONNECT', `connect failed: ${code}`, code));
      return;
    }
    if (id < 0) {
      // Connected within connect(2) (loopback): the caller writes in this turn, where waiting
      // for the connected event cost a wake-up of the event loop and two epoll_ctl.
      resolve(new NativeDest(f, -id, undefined) as unknown as Duplex);
      return;
    }
    const dest = new NativeDest(f, id, (errno) => {
      if (errno < 0) return failed(errno);
      clock.clearTimeout(timer);
      resolve(dest as unknown as Duplex);
    });
    const timer = clock.setTimeout(
      () => {
        dest.destroy();
        reject(new DialError('ERR_CONNECT', 'connect timed out', 'ETIMEDOUT'));
      },
      Math.max(1, deadline - clock.now()),
    );
    timer.unref?.();
  });
