import type { SocksAddress } from '../protocol/socks5/address.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { DialError, type DialedConnection, type Dialer, type FirstData } from './dialer.js';

export interface FailoverOptions {
  /** Skip an endpoint for this long after it failed to connect (default 30 s). */
  cooldownMs?: number;
  clock?: Clock;
}

/** Failures that happened before anything reached the next hop, so another endpoint may be tried. */
const RETRYABLE = new Set(['ERR_CONNECT', 'ERR_CONNECT_TIMEOUT', 'ERR_CLOSED']);

/**
 * Failover across several endpoints (e.g. one Shadowsocks dialer per server address of a key).
 * Tries the endpoint that last worked first, then the others in the given order; endpoints that
 * failed recently go last (never skipped entirely, so a total outage still retries all). Only
 * failures before the first write are retried: once bytes left, the server may have acted on
 * them and a silent replay elsewhere would duplicate the request.
 */
export class FailoverDialer implements Dialer {
  readonly #dialers: readonly Dialer[];
  readonly #cooldownMs: number;
  readonly #clock: Clock;
  readonly #failedAt: number[];
  #preferred = 0;

  constructor(dialers: readonly Dialer[], opts: FailoverOptions = {}) {
    if (dialers.length === 0) throw new Error('FailoverDialer needs at least one dialer');
    this.#dialers = [...dialers];
    this.#cooldownMs = opts.cooldownMs ?? 30_000;
    this.#clock = opts.clock ?? systemClock;
    this.#failedAt = dialers.map(() => -Infinity);
  }

  /** Index order for the next attempt (exposed for tests and status pages). */
  order(): number[] {
    const n = this.#dialers.length;
    const idx = [
      this.#preferred,
      ...Array.from({ length: n }, (_, i) => i).filter((i) => i !== this.#preferred),
    ];
    const now = this.#clock.now();
    const cooling = (i: number): boolean => now - this.#failedAt[i]! < this.#cooldownMs;
    return [...idx.filter((i) => !cooling(i)), ...idx.filter(cooling)];
  }

  async dial(dest: SocksAddress, firstData?: FirstData, signal?: AbortSignal): Promise<DialedConnection> {
    let lastErr: unknown;
    for (const i of this.order()) {
      if (signal?.aborted) throw new DialError('ERR_ABORTED', 'dial aborted');
      try {
        const conn = await this.#dialers[i]!.dial(dest, firstData, signal);
        this.#preferred = i;
        this.#failedAt[i] = -Infinity;
        return conn;
      } catch (err) {
        if (!(err instanceof DialError) || !RETRYABLE.has(err.code)) throw err;
        this.#failedAt[i] = this.#clock.now();
        lastErr = err;
      }
    }
    throw lastErr;
  }
}
