import type { Clock, Timer } from './clock.js';

export interface RepeatLimiterOptions {
  clock: Clock;
  /**
   * The first event of a kind is let through at once; repeats within this window are only
   * counted, and reported when it ends (then a new window starts while repeats go on).
   */
  windowMs: number;
  /**
   * Most kinds tracked at once, so memory stays bounded whatever arrives (default 1000). Events
   * of further kinds are not let through until a window ends and frees a place.
   */
  maxKinds?: number;
  /**
   * A window ended in which `count` repeats of `kind` were held back; `details` counts them by
   * the detail each hit gave (hits without one are not in it).
   */
  onRepeats: (kind: string, count: number, details: ReadonlyMap<string, number>) => void;
}

interface Entry {
  until: number;
  count: number;
  details: Map<string, number>;
}

/**
 * Keeps a log readable under a flood (a scan, a misconfigured client retrying in a loop): for
 * each kind of event, the first is let through, the repeats of the next `windowMs` are counted
 * and reported once as a number. A steady stream therefore costs one line per window per kind.
 */
export class RepeatLimiter {
  readonly #o: RepeatLimiterOptions;
  readonly #maxKinds: number;
  readonly #entries = new Map<string, Entry>();
  #timer: Timer | undefined;
  #timerAt = Infinity;

  constructor(opts: RepeatLimiterOptions) {
    if (!(opts.windowMs > 0)) throw new RangeError('windowMs must be positive');
    this.#o = opts;
    this.#maxKinds = opts.maxKinds ?? 1000;
  }

  /** Record one event; true when the caller should log it now, false when it was counted. */
  hit(kind: string, detail?: string): boolean {
    const now = this.#o.clock.now();
    let e = this.#entries.get(kind);
    if (e && e.until <= now) {
      this.#expire(kind, e, now); // its timer is late: settle the old window first
      e = this.#entries.get(kind);
    }
    if (e) {
      e.count++;
      if (detail !== undefined) e.details.set(detail, (e.details.get(detail) ?? 0) + 1);
      return false;
    }
    if (this.#entries.size >= this.#maxKinds) return false;
    e = { until: now + this.#o.windowMs, count: 0, details: new Map() };
    this.#entries.set(kind, e);
    this.#schedule(e.until);
    return true;
  }

  /** Report every pending count now and forget all kinds (e.g. at shutdown). */
  flush(): void {
    this.#stopTimer();
    const entries = [...this.#entries];
    this.#entries.clear();
    for (const [kind, e] of entries) if (e.count > 0) this.#o.onRepeats(kind, e.count, e.details);
  }

  /** Kinds currently inside a window. */
  get size(): number {
    return this.#entries.size;
  }

  #expire(kind: string, e: Entry, now: number): void {
    if (e.count === 0) {
      this.#entries.delete(kind);
      return;
    }
    const count = e.count;
    const details = e.details;
    e.until = now + this.#o.windowMs;
    e.count = 0;
    e.details = new Map();
    this.#o.onRepeats(kind, count, details);
  }

  #schedule(at: number): void {
    if (this.#timer && this.#timerAt <= at) return;
    this.#stopTimer();
    const clock = this.#o.clock;
    this.#timerAt = at;
    this.#timer = clock.setTimeout(() => this.#onTimer(), Math.max(1, at - clock.now()));
    this.#timer.unref?.();
  }

  #stopTimer(): void {
    if (this.#timer) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#o.clock.now();
    let next = Infinity;
    for (const [kind, e] of [...this.#entries]) {
      if (e.until <= now) this.#expire(kind, e, now);
      const still = this.#entries.get(kind);
      if (still) next = Math.min(next, still.until);
    }
    if (next !== Infinity) this.#schedule(next);
  }
}
