import type { Clock, Timer } from '../shared/clock.js';

/**
 * Run a task every `ms` (unref'd timers) between start() and stop(). The next run is scheduled
 * when the task returns, or when the promise it returns settles, so runs never overlap.
 */
export class Periodic {
  readonly #clock: Clock;
  readonly #ms: number;
  readonly #task: () => void | Promise<void>;
  #timer: Timer | undefined;
  #running = false;

  constructor(clock: Clock, ms: number, task: () => void | Promise<void>) {
    this.#clock = clock;
    this.#ms = ms;
    this.#task = task;
  }

  start(): void {
    this.#running = true;
    this.#arm();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    this.#timer = this.#clock.setTimeout(() => {
      const done = this.#task();
      if (!done) this.#again();
      else void done.then(() => this.#again());
    }, this.#ms);
    this.#timer.unref?.();
  }

  #again(): void {
    if (this.#running) this.#arm();
  }
}
