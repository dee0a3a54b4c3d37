/**
 * Many timeouts of one length on one timer: each add() is due `ms` after it, so the entries are
 * in due order as they come (a FIFO), and a single timer armed for the oldest live entry fires
 * them. Cancelling marks the entry; it leaves the queue when it reaches the front (or at a
 * compaction once most of the queue is cancelled). For answer-watch.ts, which starts a 10 s watch
 * per tunnelled connection and cancels nearly all of them within milliseconds: a setTimeout
 * and a clearTimeout per connection cost more than the push and the flag.
 *
 * If the clock steps back, entries added after the step fire no sooner than the ones before them
 * (late by at most the step), never early.
 */
import type { Clock, Timer } from '../shared/clock.js';

export interface Deadline {
  /** Not called after this. Idempotent. */
  cancel(): void;
}

/** What an entry calls when due: a function, or an object's due() (no closure per entry). */
export type DueTarget = (() => void) | { due(): void };

/** One add(): a class rather than an object with a cancel closure (one allocation, not two). */
class Entry implements Deadline {
  readonly at: number;
  target: DueTarget | undefined;
  readonly #queue: DeadlineQueue;

  constructor(queue: DeadlineQueue, at: number, target: DueTarget) {
    this.#queue = queue;
    this.at = at;
    this.target = target;
  }

  cancel(): void {
    if (this.target === undefined) return;
    this.target = undefined;
    this.#queue.cancelled();
  }
}

export class DeadlineQueue {
  readonly #clock: Clock;
  readonly #ms: number;
  #queue: Entry[] = [];
  #head = 0; // index of the first entry still in the queue
  #live = 0;
  #timer: Timer | undefined;
  #timerAt = 0;
  #firing = false;

  constructor(clock: Clock, ms: number) {
    this.#clock = clock;
    this.#ms = ms;
  }

  /** Entries not cancelled and not fired (tests). */
  get live(): number {
    return this.#live;
  }

  /** Calls `target` (or its due()) once, `ms` from now, unless cancelled first. */
  add(target: DueTarget): Deadline {
    const e = new Entry(this, this.#clock.now() + this.#ms, target);
    this.#trim();
    this.#queue.push(e);
    this.#live++;
    if (this.#timer === undefined && !this.#firing) this.#arm(e.at);
    return e;
  }

  /** An entry was cancelled (Entry.cancel, once per entry). */
  cancelled(): void {
    this.#live--;
  }

  /** Drops cancelled entries at the front; compacts when most of the rest are cancelled. */
  #trim(): void {
    const q = this.#queue;
    while (this.#head < q.length && q[this.#head]!.target === undefined) this.#head++;
    if (this.#head === q.length) {
      q.length = 0;
      this.#head = 0;
    } else if (q.length - this.#head > 64 && this.#live * 2 < q.length - this.#head) {
      this.#queue = q.slice(this.#head).filter((x) => x.target !== undefined);
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > q.length) {
      this.#queue = q.slice(this.#head);
      this.#head = 0;
    }
  }

  #arm(at: number): void {
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(() => this.#fire(), Math.max(0, at - this.#clock.now()));
    this.#timer.unref?.();
  }

  #fire(): void {
    this.#timer = undefined;
    const now = this.#clock.now();
    this.#firing = true;
    try {
      for (;;) {
        this.#trim();
        const e = this.#queue[this.#head];
        if (e === undefined) return;
        if (e.at > now && e.at > this.#timerAt) {
          this.#arm(e.at);
          return;
        }
        const t = e.target!;
        e.cancel();
        if (typeof t === 'function') t();
        else t.due();
      }
    } finally {
      this.#firing = false;
      // A callback that threw (or added) leaves the rest for a timer of their own.
      const next = this.#queue[this.#head];
      if (this.#timer === undefined && next !== undefined) this.#arm(next.at);
    }
  }
}
