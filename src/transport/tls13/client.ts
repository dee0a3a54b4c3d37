/**
 * The TLS 1.3 client over any Duplex (a net.Socket): `runHandshake` drives handshake.ts's
 * ClientHandshake over the connection (with an optional per-record hook, which ShadowTLS uses to
 * undo its server's tags before the engine sees the records), and `connectTls13` returns the
 * established connection as a Duplex of application data (`Tls13Socket`).
 *
 * Node's own `tls` cannot be used where the ClientHello must be written by us (ShadowTLS v3's
 * session id is an HMAC over the hello) — hence this engine. What it does not do: session
 * resumption and 0-RTT, client certificates, renegotiation (absent from 1.3), record padding.
 * Post-handshake it takes NewSessionTicket (ignored) and KeyUpdate (answered), and sends a
 * KeyUpdate of its own before a key's record count nears the AEAD limits.
 */
import { Duplex } from 'node:stream';
import { ProtocolError } from '../../protocol/errors.js';
import { MAX_TLS13_CIPHERTEXT, RecordReader } from '../../protocol/shadowtls/record.js';
import { HANDSHAKE_KEY_UPDATE, HANDSHAKE_NEW_SESSION_TICKET } from '../../protocol/tls13/client-hello.js';
import {
  CONTENT_ALERT,
  CONTENT_APPLICATION_DATA,
  CONTENT_HANDSHAKE,
  MAX_PLAINTEXT,
  RecordProtection,
} from '../../protocol/tls13/key-schedule.js';
import { ALERT_NAMES, HandshakeReader, handshakeMessage } from '../../protocol/tls13/messages.js';
import { ClientHandshake, Tls13Error, type HandshakeResult, type Tls13ClientOptions } from './handshake.js';

export { Tls13Error, type Tls13ClientOptions, type HandshakeResult } from './handshake.js';

/**
 * Run `hs` over `conn` until the client Finished is written. `onRecord` sees each whole record
 * from the server first and returns what the engine gets (ShadowTLS: the record with its tag
 * removed and un-XORed). Resolves with the reader holding whatever arrived after the server's
 * Finished (read from first); the connection is left paused with no listeners of ours. Rejects
 * with a Tls13Error (after sending the matching alert) or the connection's error.
 */
export function runHandshake(
  conn: Duplex,
  hs: ClientHandshake,
  opts: { onRecord?: (record: Buffer) => Buffer; signal?: AbortSignal | undefined; timeoutMs?: number } = {},
): Promise<RecordReader> {
  const reader = new RecordReader(MAX_TLS13_CIPHERTEXT + 5);
  return new Promise((resolve, reject) => {
    let settled = false;
    let first = true;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.off('readable', onReadable);
      conn.off('error', onError);
      conn.off('end', onEnd);
      conn.off('close', onEnd);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) {
        if (err instanceof Tls13Error && !err.received && conn.writable) conn.end(hs.alertRecord(err.alert));
        reject(err);
      } else resolve(reader);
    };
    const onReadable = (): void => {
      for (let chunk = conn.read() as Buffer | null; chunk !== null; chunk = conn.read() as Buffer | null) {
        // A first byte that starts no TLS record (an HTTP answer, an SSH banner): say so, rather
        // than what its bytes would mean as a record header.
        if (first && chunk.length > 0 && (chunk[0]! < 20 || chunk[0]! > 23)) {
          finish(new ProtocolError('ERR_TLS', 'the server did not answer with TLS'));
          return;
        }
        first = false;
        reader.push(chunk);
        try {
          while (!hs.done) {
            const rec = reader.next();
            if (!rec) break;
            const out = hs.receive(opts.onRecord ? opts.onRecord(rec) : rec);
            if (out.length > 0) conn.write(out.length === 1 ? out[0] : Buffer.concat(out));
          }
        } catch (err) {
          finish(
            err instanceof ProtocolError && !(err instanceof Tls13Error)
              ? new Tls13Error(err.message, 50)
              : (err as Error),
          );
          return;
        }
        if (hs.done) {
          finish();
          return;
        }
      }
    };
    const onError = (err: Error): void => finish(err);
    const onEnd = (): void =>
      finish(new ProtocolError('ERR_TLS', 'the server closed the connection during the TLS handshake'));
    const onAbort = (): void => finish(new ProtocolError('ERR_TLS', 'TLS handshake aborted'));
    const timer = setTimeout(
      () =>
        finish(new ProtocolError('ERR_TLS', `TLS handshake timed out after ${opts.timeoutMs ?? 10_000} ms`)),
      opts.timeoutMs ?? 10_000,
    );
    timer.unref();
    conn.on('readable', onReadable);
    conn.on('error', onError);
    conn.on('end', onEnd);
    conn.on('close', onEnd);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    conn.write(hs.start());
  });
}

