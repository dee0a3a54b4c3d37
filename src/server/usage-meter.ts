import type { Clock } from '../shared/clock.js';
import type { UsageSink } from '../shared/control.js';
import { envSwitch } from '../shared/env.js';
import type { Logger } from '../shared/logger.js';
import { Periodic } from './periodic.js';

/**
 * How often counts reach the sink. With the store's own flush (≤ 500 ms, see KyselyStore) a crash
 * (`kill -9`) loses at most ~1 s of usage; each tick is in-memory work, not a disk write.
 */
export const DEFAULT_USAGE_FLUSH_MS = 400;

export interface UsageMeterOptions {
  /** Where the counts go; without one they are counted and dropped. */
  sink: UsageSink | undefined;
  clock: Clock;
  log: Logger;
  /** How often accumulated counts go to the sink while running. */
  flushMs?: number;
  /** Called first by every flush, to add counts not yet reported (open connections). */
  collect?: () => void;
  /**
   * Whether counts may still come that only a flush collects (connections open). With it, a
   * flush that found nothing to hand over and nothing open stops the timer until add() or wake():
   * an idle server's thread is not woken every flushMs (unless LADDER_TIMERS_ON_DEMAND=0).
   */
  busy?: () => boolean;
}

/**
 * Byte counts per key, batched: TCP connections and the UDP relay add() as they go, and the
 * sums reach the UsageSink every `flushMs` (and on flush()), one addBytes() per key.
 */
export class UsageMeter {
  readonly #sink: UsageSink | undefined;
  readonly #log: Logger;
  readonly #collect: (() => void) | undefined;
  readonly #pending = new Map<string, { up: number; down: number }>();
  readonly #flusher: Periodic;
  readonly #busy: (() => boolean) | undefined;
  /** Started (start() with a sink), and whether the timer sleeps for want of work. */
  #started = false;
  #asleep = false;

  constructor(opts: UsageMeterOptions) {
    this.#sink = opts.sink;
    this.#log = opts.log;
    this.#collect = opts.collect;
    this.#busy = opts.busy && envSwitch('LADDER_TIMERS_ON_DEMAND') ? opts.busy : undefined;
    this.#flusher = new Periodic(opts.clock, opts.flushMs ?? DEFAULT_USAGE_FLUSH_MS, () => this.#tick());
  }

  #tick(): void {
    this.flush();
    const busy = this.#busy;
    if (busy && !busy()) {
      this.#flusher.stop(); // from inside the task: no next run until wake()
      this.#asleep = true;
    }
  }

  /** Something may count soon (a connection opened): the timer runs again if it slept. */
  wake(): void {
    if (!this.#asleep) return;
    this.#asleep = false;
    this.#flusher.start();
  }

  add(keyId: string, up: number, down: number): void {
    if (this.#asleep) this.wake();
    const u = this.#pending.get(keyId);
    if (u) {
      u.up += up;
      u.down += down;
    } else this.#pending.set(keyId, { up, down });
  }

  /** Hand the accumulated counts to the sink now (a sink that throws is logged). */
  flush(): void {
    this.#collect?.();
    const sink = this.#sink;
    if (!sink) {
      this.#pending.clear();
      return;
    }
    for (const [id, u] of this.#pending) {
      if (u.up > 0 || u.down > 0) {
        try {
          sink.addBytes(id, u.up, u.down);
        } catch (err) {
          this.#log.warn({ err: (err as Error).message }, 'usage sink failed');
        }
      }
    }
    this.#pending.clear();
  }

  /** Flush every `flushMs` until stop() (nothing to do without a sink). */
  start(): void {
    if (!this.#sink || this.#started) return;
    this.#started = true;
    this.#flusher.start();
  }

  stop(): void {
    this.#started = false;
    this.#asleep = false;
    this.#flusher.stop();
  }
}
