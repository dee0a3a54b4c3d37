import type { Clock } from '../shared/clock.js';
import type { UsageSink } from '../shared/control.js';
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

  constructor(opts: UsageMeterOptions) {
    this.#sink = opts.sink;
    this.#log = opts.log;
    this.#collect = opts.collect;
    this.#flusher = new Periodic(opts.clock, opts.flushMs ?? DEFAULT_USAGE_FLUSH_MS, () => this.flush());
  }

  add(keyId: string, up: number, down: number): void {
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
    if (this.#sink) this.#flusher.start();
  }

  stop(): void {
    this.#flusher.stop();
  }
}
