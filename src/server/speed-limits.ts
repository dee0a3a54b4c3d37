/**
 * Per-key speed limits in the data plane (RuntimeKey.speedLimit; docs/limits.md "Speed limits").
 * A limited key's bytes are charged, per direction, to its token bucket in the process's shared
 * table (workers/shared-buckets.ts), so all of its connections and datagrams on this server,
 * in every worker thread and on every port, share one rate.
 *
 * - TCP: a limited key's connections take the JS relay (never the native relay or the lean path),
 *   with a RelayThrottle: each chunk read is charged, in pieces of an eighth of a second at the
 *   rate (a 64 KiB read at a few KiB/s leaves steadily); when the bucket is empty the relay holds
 *   that piece, pauses reading its source and hands a resume to this key's queue. One timer per key
 *   (not one per chunk) wakes the queue's heads in order when the bucket has refilled enough, so
 *   a key's connections take turns a chunk at a time (a bulk download does not starve the key's
 *   other connections). Nothing is buffered beyond the one chunk read (what the destination's
 *   write buffer held before).
 * - UDP: a datagram the bucket cannot hold is dropped and counted.
 * - A changed rate forgives the debt charged at the old rate and releases every waiting
 *   connection (their next chunk is charged at the new rate); a removed limit releases them and
 *   charges nothing more. A key without a limit has no entry here and costs nothing.
 */
import type { RelayThrottle } from '../transport/relay.js';
import type { KeyLimits } from './keys.js';
import {
  addHeld,
  bucketFor,
  charge,
  forgive,
  tryTake,
  wallNow,
  type Bucket,
  type Direction,
  type Rate,
} from './workers/shared-buckets.js';

/** The bucket's depth: a quarter second of the rate, at least 64 KiB. */
export function burstBytes(rate: number): number {
  return Math.max(rate / 4, 65_536);
}

/** Relays this thread started with a throttle (tests: the path is taken). */
let throttled = 0;
export function throttledRelays(): number {
  return throttled;
}

/** Throttled output leaves in pieces of 1/8 s at the rate (KeyLimit.piece), at least 256 bytes. */
const PIECES_PER_SECOND = 8;
const PIECE_MIN = 256;

interface Waiter {
  readonly due: number;
  readonly resume: () => void;
}

/** One key's limit on this server (thread): its rate, its shared bucket, its waiting connections. */
export class KeyLimit implements RelayThrottle {
  readonly #bucket: Bucket;
  #r: Rate = { msPerByte: 0, burstMs: 0 };
  #rate = 0;
  readonly #queues: [Waiter[], Waiter[]] = [[], []];
  #timer: NodeJS.Timeout | undefined;
  #due = Infinity;

  constructor(id: string) {
    this.#bucket = bucketFor(id);
  }

  /** Bytes per second; 0: no limit. */
  get rate(): number {
    return this.#rate;
  }

  /**
   * RelayThrottle: the most bytes one write carries, an eighth of a second at the rate (at least
   * 256 bytes): at a few KiB/s a 64 KiB read leaves in steady pieces, not after one long wait.
   * At 512 KiB/s and up a read (at most 64 KiB) is one piece.
   */
  get piece(): number | undefined {
    return this.#rate > 0 ? Math.max(PIECE_MIN, Math.floor(this.#rate / PIECES_PER_SECOND)) : undefined;
  }

