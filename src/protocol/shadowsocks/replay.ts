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

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new ProtocolError('ERR_CONFIG', `replay filter capacity must be a positive integer, got ${capacity}`);
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
    const k = SaltFilter.#key(salt);
    if (this.#current.has(k) || this.#previous.has(k)) return;
    if (this.#current.size >= this.capacity) {
      this.#previous = this.#current;
      this.#current = new Set();
    }
    this.#current.add(k);
  }

  /** Record the salt and return true if it was new; return false (and change nothing) if seen. */
  checkAndAdd(salt: Uint8Array): boolean {
    if (this.has(salt)) return false;
    this.add(salt);
    return true;
  }

  /** Salts currently remembered (at most 2 * capacity). */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  clear(): void {
    this.#current.clear();
    this.#previous.clear();
  }
}
