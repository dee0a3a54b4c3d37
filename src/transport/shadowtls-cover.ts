/**
 * D14 for ShadowTLS v3, client side (docs/glossary.md D14; the censor it is aimed at is C8, the
 * encapsulated-TLS classifier, src/lab/c8-tls-in-tls.ts).
 *
 * A ShadowTLS v3 data record carries bytes of the Shadowsocks stream and nothing else: there is
 * no field a server would skip, so the client cannot pad without a server change. What it can
 * change alone is where the records are cut. Without this, each write of the tunnel (the inner
 * ClientHello with the Shadowsocks header, then the inner Finished, then the request) is one
 * record, so the inner handshake's sizes show one for one in the outer records. With it, the
 * first `bytes` of the stream are cut into records whose sizes are drawn from the sizes of a
 * browser's early HTTP/2 client records (control frames and the header blocks of later
 * requests: log-uniform over 40..240 bytes of payload), so no outer record has the size of the
 * inner ClientHello or Finished. Records of any size are what sing-box's and ihciah's servers
 * take (each is tagged and checked on its own), so it interoperates; it costs 9 bytes (header
 * and tag) per extra record, on the first few KB only.
 *
 * What it cannot hide: the total of the client's records between two server bursts (a classifier
 * that sums consecutive records still sees the inner ClientHello's size), and the server's
 * records, which the client does not write.
 */
import { randomInt } from 'node:crypto';

export interface ShadowTlsCoverOptions {
  /** Cut the stream's first this many bytes (default 4096). 0 turns the cover off. */
  readonly bytes?: number;
  /** A record's payload size; default `earlyRecordSize`. */
  readonly size?: () => number;
}

export const COVER_BYTES = 4096;
export const COVER_MIN = 40;
export const COVER_MAX = 240;

/** Log-uniform over COVER_MIN..COVER_MAX: many small records, some header-block sized. */
export function earlyRecordSize(): number {
  const u = randomInt(0, 2 ** 32) / 2 ** 32;
  return Math.round(COVER_MIN * Math.pow(COVER_MAX / COVER_MIN, u));
}

/** Per connection: how each write is cut into records until the cover's bytes are spent. */
export class RecordCutter {
  #left: number;
  readonly #size: () => number;

  constructor(opts: ShadowTlsCoverOptions = {}) {
    this.#left = opts.bytes ?? COVER_BYTES;
    this.#size = opts.size ?? earlyRecordSize;
  }

  /** Payload sizes for a write of `n` bytes (summing to n), or undefined: one record as usual. */
  cut(n: number): number[] | undefined {
    if (this.#left <= 0 || n === 0) return undefined;
    const sizes: number[] = [];
    let rest = n;
    while (rest > 0 && this.#left > 0) {
      const s = Math.min(rest, Math.max(1, this.#size()));
      sizes.push(s);
      rest -= s;
      this.#left -= s;
    }
    if (rest > 0) sizes.push(rest);
    return sizes;
  }
}
