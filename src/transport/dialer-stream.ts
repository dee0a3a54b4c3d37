import { Duplex } from 'node:stream';
import type { SocksAddress } from '../protocol/socks5/address.js';
import type { DialedConnection, Dialer } from './dialer.js';

/**
 * A Duplex over a lazily dialed connection, for code that wants a stream (node:http's
 * `createConnection`). Nothing is dialed until the first write (or end), and the bytes of that
 * first write (all of them, when several were queued: see _writev) become the dialer's
 * `firstData`, so an HTTP request head leaves in the same packet as the tunnel handshake.
 */
export class DialerStream extends Duplex {
  readonly #dialer: Dialer;
  readonly #dest: SocksAddress;
  readonly #abort = new AbortController();
  #conn: DialedConnection | undefined;
  #dialing = false;

  constructor(dialer: Dialer, dest: SocksAddress) {
    super({ allowHalfOpen: true });
    this.#dialer = dialer;
    this.#dest = dest;
  }

  /** Satisfy node:http, which calls these on its socket. */
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(_ms: number, cb?: () => void): this {
    if (cb) this.once('timeout', cb);
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  #open(first: Buffer | undefined, cb: (err?: Error | null) => void): void {
    this.#dialing = true;
    this.#dialer.dial(this.#dest, first, this.#abort.signal).then(
      (conn) => {
        if (this.destroyed) {
          conn.socket.destroy();
          return;
        }
        this.#conn = conn;
        const { socket, decode } = conn;
        socket.on('data', (chunk: Buffer) => {
          let out: Buffer | Buffer[] | undefined;
          try {
            out = decode ? decode(chunk) : chunk;
          } catch (err) {
            this.destroy(err as Error);
            return;
          }
          if (out === undefined) return;
          let more = true;
          for (const o of Array.isArray(out) ? out : [out]) if (o.length > 0) more = this.push(o);
          if (!more) socket.pause();
        });
        socket.once('end', () => this.push(null));
        socket.once('error', (err) => this.destroy(err));
        socket.once('close', () => {
          if (!this.destroyed && !this.readableEnded) this.destroy(new Error('connection closed'));
        });
        this.emit('connect');
        cb();
      },
      (err: unknown) => cb(err as Error),
    );
  }

  #send(data: Buffer, cb: (err?: Error | null) => void): void {
    const conn = this.#conn!;
    const out = conn.encode ? conn.encode(data) : data;
    const parts = out === undefined ? [] : Array.isArray(out) ? out : [out];
    if (parts.length === 0) {
      cb();
      return;
    }
    for (let i = 0; i < parts.length - 1; i++) conn.socket.write(parts[i]!);
    conn.socket.write(parts[parts.length - 1]!, cb);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.#dialing) this.#open(chunk, cb);
    else this.#send(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const data = Buffer.concat(chunks.map((c) => c.chunk));
    this._write(data, 'binary', cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const end = (): void => {
      this.#conn!.socket.end(cb);
    };
    if (!this.#dialing) this.#open(undefined, (err) => (err ? cb(err) : end()));
    else end();
  }

  override _read(): void {
    this.#conn?.socket.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#abort.abort();
    this.#conn?.socket.destroy();
    cb(err);
  }
}