  /** A new rate (undefined or 0: none): waiting connections go on at once. */
  setRate(rate: number | undefined): void {
    const r = rate !== undefined && rate > 0 ? rate : 0;
    if (r === this.#rate) return;
    this.#rate = r;
    if (r > 0) this.#r = { msPerByte: 1000 / r, burstMs: (burstBytes(r) * 1000) / r };
    // Any new rate starts afresh: the debt booked at the old rate (or before a limit was removed
    // and set again) is forgiven, so no connection waits out time charged at another rate.
    if (r > 0) forgive(this.#bucket, wallNow());
    this.#wake(Infinity);
  }

  /** RelayThrottle: `fromA` is the client side (up). */
  charge(fromA: boolean, n: number, resume: () => void): boolean {
    if (this.#rate === 0) return false;
    const dir: Direction = fromA ? 0 : 1;
    const now = wallNow();
    const wait = charge(this.#bucket, dir, n, this.#r, now);
    if (wait <= 0) return false;
    addHeld(this.#bucket, dir, wait);
    this.#queues[dir].push({ due: now + wait, resume });
    this.#arm(now + wait);
    return true;
  }

  /** Bytes that moved before the relay (the request's first data): charged, nothing held. */
  debit(up: boolean, n: number): void {
    if (this.#rate > 0 && n > 0) charge(this.#bucket, up ? 0 : 1, n, this.#r, wallNow());
  }

  /** A datagram of `n` bytes (`up`: from the client): false when it is over the rate (dropped, counted). */
  datagram(up: boolean, n: number): boolean {
    if (this.#rate === 0) return true;
    return tryTake(this.#bucket, up ? 0 : 1, n, this.#r, wallNow());
  }

  #arm(due: number): void {
    if (due >= this.#due) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = setTimeout(this.#onTimer, Math.max(1, Math.ceil(due - wallNow())));
    this.#timer.unref();
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#due = Infinity;
    this.#wake(wallNow());
  };

  /** Resume the waiters due by `until` (Infinity: all), in order; re-arm for the rest. */
  #wake(until: number): void {
    let next = Infinity;
    for (const q of this.#queues) {
      let i = 0;
      while (i < q.length && q[i]!.due <= until) i++;
      const ready = q.splice(0, i);
      for (const w of ready) w.resume();
      if (q.length > 0) next = Math.min(next, q[0]!.due);
    }
    if (until === Infinity && this.#timer) {
      clearTimeout(this.#timer);
      [this.#timer, this.#due] = [undefined, Infinity];
    }
    if (next < Infinity) this.#arm(next);
  }
}

/** Where the keys' limits are read from: the key ring (keys.ts), whose entries carry them. */
export interface KeyLimitSource {
  get(id: string): { readonly limits: KeyLimits } | undefined;
}

/**
 * The speed limits of one server's keys: the rate is the ring entry's; this keeps, per key that
 * had a limit, its bucket and waiting connections (KeyLimit), made when the limit arrives.
 */
export class SpeedLimits {
  readonly #keys: KeyLimitSource;
  readonly #byId = new Map<string, KeyLimit>();

  constructor(keys: KeyLimitSource) {
    this.#keys = keys;
  }

  /** The limit of key `id` when it has one (then its connections are throttled), else undefined. */
  for(id: string): KeyLimit | undefined {
    if (this.#byId.size === 0) return undefined;
    const l = this.#byId.get(id);
    return l && l.rate > 0 ? l : undefined;
  }

  /**
   * The ring changed the keys `ids` names: each takes its entry's rate now (a new limit gets a
   * KeyLimit); a key no longer in the ring is forgotten (its waiters released).
   */
  sync(ids: Iterable<string>): void {
    for (const id of ids) {
      const rate = this.#keys.get(id)?.limits.speedLimit;
      const l = this.#byId.get(id);
      if (rate !== undefined) {
        if (l) l.setRate(rate);
        else {
          const n = new KeyLimit(id);
          n.setRate(rate);
          this.#byId.set(id, n);
        }
      } else if (l) {
        l.setRate(undefined); // kept while the key is: a limit set again applies to open connections too
        if (!this.#keys.get(id)) this.#byId.delete(id);
      }
    }
  }

  /** Ids that have a KeyLimit here (with `sync`, after a whole new key set). */
  known(): string[] {
    return [...this.#byId.keys()];
  }
}

/** Whether a session's key is speed-limited (udp-relay.ts: its datagrams then stay in JS). */
export function limited(
  speed: SpeedLimits | undefined,
  s: { readonly key: { readonly id: string } },
): boolean {
  return speed?.for(s.key.id) !== undefined;
}

/** A datagram of a session's key over the key's rate (dropped, counted); `up`: from the client. */
export function overRate(
  speed: SpeedLimits | undefined,
  s: { readonly key: { readonly id: string } },
  up: boolean,
  n: number,
): boolean {
  return speed?.for(s.key.id)?.datagram(up, n) === false;
}

/** A relay of a limited key starts (counted for tests). */
export function throttleStarted(): void {
  throttled++;
}
