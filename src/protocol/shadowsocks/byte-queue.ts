/**
 * A byte queue that hands out exact-length pieces, for the stream decoders. It keeps references
 * to the pushed buffers (no copy), so their memory must not be reused until taken.
 */
export class ByteQueue {
  #parts: Buffer[] = [];
  #len = 0;

  get length(): number {
    return this.#len;
  }

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#parts.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
    this.#len += data.length;
  }

  /** The next `n` bytes (n <= length): a view when one pushed buffer holds them, else a copy. */
  take(n: number): Buffer {
    const first = this.#parts[0];
    if (first !== undefined && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#parts.shift();
      else this.#parts[0] = first.subarray(n);
      this.#len -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const b = this.#parts[0]!;
      const k = Math.min(b.length, n - o);
      b.copy(out, o, 0, k);
      o += k;
      if (k === b.length) this.#parts.shift();
      else this.#parts[0] = b.subarray(k);
    }
    this.#len -= n;
    return out;
  }

  /** Everything still queued, in order, and the queue emptied. */
  drain(): Buffer[] {
    const parts = this.#parts;
    this.#parts = [];
    this.#len = 0;
    return parts;
  }
}
