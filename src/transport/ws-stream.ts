import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import WebSocket from 'ws';

/** Bytes ws may hold unsent before a write waits for the socket (per WebSocket). */
const DEFAULT_WRITE_HIGH_WATER = 256 * 1024;

/**
 * Messages up to this size leave as one socket write that we frame ourselves (see `framing`);
 * larger ones through ws, whose header-and-payload pair costs nothing next to their copy.
 */
const ONE_WRITE_MAX = 16 * 1024;

export interface WsStreamOptions {
  /** Readable-side buffer before the socket is paused (default 256 KiB). */
  readableHighWaterMark?: number;
  /** ws.bufferedAmount above which a write's callback waits for the socket (default 256 KiB). */
  writeHighWater?: number;
  /**
   * After end(), wait until our messages are on the wire and then this long before the close
   * frame (default 200 ms). v2ray (v2ray-plugin, v2ray's ws transport) reads a close frame as an
   * error and drops what it has not yet forwarded, so a close that follows the last message too
   * closely loses the end of a response.
   */
  closeDelayMs?: number;
  /**
   * Frame small binary messages ourselves, header and payload in one buffer and one socket
   * write: 'server' (unmasked) or 'zero-mask' (a client whose ws was opened with an all-zero
   * masking key, as ws-dialer.ts does inside TLS). ws itself writes the header and the payload as
   * two corked writes, which is a second pass through the socket's Writable, the writev path, and
   * (under TLS) a copy of both into one record anyway: measurable on short connections, where
   * every message is a few hundred bytes. Only for a WebSocket without extensions (no
   * compression: ws then never queues a message, so ours cannot overtake one of its own).
   * Default: every message through ws.send.
   */
  framing?: 'server' | 'zero-mask' | undefined;
}

/** What we read of ws's internals: whether the peer's close frame arrived / ours left. */
interface WsInternals {
  _closeFrameReceived: boolean;
  _closeFrameSent: boolean;
  /** The socket ws reads and writes (set once open). */
  _socket: Socket | null;
}

/**
 * A byte stream over an open WebSocket, in the dialect Outline and v2ray-plugin share: every
 * write leaves as one binary message, messages are concatenated on read (a message is an
 * arbitrary slice of the stream), a text message is an error.
 *
 * Half-close (Outline): end() sends a close frame with code 1000 once the writes before it are
 * out (and `closeDelayMs` later), and reading goes on until the peer's close. A close frame from the peer with code 1000
 * (or no code) ends the readable side while writing goes on; our close frame follows when we
 * end(). RFC 6455 and the ws library would answer the peer's close at once, which would cut off
 * what we still have to send, so the library's automatic answer is deferred until then. Any
 * other close code, a lost connection or an error destroys the stream.
 *
 * Back-pressure: the socket is paused while the readable side is full; a write's callback waits
 * for the socket while more than `writeHighWater` bytes are unsent.
 */
export class WsStream extends Duplex {
  readonly ws: WebSocket;
  readonly #writeHigh: number;
  readonly #closeDelayMs: number;
  readonly #wsClose: WebSocket['close'];
  /** The socket under the WebSocket, when we frame small messages ourselves. */
  readonly #direct: Socket | undefined;
  /** Header bytes of a short (<= 125) message: 2, plus 4 of (zero) masking key from a client. */
  readonly #maskLen: number;
  #peerEnded = false;
  #ourCloseSent = false;

  constructor(ws: WebSocket, opts: WsStreamOptions = {}) {
    super({ allowHalfOpen: true, readableHighWaterMark: opts.readableHighWaterMark ?? 256 * 1024 });
    if (ws.readyState !== WebSocket.OPEN) throw new Error('WsStream needs an open WebSocket');
    this.ws = ws;
    this.#writeHigh = opts.writeHighWater ?? DEFAULT_WRITE_HIGH_WATER;
    this.#closeDelayMs = opts.closeDelayMs ?? 200;
    ws.binaryType = 'nodebuffer';
    const internals = ws as unknown as WsInternals;
    this.#direct = opts.framing && ws.extensions === '' ? (internals._socket ?? undefined) : undefined;
    this.#maskLen = opts.framing === 'zero-mask' ? 4 : 0;
    this.#wsClose = ws.close.bind(ws);
    // The library calls close() itself when the peer's close frame arrives (to answer it).
    ws.close = (code?: number, data?: string | Buffer) => {
      if (internals._closeFrameReceived && !this.#peerEnded) {
        if (!this.#peerClosed(code ?? 1005)) return;
      }
      this.#wsClose(code, data);
    };
    // Text messages are bytes too (as in v2ray's reader): refusing them would make the reaction
    // to a prober depend on the frame type, where every other input gets the same one (D6).
    ws.on('message', (data: Buffer) => {
      if (this.destroyed || this.#peerEnded) return;
      if (data.length > 0 && !this.push(data)) ws.pause();
    });
    ws.on('error', (err) => this.destroy(err));
    ws.on('close', (code: number) => {
      if (this.destroyed) return;
      // Both directions done: autoDestroy closes the stream once the reader saw 'end'.
      if (this.#peerEnded && this.#ourCloseSent) return;
      this.destroy(new Error(`WebSocket closed (${code}) before the stream ended`));
    });
  }

  /**
   * The peer's close frame arrived: the end of its writing side (Outline's half-close), whatever
   * its code, so a prober's close code changes nothing in our reaction (D6). Returns whether the
   * library may answer now (false while we still write).
   */
  #peerClosed(_code: number): boolean {
    this.#peerEnded = true;
    this.push(null);
    return this.#ourCloseSent || this.destroyed;
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  #send(data: Buffer, cb: (err?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      cb(new Error('WebSocket is not open'));
      return;
    }
    let called = false;
    const done = (err?: Error | null): void => {
      if (called) return;
      called = true;
      cb(err);
    };
    const direct = this.#direct;
    if (direct && data.length <= ONE_WRITE_MAX) direct.write(this.#frame(data), (err) => done(err ?? null));
    else this.ws.send(data, { binary: true }, (err) => done(err ?? null));
    if (this.ws.bufferedAmount <= this.#writeHigh) done();
  }

  /** One final binary frame (RFC 6455 §5.2) around `data`, masked with a zero key from a client. */
  #frame(data: Buffer): Buffer {
    const n = data.length;
    const len = n > 125 ? 4 : 2;
    const head = len + this.#maskLen;
    const f = Buffer.allocUnsafe(head + n);
    f[0] = 0x82; // FIN, binary
    // Payload length (7 bits, or 126 and 16 bits); the mask bit from a client, with the key 0.
    f[1] = (n > 125 ? 126 : n) | (this.#maskLen > 0 ? 0x80 : 0);
    if (n > 125) f.writeUInt16BE(n, 2);
    if (this.#maskLen > 0) f.fill(0, len, head);
    data.copy(f, head);
    return f;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#send(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.#send(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#ourCloseSent = true;
    const ws = this.ws;
    const closeWhenFlushed = (): void => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (ws.bufferedAmount > 0) {
        setTimeout(closeWhenFlushed, 10);
        return;
      }
      if (this.#closeDelayMs <= 0) this.#wsClose(1000);
      else
        setTimeout(() => {
          if (ws.readyState === WebSocket.OPEN) this.#wsClose(1000);
        }, this.#closeDelayMs);
    };
    closeWhenFlushed();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CLOSING) {
      if (err || !this.#ourCloseSent) this.ws.terminate();
    }
    cb(err);
  }
}
