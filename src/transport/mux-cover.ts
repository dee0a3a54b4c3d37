/**
 * D14 cover on a Mux.Cool carrier (docs/glossary.md D14; the censor it is aimed at is C8, the
 * encapsulated-TLS classifier, src/lab/c8-tls-in-tls.ts):
 *
 * - padding: each of the first `records` writes of the carrier (one write = one WebSocket
 *   message = one outer TLS record) is padded up to a size drawn from a browsing-like
 *   distribution, by appending a KeepAlive frame whose data is random padding. Mux.Cool peers
 *   drop KeepAlive frames and their data (v2ray's mux worker discards it; so does ours), so
 *   v2ray-plugin, Clash/mihomo and sing-box servers still interoperate. The first write still
 *   starts with the New frame, which is how servers detect Mux.Cool.
 * - idle cover (off by default): a padded KeepAlive after a random idle gap, so a quiet carrier
 *   is not silent and the next inner handshake does not start a burst after a silence.
 *
 * Without Mux.Cool (Outline's raw dialect) there is nowhere to put padding that a peer of
 * another project would skip, so D14 needs mux.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { encodeMuxFrame, MUX_MAX_DATA, MuxStatus } from '../protocol/muxcool.js';

export interface MuxCoverOptions {
  /** Pad the first this many writes of a carrier (D14's K; default 8). 0 turns padding off. */
  records?: number;
  /** Padded size (bytes) for one record; default `browsingRecordSize`. */
  size?: () => number;
  /**
   * Idle cover: after a gap drawn from [min, max] ms without a write, send one padded KeepAlive
   * (default off). Each gap is drawn afresh; the timer does not keep the process alive.
   */
  idleMs?: readonly [number, number] | undefined;
}

/** The KeepAlive frame's own bytes: u16 meta length, 4 bytes of meta, u16 data length. */
export const KEEPALIVE_OVERHEAD = 8;

/**
 * A request-sized record of HTTP/1.1 browsing (what the outer connection should look like):
 * log-normal around 560 bytes (e^6.33), clamped to 240..1400. Not a narrow uniform range.
 */
export function browsingRecordSize(): number {
  // Box-Muller with crypto randomness; the clamp keeps it in the request-size range.
  const u = (randomInt(1, 2 ** 32) / 2 ** 32) as number;
  const v = randomInt(0, 2 ** 32) / 2 ** 32;
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return Math.round(Math.min(1400, Math.max(240, Math.exp(6.33 + 0.45 * z))));
}

/** A KeepAlive frame that brings a write of `length` bytes up to about `target` bytes. */
export function paddingFrame(length: number, target: number): Buffer | undefined {
  const pad = target - length - KEEPALIVE_OVERHEAD;
  if (pad <= 0) return undefined;
  return encodeMuxFrame(
    { sessionId: 0, status: MuxStatus.KeepAlive, option: 0 },
    randomBytes(Math.min(pad, MUX_MAX_DATA)),
  );
}

/** Per-carrier state: pads writes until `records` are done, and runs the idle timer. */
export class MuxCover {
  readonly #size: () => number;
  readonly #idle: readonly [number, number] | undefined;
  #left: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #send: ((b: Buffer) => void) | undefined;

  constructor(opts: MuxCoverOptions = {}) {
    this.#left = opts.records ?? 8;
    this.#size = opts.size ?? browsingRecordSize;
    this.#idle = opts.idleMs;
  }

  /** How many writes are still to be padded. */
  get pending(): number {
    return this.#left;
  }

  /** The write as it should leave: padded while records are left. */
  shape(write: Buffer): Buffer {
    this.#rearm();
    if (this.#left <= 0) return write;
    this.#left--;
    const pad = paddingFrame(write.length, this.#size());
    return pad ? Buffer.concat([write, pad]) : write;
  }

  /** Start the idle cover (if configured), sending through `send`. */
  start(send: (b: Buffer) => void): void {
    this.#send = send;
    this.#rearm();
  }

  #rearm(): void {
    if (!this.#idle || !this.#send) return;
    if (this.#timer) clearTimeout(this.#timer);
    const [min, max] = this.#idle;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        const frame = paddingFrame(0, this.#size());
        if (frame && this.#send) this.#send(frame); // sent through shape() by the owner: rearms
      },
      min + randomInt(0, Math.max(1, max - min)),
    );
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#send = undefined;
  }
}
