/**
 * Sliding-window replay filter for SIP022 UDP packet IDs (u64), in the manner of WireGuard and
 * RFC 6479: a ring of 32-bit blocks; IDs above the highest seen always pass, IDs older than the
 * window are refused, IDs inside it pass once. Pure, O(1) per packet.
 *
 * SIP022 §3.2.4: check() may run as soon as the separate header is decrypted, but accept() (which
 * updates the state) only after the whole packet has been authenticated and validated.
 */
export class PacketWindow {
  /** IDs at most this far below the highest accepted ID are still tracked. */
  readonly size: number;
  readonly #blocks: Uint32Array;
  readonly #nBlocks: bigint;
  #last = -1n;

  /** `bits` must be a power of two >= 64; the usable window is bits - 32. */
  constructor(bits = 2048) {
    if (!Number.isInteger(bits) || bits < 64 || (bits & (bits - 1)) !== 0) {
      throw new RangeError(`window size ${bits} must be a power of two >= 64`);
    }
    this.#blocks = new Uint32Array(bits / 32);
    this.#nBlocks = BigInt(bits / 32);
    this.size = bits - 32;
  }

  /** The highest accepted ID, or -1n before the first. */
  get last(): bigint {
    return this.#last;
  }

  #index(id: bigint): number {
    return Number((id >> 5n) % this.#nBlocks);
  }

  /** True when `id` is new and not too old; does not change the state. */
  check(id: bigint): boolean {
    if (id < 0n || id > 0xffff_ffff_ffff_ffffn) return false;
    if (id > this.#last) return true;
    if (this.#last - id >= BigInt(this.size)) return false;
    return (this.#blocks[this.#index(id)]! & (1 << Number(id & 31n))) === 0;
  }

  /** Check and remember `id`; false (and no change) when it is a repeat or too old. */
  accept(id: bigint): boolean {
    if (!this.check(id)) return false;
    if (id > this.#last) {
      const from = this.#last < 0n ? -1n : this.#last >> 5n;
      const diff = (id >> 5n) - from;
      const clear = diff >= this.#nBlocks || this.#last < 0n ? Number(this.#nBlocks) : Number(diff);
      let block = this.#last < 0n ? 0n : from + 1n;
      for (let i = 0; i < clear; i++, block++) this.#blocks[Number(block % this.#nBlocks)] = 0;
      this.#last = id;
    }
    this.#blocks[this.#index(id)]! |= 1 << Number(id & 31n);
    return true;
  }
}
