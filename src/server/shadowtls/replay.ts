/**
 * A ShadowTLS v3 ClientHello carries no time, so nothing stops a censor from sending a genuine
 * client's hello again (the IMC'20 prober replays what it saw, within a second to hours). The
 * tag verifies, and the handshake site's records would come back tagged: each application-data
 * record 4 bytes longer than the site sends for the same hello directly — proof of ShadowTLS
 * from one recorded hello. A hello seen before is therefore handled as one with a wrong tag
 * (relayed to the site, which answers it as it would directly).
 *
 * Without a time in the hello this can only cover a window: the session ids of at least the last
 * hour (two generations of one hour each), at most 2 × MAX_PER_GENERATION of them (a few MB at
 * the most; a busier port keeps a shorter window), forgotten at a restart. Only
 * hellos whose tag verified are kept, so a prober cannot fill it.
 */
import { SESSION_ID_LENGTH_OFFSET } from '../../protocol/shadowtls/index.js';

const WINDOW_MS = 60 * 60_000;
const MAX_PER_GENERATION = 32_768;
/** Bytes of the session id's random part kept per hello (collisions of 2^-128 apart). */
const KEY_BYTES = 16;

export class SeenHellos {
  #current = new Set<string>();
  #previous = new Set<string>();
  #since: number;

  constructor(
    private readonly windowMs = WINDOW_MS,
    private readonly maxPerGeneration = MAX_PER_GENERATION,
    now = Date.now(),
  ) {
    this.#since = now;
  }

  /** Whether this verified ClientHello record (header included) came before; it is kept either way. */
  replayed(record: Uint8Array, now = Date.now()): boolean {
    if (now - this.#since >= this.windowMs || this.#current.size >= this.maxPerGeneration) {
      this.#previous = this.#current;
      this.#current = new Set();
      this.#since = now;
    }
    const at = 5 + SESSION_ID_LENGTH_OFFSET + 1;
    const key = Buffer.from(record.buffer, record.byteOffset + at, KEY_BYTES).toString('latin1');
    if (this.#current.has(key) || this.#previous.has(key)) return true;
    this.#current.add(key);
    return false;
  }
}
