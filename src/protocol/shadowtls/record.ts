/**
 * TLS record splitting for ShadowTLS: bytes in (any split), whole records out, with a bound on
 * what one record may hold so a peer cannot make us buffer more than one record's worth.
 *
 * A record is returned with its 5-byte header (type, version, length), as both ShadowTLS
 * implementations pass whole frames around.
 */
import { ProtocolError } from '../errors.js';

export const RECORD_HEADER = 5;
export const TYPE_CHANGE_CIPHER_SPEC = 20;
export const TYPE_ALERT = 21;
export const TYPE_HANDSHAKE = 22;
export const TYPE_APPLICATION_DATA = 23;

/** RFC 8446 §5.2: a TLS 1.3 ciphertext record is at most 2^14 + 256 bytes. */
export const MAX_TLS13_CIPHERTEXT = 0x4000 + 256;
/** A u16 length: the most a record header can announce. */
export const MAX_RECORD_BODY = 0xffff;

export class RecordReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** `maxBody`: the largest record body accepted; a header announcing more is an ERR_TLS. */
  constructor(private readonly maxBody: number = MAX_RECORD_BODY) {}

  /** Bytes held and not yet returned as records. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole record, or undefined until more bytes come. Throws ERR_TLS on an oversize one. */
  next(): Buffer | undefined {
    if (this.buffered < RECORD_HEADER) return undefined;
    const head = this.peek(RECORD_HEADER);
    const length = (head[3]! << 8) | head[4]!;
    if (length > this.maxBody) {
      throw new ProtocolError(
        'ERR_TLS',
        `TLS record of ${length} bytes is above the ${this.maxBody}-byte limit`,
      );
    }
    const total = RECORD_HEADER + length;
    if (this.buffered < total) return undefined;
    return this.take(total);
  }

  /** Everything held, records or not (for handing a connection over to a plain relay). */
  drain(): Buffer {
    const out = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return out;
  }

  /** The first `n` held bytes without consuming them (n ≤ pending). */
  peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    // Kept joined: a record trickled in one byte at a time would otherwise be copied whole per byte.
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      this.buffered -= n;
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered -= n;
    return all.subarray(0, n);
  }
}
