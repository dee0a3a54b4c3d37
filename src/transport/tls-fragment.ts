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
 *
 * For the proxy path (the application does TLS itself and its ClientHello arrives as the dial's
 * first data), FragmentDialer is a Dialer that connects straight to the destination and writes
 * that first data fragmented:
 *
 *   const dialer = new FragmentDialer({ delayMs: 10 });   // Router route 'fragment'
 *   const conn = await dialer.dial(dest, clientHelloBytes);
 *
 * writeFragmented(socket, bytes, opts) is the shared core: bytes holding one whole ClientHello
 * record (plus anything after it) are written as several records / TCP writes.
 */
import { Duplex } from 'node:stream';
import { ProtocolError } from '../protocol/errors.js';
import { readRecordHeader, RECORD_HEADER, CONTENT_HANDSHAKE } from '../protocol/tls/clienthello.js';
import {
  fragmentClientHello,
  planSegments,
  type SegmentMode,
  type SplitStrategy,
} from '../protocol/tls/fragment.js';
import type { SocksAddress } from '../protocol/socks5/address.js';
import { systemClock, type Clock } from '../shared/clock.js';
import {
  awaitFirstData,
  connectTcp,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type DialedConnection,
  type Dialer,
  type FirstData,
} from './dialer.js';

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

export interface FragmentReport {
  fragmented: boolean;
  records: number;
  writes: number;
}

interface WritableLike {
  readonly destroyed: boolean;
  write(chunk: Buffer): boolean;
  once(event: 'drain', fn: () => void): unknown;
}

function writeOne(w: WritableLike, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (w.destroyed) {
      reject(new Error('socket closed'));
      return;
    }
    if (w.write(buf)) resolve();
    else w.once('drain', resolve);
  });
}

/**
 * Write `bytes` to `w`: when they start with one whole ClientHello record, that record goes out
 * re-framed per `opts` (several records, several writes, `delayMs` apart), then the rest; else
 * everything goes out unchanged in one write.
 */
export async function writeFragmented(
  w: WritableLike,
  bytes: Buffer,
  opts: TlsFragmentOptions = {},
): Promise<FragmentReport> {
  const h = readRecordHeader(bytes);
  const recordEnd = h ? RECORD_HEADER + h.length : 0;
  let records: Buffer[] | undefined;
  if (h && h.type === CONTENT_HANDSHAKE && bytes.length >= recordEnd) {
    try {
      records = fragmentClientHello(bytes.subarray(0, recordEnd), {
        ...(opts.strategy ? { strategy: opts.strategy } : {}),
        ...(opts.extraCuts ? { extraCuts: opts.extraCuts } : {}),
      }).records;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
    }
  }
  if (!records) {
    const report = { fragmented: false, records: 1, writes: 1 };
    opts.onHello?.(report);
    await writeOne(w, bytes);
    return report;
  }
  const wire = Buffer.concat(records);
  const sizes = planSegments(
    records.map((r) => r.length),
    opts.segments ?? 'per-record',
  );
  const report = { fragmented: true, records: records.length, writes: sizes.length };
  opts.onHello?.(report);
  const clock = opts.clock ?? systemClock;
  let o = 0;
  for (let i = 0; i < sizes.length; i++) {
    if (i > 0 && (opts.delayMs ?? 0) > 0) await new Promise<void>((r) => clock.setTimeout(r, opts.delayMs!));
    await writeOne(w, wire.subarray(o, o + sizes[i]!));
    o += sizes[i]!;
  }
  const rest = bytes.subarray(recordEnd);
  if (rest.length > 0) await writeOne(w, rest);
  return report;
}

/** Largest first record we wait for before giving up and passing through. */
const MAX_HELLO_RECORD = RECORD_HEADER + 0x4000;

export class FragmentingSocket extends Duplex {
  readonly #inner: Duplex;
  readonly #opts: TlsFragmentOptions;
  #hello = true;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #readEnded = false;

  constructor(inner: Duplex, opts: TlsFragmentOptions = {}) {
    super({ allowHalfOpen: true });
    this.#inner = inner;
    this.#opts = opts;
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
    writeFragmented(this.#inner, all, this.#opts).then(
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

export interface FragmentDialerOptions extends TlsFragmentOptions {
  connectTimeoutMs?: number;
}

/**
 * The 'fragment' route: a direct TCP connection whose first data (the application's ClientHello)
 * is written fragmented. Domains are resolved locally, as for a direct route. If the first data
 * is not one whole ClientHello record it is written unchanged (reported via onHello).
 */
export class FragmentDialer implements Dialer {
  readonly #opts: FragmentDialerOptions;

  constructor(opts: FragmentDialerOptions = {}) {
    this.#opts = opts;
  }

  async dial(dest: SocksAddress, firstData?: FirstData, signal?: AbortSignal): Promise<DialedConnection> {
    const socket = await connectTcp(dest.host, dest.port, {
      timeoutMs: this.#opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      signal,
    });
    try {
      const data = await awaitFirstData(socket, firstData, signal);
      if (data && data.length > 0)
        await writeFragmented(socket, Buffer.from(data.buffer, data.byteOffset, data.length), this.#opts);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    return { socket };
  }
}
