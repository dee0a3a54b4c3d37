/**
 * D8 I/O: a Duplex that wraps a connected socket (or any Duplex) and re-frames the first TLS
 * record it is asked to write, a ClientHello, into several records (src/protocol/tls/fragment.ts),
 * optionally as separate TCP writes with a small delay between them. Everything after the
 * ClientHello, and everything read, passes through untouched. Use it under Node's own TLS client:
 *
 *   const raw = await connectTcp(host, 443);
 *   const tlsSock = tls.connect({ socket: fragmentingSocket(raw, { delayMs: 10 }), servername: host });
 *
 * If the first bytes are not a parsable ClientHello the wrapper passes them through unchanged
 * (it never breaks a connection it does not understand) and reports fragmented: false.
 */
import { Duplex } from 'node:stream';
import { ProtocolError } from '../protocol/errors.js';
import { readRecordHeader, RECORD_HEADER, CONTENT_HANDSHAKE } from '../protocol/tls/clienthello.js';
import { fragmentClientHello, planSegments, type SegmentMode, type SplitStrategy } from '../protocol/tls/fragment.js';
import { systemClock, type Clock } from '../shared/clock.js';

export interface TlsFragmentOptions {
  /** Where to cut the ClientHello (default 'name-middle'). */
  strategy?: SplitStrategy;
  /** Extra random record cuts (default 0). */
  extraCuts?: number;
  /** How the records map to TCP writes (default 'per-record'). */
  segments?: SegmentMode;
  /** Pause between TCP writes in ms (default 0: writes are still separate calls, Nagle off). */
  delayMs?: number;
  clock?: Clock;
  /** Told what was done to the first record (for logs/metrics; carries no names). */
  onHello?: (info: { fragmented: boolean; records: number; writes: number }) => void;
}

/** Largest first record we wait for before giving up and passing through. */
const MAX_HELLO_RECORD = RECORD_HEADER + 0x4000;

export class FragmentingSocket extends Duplex {
  readonly #inner: Duplex;
  readonly #opts: TlsFragmentOptions;
  readonly #clock: Clock;
  #hello = true;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #readEnded = false;

  constructor(inner: Duplex, opts: TlsFragmentOptions = {}) {
    super({ allowHalfOpen: true });
    this.#inner = inner;
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    inner.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.#endRead());
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => {
      this.#endRead();
      if (!this.destroyed && !this.writableFinished) this.destroy();
    });
  }

  #endRead(): void {
    if (this.#readEnded) return;
    this.#readEnded = true;
    this.push(null);
  }

  override _read(): void {
    this.#inner.resume();
  }

  #writeInner(buf: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#inner.destroyed) {
        reject(new Error('socket closed'));
        return;
      }
      if (this.#inner.write(buf)) resolve();
      else this.#inner.once('drain', resolve);
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#clock.setTimeout(resolve, ms));
  }

  async #sendHello(all: Buffer, recordEnd: number): Promise<void> {
    const first = all.subarray(0, recordEnd);
    const rest = all.subarray(recordEnd);
    let records: Buffer[];
    let fragmented = true;
    try {
      records = fragmentClientHello(first, {
        ...(this.#opts.strategy ? { strategy: this.#opts.strategy } : {}),
        ...(this.#opts.extraCuts ? { extraCuts: this.#opts.extraCuts } : {}),
      }).records;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      records = [first];
      fragmented = false;
    }
    const wire = Buffer.concat(records);
    const sizes = fragmented ? planSegments(records.map((r) => r.length), this.#opts.segments ?? 'per-record') : [wire.length];
    this.#opts.onHello?.({ fragmented, records: records.length, writes: sizes.length });
    let o = 0;
    for (let i = 0; i < sizes.length; i++) {
      if (i > 0 && (this.#opts.delayMs ?? 0) > 0) await this.#sleep(this.#opts.delayMs!);
      await this.#writeInner(wire.subarray(o, o + sizes[i]!));
      o += sizes[i]!;
    }
    if (rest.length > 0) await this.#writeInner(rest);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.#hello) {
      if (this.#inner.write(chunk)) cb();
      else this.#inner.once('drain', () => cb());
      return;
    }
    this.#pending.push(chunk);
    this.#pendingLen += chunk.length;
    const all = Buffer.concat(this.#pending, this.#pendingLen);
    const h = readRecordHeader(all);
    if (!h) {
      cb();
      return;
    }
    const recordEnd = RECORD_HEADER + h.length;
    const notHello = h.type !== CONTENT_HANDSHAKE || recordEnd > MAX_HELLO_RECORD;
    if (!notHello && all.length < recordEnd) {
      cb();
      return;
    }
    this.#hello = false;
    this.#pending = [];
    this.#pendingLen = 0;
    if (notHello) {
      this.#opts.onHello?.({ fragmented: false, records: 1, writes: 1 });
      if (this.#inner.write(all)) cb();
      else this.#inner.once('drain', () => cb());
      return;
    }
    this.#sendHello(all, recordEnd).then(
      () => cb(),
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    // Flush a partial record we were still waiting on (the peer will judge it).
    if (this.#pendingLen > 0) {
      this.#inner.write(Buffer.concat(this.#pending, this.#pendingLen));
      this.#pending = [];
      this.#pendingLen = 0;
    }
    this.#inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#inner.destroy();
    cb(err);
  }
}

/** Wrap `inner` so the first ClientHello written through it is fragmented. */
export function fragmentingSocket(inner: Duplex, opts: TlsFragmentOptions = {}): FragmentingSocket {
  return new FragmentingSocket(inner, opts);
}
