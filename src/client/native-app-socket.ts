/**
 * An application connection from the native SOCKS5 front (native-socks.ts) as a Duplex whose
 * reads and writes are the addon's (native/app_conn.cc): for tunnels that JS carries (a Mux.Cool
 * session over a WebSocket, a 2022 key, a direct route), where a net.Socket made from the
 * descriptor cost about a dozen syscalls and a libuv handle before its first byte. Reads share
 * one epoll set per thread; a write goes to the socket at once (send(2)), and what the kernel does
 * not take waits in the addon, the write's callback with it, until a 'drain' event.
 *
 * Stream semantics are Node's own (allowHalfOpen: the peer's FIN ends the readable side only;
 * end() sends our FIN once the writes before it are out; destroy() closes the descriptor): the
 * relays (relay.ts via pipeTunnel) use it as they use a net.Socket.
 */
import { Duplex } from 'node:stream';
import util from 'node:util';
import { nativeAddon } from '../protocol/shadowsocks/native.js';

/** The addon's application connections (native/app_conn.cc, Linux). */
export interface NativeAppConn {
  appConnInit(onEvent: (id: number, chunk: Buffer | undefined, code: number) => void): void;
  appConnOpen(fd: number): number;
  appConnRead(id: number, on: boolean): void;
  appConnWrite(id: number, data: Uint8Array): number;
  appConnEnd(id: number): void;
  appConnClose(id: number): void;
  appConnLive(): number;
}

const FUNCTIONS: readonly (keyof NativeAppConn)[] = [
  'appConnInit',
  'appConnOpen',
  'appConnRead',
  'appConnWrite',
  'appConnEnd',
  'appConnClose',
  'appConnLive',
];

const EV_DATA = 0;
const EV_EOF = 1;
const EV_DRAIN = 2;

/** Live sockets by id, for the thread's one event callback. */
const live = new Map<number, NativeAppSocket>();
let ready: NativeAppConn | undefined;
/** Writes the kernel did not take at once (the addon queued them), since the process started. */
let queued = 0;

/** The addon's application connections, set up for this thread; undefined without them. */
export function nativeAppConn(): NativeAppConn | undefined {
  if (ready) return ready;
  const a = nativeAddon() as Partial<NativeAppConn> | null;
  if (!a || !FUNCTIONS.every((f) => typeof a[f] === 'function')) return undefined;
  const fns = a as NativeAppConn;
  fns.appConnInit((id, chunk, code) => live.get(id)?.event(chunk, code));
  ready = fns;
  return fns;
}

/** Writes that waited for a 'drain' so far (tests: the back-pressure path ran). */
export function nativeAppQueuedWrites(): number {
  return queued;
}

/** Application connections open on this thread (tests: nothing leaks). */
export function nativeAppLive(): number {
  return ready?.appConnLive() ?? 0;
}

function errnoError(code: number, what: string): NodeJS.ErrnoException {
  let name = 'EIO';
  try {
    name = util.getSystemErrorName(code);
  } catch {
    // an errno libuv does not name
  }
  return Object.assign(new Error(`${what} failed (${name})`), { code: name, errno: code });
}

export class NativeAppSocket extends Duplex {
  readonly #fns: NativeAppConn;
  readonly #id: number;
  #reading = false;
  #closed = false;
  /** A write's callback while the addon holds bytes the kernel did not take. */
  #waiting: ((err?: Error | null) => void) | undefined;

  /** Takes `fd` (closed with the stream); throws when the addon cannot. */
  constructor(fns: NativeAppConn, fd: number) {
    super({ allowHalfOpen: true });
    this.#fns = fns;
    this.#id = fns.appConnOpen(fd);
    live.set(this.#id, this);
  }

  /** An event from the addon (see native/app_conn.cc). */
  event(chunk: Buffer | undefined, code: number): void {
    if (this.#closed) return;
    if (code === EV_DATA) {
      if (chunk && !this.push(chunk)) this.#read(false);
      return;
    }
    if (code === EV_EOF) {
      this.#reading = false;
      this.push(null);
      return;
    }
    if (code === EV_DRAIN) {
      const cb = this.#waiting;
      this.#waiting = undefined;
      cb?.();
      return;
    }
    this.destroy(errnoError(code, 'socket'));
  }

  #read(on: boolean): void {
    if (this.#reading === on || this.#closed) return;
    this.#reading = on;
    this.#fns.appConnRead(this.#id, on);
  }

  override _read(): void {
    this.#read(true);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#write(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.#write(Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  #write(chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (this.#closed) {
      cb(new Error('socket is closed'));
      return;
    }
    const r = this.#fns.appConnWrite(this.#id, chunk);
    if (r === 0) cb();
    else if (r > 0) {
      queued++;
      this.#waiting = cb;
    } else cb(errnoError(r, 'write'));
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.#closed) this.#fns.appConnEnd(this.#id);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.#closed) {
      this.#closed = true;
      live.delete(this.#id);
      this.#fns.appConnClose(this.#id);
    }
    this.#waiting = undefined; // an unfinished write's callback is dropped, as a closed handle's
    cb(err);
  }
}
