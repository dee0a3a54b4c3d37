/** sha256 helpers for byte-identity checks. */
import { createHash } from 'node:crypto';

export function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function sha256Hex(...parts: Uint8Array[]): string {
  return sha256(...parts).toString('hex');
}

/** An incremental hasher that also counts bytes. */
export class Sha256Counter {
  readonly #h = createHash('sha256');
  bytes = 0;
  update(b: Uint8Array): void {
    this.#h.update(b);
    this.bytes += b.length;
  }
  digest(): Buffer {
    return this.#h.digest();
  }
}
