import { ProtocolError } from '../errors.js';

/**
 * An exact, bounded-memory set of recently seen salts (SIP004 has no timestamps, so a salt
 * filter is the only replay defence it allows).
 *
 * Structure: two generations of exact Sets, each holding at most `capacity` salts. New salts go
 * into the current generation; when it is full it becomes the previous generation and the old
 * previous one is dropped whole.
 *
 * Guarantees (what the server documentation cites):
 * - No false positives: membership is exact (no Bloom filter), so an honest client is refused
 *   only if its random salt collides with one of at most 2*capacity stored salts, a probability
 *   below 2*capacity / 2^128 for 16-byte salts.
 * - Memory is bounded by 2 * capacity entries.
 * - The only error is forgetting: a salt is remembered for at least the next `capacity`
 *   insertions and never for more than the next 2 * capacity - 1 insertions. A replay of a
 *   connection older than that is not caught by this filter.
 *
 * Pure: no timers, no I/O. The caller decides when a salt counts as seen (after successful
 * authentication, so garbage cannot fill the filter and push real salts out).
 */
export class SaltFilter {
  readonly capacity: number;
  #current = new Set<string>();
  #previous = new Set<string>();
  #changes = 0;

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new ProtocolError(
        'ERR_CONFIG',
        `replay filter capacity must be a positive integer, got ${capacity}`,
      );
    }
    this.capacity = capacity;
  }

  static #key(salt: Uint8Array): string {
    // latin1 maps each byte to one char: an exact, compact (one-byte V8 string) key.
    return Buffer.from(salt.buffer, salt.byteOffset, salt.byteLength).toString('latin1');
  }

  /** True if this salt was added and not yet forgotten. */
  has(salt: Uint8Array): boolean {
    const k = SaltFilter.#key(salt);
    return this.#current.has(k) || this.#previous.has(k);
  }

  /** Record a salt (no-op if already present). */
  add(salt: Uint8Array): void {
    this.#addKey(SaltFilter.#key(salt));
  }

  /** Adds the key unless present; true when it was new. One key string, one pass. */
  #addKey(k: string): boolean {
    if (this.#current.has(k) || this.#previous.has(k)) return false;
    if (this.#current.size >= this.capacity) {
      this.#previous = this.#current;
      this.#current = new Set();
    }
    this.#current.add(k);
    this.#changes++;
    return true;
  }

  /** Increases whenever the contents change (lets a caller skip saving an unchanged filter). */
  get changes(): number {
    return this.#changes;
  }

  /** Record the salt and return true if it was new; return false (and change nothing) if seen. */
  checkAndAdd(salt: Uint8Array): boolean {
    return this.#addKey(SaltFilter.#key(salt));
  }

  /** Salts currently remembered (at most 2 * capacity). */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  clear(): void {
    this.#current.clear();
    this.#previous.clear();
    this.#changes++;
  }

  /**
   * Serialise the remembered salts, oldest first, so the filter can survive a restart:
   *   "LSF1" | u32 BE count | count x (u8 length | salt bytes)
   */
  serialize(): Buffer {
    const entries = [...this.#previous, ...this.#current];
    let size = 8;
    for (const e of entries) size += 1 + e.length;
    const out = Buffer.allocUnsafe(size);
    out.write(MAGIC, 0, 'latin1');
    out.writeUInt32BE(entries.length, 4);
    let o = 8;
    for (const e of entries) {
      out[o++] = e.length;
      o += out.write(e, o, 'latin1');
    }
    return out;
  }

  /**
   * Rebuild a filter from serialize() output, re-adding salts oldest first into a filter of
   * `capacity` (which may differ from the saved one: the newest salts are the ones kept).
   * Throws ERR_CONFIG on malformed input.
   */
  static deserialize(data: Uint8Array, capacity: number): SaltFilter {
    const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const bad = (why: string): ProtocolError => new ProtocolError('ERR_CONFIG', `replay state: ${why}`);
    if (b.length < 8 || b.toString('latin1', 0, 4) !== MAGIC) throw bad('not a salt filter snapshot');
    const count = b.readUInt32BE(4);
    const f = new SaltFilter(capacity);
    let o = 8;
    for (let i = 0; i < count; i++) {
      if (o >= b.length) throw bad('truncated');
      const len = b[o++]!;
      if (len === 0 || o + len > b.length) throw bad('truncated or empty entry');
      f.add(b.subarray(o, o + len));
      o += len;
    }
    if (o !== b.length) throw bad('trailing bytes');
    return f;
  }
}

const MAGIC = 'LSF1';

/** How long a server must remember SIP022 request salts (SIP022 §3.1.5). */
export const SALT_TTL_MS = 60_000;

/**
 * Exact set of request salts seen in the last 60 s (SIP022 §3.1.5: no Bloom filters, no false
 * positives). Pure: the caller passes the time. Entries are kept in insertion order and pruned
 * from the front; a clock that steps backwards only makes entries live longer.
 */
export class SaltWindow {
  readonly ttlMs: number;
  readonly #expiry = new Map<string, number>();

  constructor(ttlMs: number = SALT_TTL_MS) {
    this.ttlMs = ttlMs;
  }

  get size(): number {
    return this.#expiry.size;
  }

  prune(nowMs: number): void {
    for (const [k, exp] of this.#expiry) {
      if (exp > nowMs) break;
      this.#expiry.delete(k);
    }
  }

  has(salt: Uint8Array, nowMs: number): boolean {
    const exp = this.#expiry.get(Buffer.from(salt).toString('latin1'));
    return exp !== undefined && exp > nowMs;
  }

  /** Remember `salt`; false when it was already seen within the window (a replay). */
  add(salt: Uint8Array, nowMs: number): boolean {
    this.prune(nowMs);
    const k = Buffer.from(salt).toString('latin1');
    const exp = this.#expiry.get(k);
    if (exp !== undefined && exp > nowMs) return false;
    this.#expiry.delete(k); // re-insert at the back so insertion order stays expiry order
    this.#expiry.set(k, nowMs + this.ttlMs);
    return true;
  }

  /** Live entries as [salt hex, expiry ms], so a server can persist the set across a restart. */
  export(nowMs: number): Array<[string, number]> {
    this.prune(nowMs);
    return [...this.#expiry].map(([k, exp]) => [Buffer.from(k, 'latin1').toString('hex'), exp]);
  }

  /** Load entries produced by export(); expired ones are skipped. */
  import(entries: Iterable<readonly [string, number]>, nowMs: number): void {
    const live = [...entries].filter(([, exp]) => exp > nowMs).sort((a, b) => a[1] - b[1]);
    for (const [hex, exp] of live) {
      const k = Buffer.from(hex, 'hex').toString('latin1');
      if ((this.#expiry.get(k) ?? 0) < exp) {
        this.#expiry.delete(k);
        this.#expiry.set(k, exp);
      }
    }
  }
}
