/**
 * The gRPC ("gun") transport's bytes, as Xray, v2ray v5 and sing-box carry a proxy stream over
 * HTTP/2 (`network: grpc`): one POST to `/<serviceName>/Tun` with `content-type:
 * application/grpc`, whose request body and response body are each a sequence of gRPC messages:
 *
 *   0x00                 compressed flag (never set)
 *   u32 big-endian       length of the message
 *   message              protobuf `Hunk { bytes data = 1; }`: 0x0A, varint length, the bytes
 *
 * Every message carries one piece of the tunnelled stream, in order. Xray's `multiMode`
 * (`/<serviceName>/TunMulti`) sends `MultiHunk { repeated bytes data = 1; }`: the same field
 * number, so one decoder reads both (a Hunk with field 1 repeated is a MultiHunk), and a
 * MultiHunk with one entry has the bytes of a Hunk. The server answers 200 with
 * `content-type: application/grpc` and ends with trailers `grpc-status: 0`; a client's half-close
 * is END_STREAM on its last DATA frame.
 *
 * No Debian package speaks this for Shadowsocks (Debian's v2ray is 4.34; gRPC came in 4.36), so
 * the wire is checked against the bytes above (test/transport/grpc-frame.test.ts) and Ladder's own
 * two ends.
 */
import { constants as h2constants, type Http2Stream } from 'node:http2';
import { Duplex } from 'node:stream';

/** The largest gRPC message accepted (grpc-go's default receive limit). */
/**
 * Each gRPC tunnel stream's receive window, both ends (the client's SETTINGS; the server's once
 * a session carries a tunnel, ../server/web/h2.ts): Node's and nginx's 64 KiB let a call move 64
 * KiB per round trip whatever the link (1 MiB/s at 50 ms: bench/web.ts --grpc --delay-ms 25);
 * grpc-go grows its windows to 16 MiB by its BDP estimate. A peer applies a new value to open
 * streams too.
 */
export const GRPC_STREAM_WINDOW = 4 * 1024 * 1024;

export const MAX_GRPC_MESSAGE = 4 * 1024 * 1024;

/** The most data one Hunk we send carries (a larger write is split). */
export const MAX_HUNK = 64 * 1024;

/** Field bytes shorter than this are joined with their neighbours before they are handed out. */
const SMALL_PIECE = 1024;

