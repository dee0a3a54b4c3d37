/**
 * The byte stream inside a switched ShadowTLS v3 connection, as a Duplex, for either side: reads
 * are the payloads of the peer's data records (verified by `opener`), writes go out as data
 * records tagged with `seal`. Server: opener HMAC_SR_C (as matchFirstData left it), seal
 * HMAC_SR_S. Client: opener HMAC_SR_S with HMAC_SR as its `ignore`, seal HMAC_SR_C (its first
 * write is the switching record). A record that fails its check is answered with an alert and the
 * connection closes; the peer's alert ends the stream. Half-close: end() sends a FIN.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import {
  RecordReader,
  closingAlert,
  sealData,
  type DataOpener,
  type RunningHmac,
} from '../protocol/shadowtls/index.js';

/** What the stream buffers to read before the socket is paused (as a WebSocket stream). */
const READABLE_HIGH_WATER = 256 * 1024;

export interface ShadowTlsStreamParts {
  /** The peer's bytes already read and not yet opened (whole records or a part of one). */
  readonly held?: Buffer | undefined;
  /** A payload already opened (the server's: the switching record's). */
  readonly first?: Buffer | undefined;
  readonly opener: DataOpener;
  readonly seal: RunningHmac;
  /** How writes are cut into records (the client's D14 cover, shadowtls-cover.ts); default one record per write. */
  readonly cut?: { cut(n: number): readonly number[] | undefined } | undefined;
}

export class ShadowTlsStream extends Duplex {
  readonly #socket: Socket;
  readonly #reader: RecordReader;
  readonly #opener: DataOpener;
  readonly #seal: RunningHmac;
  readonly #cut: ShadowTlsStreamParts['cut'];
  #ended = false;

  /** `socket`: no other 'data' listener may remain on it. */
  constructor(socket: Socket, parts: ShadowTlsStreamParts) {
    super({ allowHalfOpen: true, readableHighWaterMark: READABLE_HIGH_WATER });
    this.#socket = socket;
    this.#reader = new RecordReader();
    if (parts.held) this.#reader.push(parts.held);
    this.#opener = parts.opener;
    this.#seal = parts.seal;
    this.#cut = parts.cut;
    if (parts.first && parts.first.length > 0) this.push(parts.first);
    socket.on('data', (chunk: Buffer) => {
      this.#reader.push(chunk);
      this.#drainRecords();
    });
    socket.on('end', () => {
      if (this.#reader.pending > 0) this.destroy(new Error('ShadowTLS connection ended inside a record'));
      else this.#end();
    });
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    // Records that came with the first one.
    queueMicrotask(() => this.#drainRecords());
    socket.resume();
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.push(null);
  }

  #drainRecords(): void {
    if (this.destroyed || this.#ended) return;
    for (;;) {
      let record: Buffer | undefined;
      try {
        record = this.#reader.next();
      } catch {
        this.#fail();
        return;
      }
      if (!record) return;
      const r = this.#opener.open(record);
      if (r.kind === 'alert') {
        this.#end();
        return;
      }
      if (r.kind === 'ignored') continue;
      if (r.kind !== 'data') {
        this.#fail();
        return;
      }
      if (r.payload.length > 0 && !this.push(r.payload)) this.#socket.pause();
    }
  }

  /** A bad record: an alert (as both reference servers send), then close. */
  #fail(): void {
    const s = this.#socket;
    if (s.writable) s.end(closingAlert(randomBytes(26)));
    this.destroy(new Error('ShadowTLS record failed its check'));
  }

  override _read(): void {
    if (this.#socket.isPaused()) this.#socket.resume();
  }

  /** `data` as data records: one (≤ 16384 bytes each), or cut where `cut` says. */
  #records(data: Buffer): Buffer {
    const sizes = this.#cut?.cut(data.length);
    if (!sizes) return sealData(this.#seal, data);
    const out: Buffer[] = [];
    let o = 0;
    for (const n of sizes) {
      out.push(sealData(this.#seal, data.subarray(o, o + n)));
      o += n;
    }
    return Buffer.concat(out);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#socket.write(this.#records(chunk), cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    const all = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this.#socket.write(this.#records(all), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#socket.destroy();
    cb(err);
  }
}
