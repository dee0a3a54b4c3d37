import type { Clock, Timer } from '../shared/clock.js';

/**
 * Compressed time for the lab: virtual time runs `rate` times faster than the wall clock, so a
 * 180 s residual block lasts 1.8 s of real time at rate 100. Real sockets keep working because
 * timers are real timers, just shorter.
 */
export class ScaledClock implements Clock {
  readonly rate: number;
  readonly #realStart: number;
  readonly #virtualStart: number;

  constructor(rate: number, virtualStart = 1_700_000_000_000) {
    if (!(rate > 0) || !Number.isFinite(rate))
      throw new RangeError(`clock rate must be a positive number, got ${rate}`);
    this.rate = rate;
    this.#realStart = performance.now();
    this.#virtualStart = virtualStart;
  }

  now(): number {
    return this.#virtualStart + Math.floor((performance.now() - this.#realStart) * this.rate);
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return setTimeout(fn, Math.max(0, ms) / this.rate);
  }

  clearTimeout(t: Timer): void {
    clearTimeout(t as ReturnType<typeof setTimeout>);
  }
}

/** Resolve after `ms` of the given clock's time. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    clock.setTimeout(resolve, ms);
  });
}