export class GrpcFrameError extends Error {
  readonly code = 'ERR_GRPC_FRAME';
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/**
 * One gRPC message carrying `data` as a Hunk (the whole frame: prefix, tag, length, bytes), in
 * one buffer (one HTTP/2 write).
 */
export function encodeHunk(data: Uint8Array): Buffer {
  const vs = varintSize(data.length);
  const msgLen = 1 + vs + data.length;
  const out = Buffer.allocUnsafe(5 + msgLen);
  out[0] = 0;
  out.writeUInt32BE(msgLen, 1);
  out[5] = 0x0a; // field 1, wire type 2 (length-delimited)
  let n = data.length;
  let i = 6;
  while (n >= 0x80) {
    out[i++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[i++] = n;
  out.set(data, i);
  return out;
}

/** Read a varint at `i` (at most 5 bytes: every length here is below 2^32); [value, next index]. */
function readVarint(b: Buffer, i: number): [number, number] {
  let value = 0;
  let mul = 1;
  for (let k = 0; k < 5; k++) {
    if (i >= b.length) throw new GrpcFrameError('gRPC message: truncated varint');
    const byte = b[i++]!;
    value += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return [value, i];
    mul *= 128;
  }
  throw new GrpcFrameError('gRPC message: varint too long');
}

/** The field-1 byte strings of one Hunk or MultiHunk message, in order; other fields skipped. */
export function decodeHunk(msg: Buffer, emit: (data: Buffer) => void): void {
  let i = 0;
  while (i < msg.length) {
    let tag: number;
    [tag, i] = readVarint(msg, i);
    const wire = tag & 7;
    if (wire === 0) {
      [, i] = readVarint(msg, i);
    } else if (wire === 1 || wire === 5) {
      i += wire === 1 ? 8 : 4;
    } else if (wire === 2) {
      let len: number;
      [len, i] = readVarint(msg, i);
      if (i + len > msg.length) throw new GrpcFrameError('gRPC message: field longer than its message');
      if (tag >>> 3 === 1 && len > 0) emit(msg.subarray(i, i + len));
      i += len;
    } else {
      throw new GrpcFrameError(`gRPC message: unknown protobuf wire type ${wire}`);
    }
    if (i > msg.length) throw new GrpcFrameError('gRPC message: field longer than its message');
  }
}

/**
 * Splits an HTTP/2 body into gRPC messages and hands out their Hunk bytes as they arrive:
 * subarrays of the DATA buffers, a field's bytes in as many pieces as the body came in. Nothing
 * of a message is held back until it is complete (a peer announcing a 4 MiB message and sending
 * it slowly, on each of 128 calls of a connection, would otherwise park 512 MiB here, outside the
 * stream's back-pressure); only a prefix or a field header split between DATA frames (at most
 * 10 bytes) waits for the rest.
 */
export class HunkDecoder {
  /** A prefix or field header begun in an earlier chunk. */
  #carry: Buffer | undefined;
  /** Bytes of the current message not yet read (0: the next byte starts a prefix). */
  #msgLeft = 0;
  /** Bytes of the current field's value not yet read, and whether they are handed out. */
  #fieldLeft = 0;
  #fieldData = false;

  /** Bytes of an unfinished message (non-zero at END_STREAM means a truncated body). */
  get pending(): number {
    return this.#msgLeft + (this.#carry?.length ?? 0);
  }

  push(chunk: Buffer, emit: (data: Buffer) => void): void {
    if (this.#carry) {
      chunk = Buffer.concat([this.#carry, chunk]);
      this.#carry = undefined;
    }
    // Pieces under SMALL_PIECE are handed out joined (one copy): a MultiHunk of one-byte fields
    // would otherwise put a Buffer object per byte into the stream's queue.
    let small: Buffer[] = [];
    let smallLen = 0;
    const flush = (): void => {
      if (small.length > 0) emit(small.length === 1 ? small[0]! : Buffer.concat(small, smallLen));
      small = [];
      smallLen = 0;
    };
    let off = 0;
    while (off < chunk.length) {
      if (this.#fieldLeft > 0) {
        const n = Math.min(this.#fieldLeft, chunk.length - off);
        if (this.#fieldData && n < SMALL_PIECE) {
          small.push(chunk.subarray(off, off + n));
          if ((smallLen += n) >= MAX_HUNK) flush();
        } else if (this.#fieldData) {
          flush();
          emit(chunk.subarray(off, off + n));
        }
        off += n;
        this.#fieldLeft -= n;
        this.#msgLeft -= n;
      } else if (this.#msgLeft === 0) {
        if (chunk.length - off < 5) {
          this.#carry = chunk.subarray(off);
          break;
        }
        if (chunk[off] !== 0) throw new GrpcFrameError('gRPC message: compressed or unknown flag');
        const len = chunk.readUInt32BE(off + 1);
        if (len > MAX_GRPC_MESSAGE) throw new GrpcFrameError(`gRPC message of ${len} bytes: over the limit`);
        this.#msgLeft = len;
        off += 5;
      } else {
        const end = Math.min(chunk.length, off + this.#msgLeft);
        const next = this.#fieldHeader(chunk, off, end);
        if (next === undefined) {
          if (end - off >= this.#msgLeft) throw new GrpcFrameError('gRPC message: truncated varint');
          this.#carry = chunk.subarray(off);
          break;
        }
        this.#msgLeft -= next - off;
        off = next;
        if (this.#fieldLeft > this.#msgLeft)
          throw new GrpcFrameError('gRPC message: field longer than its message');
      }
    }
    flush();
  }

  /** Read one field's header in [i, end): sets the field's value length; undefined when cut short. */
  #fieldHeader(b: Buffer, i: number, end: number): number | undefined {
    const tag = varintIn(b, i, end);
    if (tag === undefined) return undefined;
    const wire = tag[0] & 7;
    i = tag[1];
    if (wire === 0) {
      const v = varintIn(b, i, end);
      if (v === undefined) return undefined;
      this.#fieldLeft = 0;
      return v[1];
    }
    if (wire === 1 || wire === 5) {
      this.#fieldLeft = wire === 1 ? 8 : 4;
      this.#fieldData = false;
      return i;
    }
    if (wire !== 2) throw new GrpcFrameError(`gRPC message: unknown protobuf wire type ${wire}`);
    const len = varintIn(b, i, end);
    if (len === undefined) return undefined;
    this.#fieldLeft = len[0];
    this.#fieldData = tag[0] >>> 3 === 1;
    return len[1];
  }
}

/** readVarint within [i, end): undefined when the bytes end inside it. */
function varintIn(b: Buffer, i: number, end: number): [number, number] | undefined {
  try {
    return readVarint(b.subarray(0, end), i);
  } catch (err) {
    if (err instanceof GrpcFrameError && err.message.endsWith('truncated varint')) return undefined;
    throw err;
  }
}

/**
 * A Shadowsocks byte stream over one gRPC Tun call (either end): reads decode the peer's Hunks,
 * each write is one Hunk, end() half-closes (the server's end sends its trailers: the caller
 * responded with them pending). Destroying it resets the HTTP/2 stream (CANCEL).
 */
export class GrpcStream extends Duplex {
  readonly #h2: Http2Stream;
  readonly #decoder = new HunkDecoder();
  #remoteEnded = false;
  readonly #emit = (data: Buffer): void => {
    this.moved += data.length;
    if (!this.push(data)) this.#h2.pause();
  };
  /** Payload bytes read and written so far (the client's pool keeps new calls off bulk ones). */
  moved = 0;

  /** The server's end: our half-close is the trailers its response holds (sent on 'wantTrailers'). */
  readonly #trailers: boolean;
  /** Bad framing is handed on as bytes (the server's end) instead of failing the stream. */
  readonly #framingAsBytes: boolean;
  /** The framing broke: the rest of the body is handed on undecoded. */
  #undecoded = false;

  /**
   * `opts.trailers`: the server's end of a call answered with trailers pending
   * (../server/web/grpc.ts). `opts.framingAsBytes`: a body that stops being valid gRPC framing
   * (a compressed or unknown flag, a message over 4 MiB, a protobuf field that does not fit, a
   * body ending inside a message) is not an error: from the chunk that broke it on, the body's
   * bytes are handed on as they came, and its end is an end — so the Shadowsocks server reacts to
   * them as to any other bytes that are not a valid request (research D6: one reaction for every
   * failure), where the stream used to be reset at once (RST_STREAM CANCEL, no trailers: a reaction
   * of its own, and not what grpc-go does, which ends a call with a status in trailers).
   */
  constructor(h2: Http2Stream, opts: { trailers?: boolean; framingAsBytes?: boolean } = {}) {
    super({ allowHalfOpen: true });
    this.#h2 = h2;
    this.#trailers = opts.trailers === true;
    this.#framingAsBytes = opts.framingAsBytes === true;
    h2.on('data', (chunk: Buffer) => {
      if (this.#undecoded) return this.#emit(chunk);
      try {
        this.#decoder.push(chunk, this.#emit);
      } catch (err) {
        if (!this.#framingAsBytes || !(err instanceof GrpcFrameError)) return void this.destroy(err as Error);
        this.#undecoded = true;
        this.#emit(chunk);
      }
    });
    h2.once('end', () => {
      this.#remoteEnded = true;
      if (this.#decoder.pending > 0 && !this.#undecoded && !this.#framingAsBytes)
        this.destroy(new GrpcFrameError('gRPC body ended inside a message'));
      else this.push(null);
    });
    h2.on('error', (err: Error) => this.destroy(err));
    // The client's end: a call the server ended has trailers (ours, grpc-go's, nginx passes them on).
    let trailersSeen = this.#trailers;
    if (!this.#trailers) h2.once('trailers', () => (trailersSeen = true));
    h2.once('close', () => {
      if (this.destroyed) return;
      // A destroyed HTTP/2 connection (keepalive found it dead, a socket error) ends its calls
      // with an 'end' of Node's making and code 0, aborted: a reset, not the server's end.
      const clean =
        this.#remoteEnded &&
        (h2.rstCode ?? 0) === h2constants.NGHTTP2_NO_ERROR &&
        (trailersSeen || !h2.aborted);
      if (!clean) return void this.destroy(new Error(`gRPC stream reset (HTTP/2 code ${h2.rstCode ?? 0})`));
      if (this.writableFinished) return; // autoDestroy once the reader has taken the end
      // The peer finished both ways (grpc-go resets with NO_ERROR after its trailers): nothing
      // more can be sent; what was read is still delivered.
      if (this.readableEnded) this.destroy();
      else this.once('end', () => this.destroy());
    });
  }

  /** The HTTP/2 stream underneath. */
  get http2Stream(): Http2Stream {
    return this.#h2;
  }

  override _read(): void {
    if (this.#h2.isPaused()) this.#h2.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (chunk.length === 0) return cb();
    if (this.#h2.destroyed) return cb(new Error('gRPC stream closed'));
    this.moved += chunk.length;
    // A big write goes as several Hunks: receivers cap a message (grpc-go at 4 MiB).
    let off = 0;
    while (chunk.length - off > MAX_HUNK) {
      this.#h2.write(encodeHunk(chunk.subarray(off, off + MAX_HUNK)));
      off += MAX_HUNK;
    }
    this.#h2.write(encodeHunk(off === 0 ? chunk : chunk.subarray(off)), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const h2 = this.#h2;
    if (h2.destroyed || h2.closed) return cb();
    // Finished once the half-close has been handed to nghttp2 (END_STREAM, or the trailers after
    // the last DATA): `end(() => destroy())` (the pre-relay deadline, a failed dial) then sends the
    // trailers before its reset, where it sent only RST_STREAM CANCEL.
    // (setImmediate: after Node's session has written what sendTrailers submitted, which a reset
    // submitted in the same turn discards.)
    if (this.#trailers) h2.once('wantTrailers', () => setImmediate(cb));
    h2.end(this.#trailers ? undefined : () => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Both sides ended: the HTTP/2 stream closes by itself (after the server's trailers).
    const done = err === null && this.#remoteEnded && this.writableEnded;
    if (!done && !this.#h2.destroyed && !this.#h2.closed) this.#h2.close(h2constants.NGHTTP2_CANCEL);
    cb(err);
  }
}