/** Records under one key before we move to the next (AES-GCM's limit is 2^24.5, §5.5). */
const KEY_UPDATE_AFTER = 1 << 24;

/**
 * An established TLS 1.3 connection as a Duplex of application data. end() sends close_notify
 * and ends the connection's write side; the server's close_notify (or FIN) ends the readable side.
 */
export class Tls13Socket extends Duplex {
  readonly alpnProtocol: string | undefined;
  readonly cipherSuite: string;
  /** The server sent a HelloRetryRequest (asked for another group) before its ServerHello. */
  readonly helloRetried: boolean;
  readonly #conn: Duplex;
  readonly #reader: RecordReader;
  readonly #hs: HandshakeResult;
  readonly #messages = new HandshakeReader();
  #readSecret: Buffer;
  #writeSecret: Buffer;
  #read: RecordProtection;
  #write: RecordProtection;
  #written = 0;
  #readEnded = false;

  constructor(conn: Duplex, reader: RecordReader, hs: HandshakeResult) {
    super({ allowHalfOpen: true });
    this.#conn = conn;
    this.#reader = reader;
    this.#hs = hs;
    this.alpnProtocol = hs.alpn;
    this.cipherSuite = hs.suite.name;
    this.helloRetried = hs.helloRetried;
    this.#readSecret = hs.serverSecret;
    this.#writeSecret = hs.clientSecret;
    this.#read = new RecordProtection(hs.suite, hs.serverSecret);
    this.#write = new RecordProtection(hs.suite, hs.clientSecret);
    conn.on('data', (c: Buffer) => this.#onData(c));
    conn.on('end', () => this.#endRead());
    conn.on('error', (err) => this.destroy(err));
    conn.on('close', () => {
      this.#endRead();
      if (!this.writableFinished) this.destroy();
    });
    if (reader.pending > 0) queueMicrotask(() => this.#onData(Buffer.alloc(0)));
  }

  #endRead(): void {
    if (this.#readEnded) return;
    this.#readEnded = true;
    this.push(null);
  }

  #fail(err: Error, alert: number): void {
    try {
      if (this.#conn.writable) this.#conn.end(this.#write.seal(CONTENT_ALERT, Buffer.of(2, alert)));
    } catch {
      // the connection is going anyway
    }
    this.destroy(err);
  }

  #onData(chunk: Buffer): void {
    if (this.destroyed) return;
    this.#reader.push(chunk);
    let more = true;
    try {
      for (let rec = this.#reader.next(); rec; rec = this.#reader.next()) {
        if (rec[0] !== CONTENT_APPLICATION_DATA) {
          // A plaintext alert after the handshake (some servers send one on a protocol error).
          if (rec[0] === CONTENT_ALERT)
            throw new Tls13Error(`the server sent ${ALERT_NAMES[rec[6] ?? -1] ?? 'an alert'}`, 0, true);
          throw new Tls13Error(`unexpected record type ${rec[0]} after the handshake`, 10);
        }
        const { type, content } = this.#read.open(rec);
        if (this.#readEnded) throw new Tls13Error('data after close_notify', 10);
        if (type === CONTENT_APPLICATION_DATA) {
          if (content.length > 0) more = this.push(content);
        } else if (type === CONTENT_HANDSHAKE) this.#postHandshake(content);
        else if (type === CONTENT_ALERT) {
          if (content[1] === 0) this.#endRead();
          else
            throw new Tls13Error(`the server sent ${ALERT_NAMES[content[1] ?? -1] ?? 'an alert'}`, 0, true);
        } else throw new Tls13Error(`unexpected record type ${type}`, 10);
      }
    } catch (err) {
      const e = err as Error;
      if (e instanceof Tls13Error && e.received) this.destroy(e);
      else this.#fail(e, e instanceof Tls13Error ? e.alert : 20);
      return;
    }
    if (!more) this.#conn.pause();
  }

  #postHandshake(content: Buffer): void {
    this.#messages.push(content);
    for (let m = this.#messages.next(); m; m = this.#messages.next()) {
      if (m.type === HANDSHAKE_NEW_SESSION_TICKET) continue; // no resumption
      if (m.type !== HANDSHAKE_KEY_UPDATE || m.body.length !== 1 || m.body[0]! > 1)
        throw new Tls13Error(`unexpected handshake message ${m.type} after the handshake`, 10);
      if (this.#messages.pending > 0) throw new Tls13Error('KeyUpdate not at the end of its record', 10);
      this.#readSecret = this.#hs.schedule.nextSecret(this.#readSecret);
      this.#read = new RecordProtection(this.#hs.suite, this.#readSecret);
      if (m.body[0] === 1) this.#conn.write(this.#updateWriteKey());
    }
  }

  /** Our KeyUpdate (update_not_requested) under the current key, then the next key. */
  #updateWriteKey(): Buffer {
    const rec = this.#write.seal(CONTENT_HANDSHAKE, handshakeMessage(HANDSHAKE_KEY_UPDATE, Buffer.of(0)));
    this.#writeSecret = this.#hs.schedule.nextSecret(this.#writeSecret);
    this.#write = new RecordProtection(this.#hs.suite, this.#writeSecret);
    this.#written = 0;
    return rec;
  }

  /** Application data as records (≤ 2^14 bytes each); one buffer. */
  #seal(data: Buffer): Buffer {
    const out: Buffer[] = [];
    for (let o = 0; o < data.length; o += MAX_PLAINTEXT) {
      if (++this.#written > KEY_UPDATE_AFTER) out.push(this.#updateWriteKey());
      out.push(this.#write.seal(CONTENT_APPLICATION_DATA, data.subarray(o, o + MAX_PLAINTEXT)));
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#conn.write(this.#seal(chunk), cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.#conn.write(this.#seal(Buffer.concat(chunks.map((c) => c.chunk))), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#conn.end(this.#write.seal(CONTENT_ALERT, Buffer.of(1, 0)), () => cb());
  }

  override _read(): void {
    this.#conn.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#conn.destroy();
    cb(err);
  }
}

/**
 * TLS 1.3 over `conn` (connected, or connecting: writes queue): the handshake, then the
 * application-data stream. Rejects with a one-line Tls13Error (a TLS 1.2-only server, a bad
 * certificate, an alert) or the connection's error; the connection is then ended.
 */
export async function connectTls13(
  conn: Duplex,
  opts: Tls13ClientOptions & { signal?: AbortSignal | undefined; timeoutMs?: number },
): Promise<Tls13Socket> {
  const hs = new ClientHandshake(opts);
  let reader: RecordReader;
  try {
    reader = await runHandshake(conn, hs, opts);
  } catch (err) {
    conn.destroy();
    throw err;
  }
  return new Tls13Socket(conn, reader, hs.result());
}
