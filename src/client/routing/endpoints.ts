/**
 * D10/D15: residual-aware endpoint selection over several server endpoints. Pure logic over an
 * injected Clock.
 *
 * The censor's residual block is on the 3-tuple (client IP, server IP, server port) for 120-180 s
 * (docs/glossary.md, Residual blocks). Our client IP is fixed, so the key is (server host, server port):
 * after a stall or reset on an endpoint we do not touch that host:port for `residualMs`
 * (default 180 s) and use the next endpoint in configured order; when the residual has passed,
 * the earlier (preferred) endpoint is used again.
 *
 *   const sel = new EndpointSelector([{ host: 'a', port: 8388 }, { host: 'a', port: 443 }], { clock });
 *   const p = sel.pick();        // { endpoint, index } or { endpoint: undefined, retryAt }
 *   sel.reportFailure(p.endpoint, 'stall');
 *   sel.reportSuccess(p.endpoint);
 *   sel.isAvoided(endpoint); sel.status();
 *
 * Connecting to an avoided 3-tuple during its residual would extend or re-trigger the block and
 * is never done by pick(); when every endpoint is avoided pick() says when the first frees up.
 */
import type { Clock } from '../../shared/clock.js';
import { DEFAULT_RESIDUAL_SECONDS } from '../../config/defaults.js';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export type EndpointFailure = 'stall' | 'reset' | 'connect-failed';

/** What is remembered about one endpoint (a Map by default; picker-memory.ts persists it per network). */
export interface EndpointRecord {
  /** Not to be dialled before this time (clock ms). */
  avoidUntil?: number;
  /** Failures since the last success. */
  failures: number;
  lastOkAt?: number;
  lastFailAt?: number;
  lastFail?: EndpointFailure;
}

export interface EndpointMemory {
  get(key: string): EndpointRecord | undefined;
  set(key: string, r: EndpointRecord): void;
}

export interface EndpointSelectorOptions {
  clock: Clock;
  /** How long to avoid a failed host:port (default 180 s, the longest measured residual). */
  residualMs?: number;
  /**
   * Back-off: the n-th failure in a row avoids the endpoint for residualMs × 2^(n-1), up to this
   * (default residualMs: no growth). Never shorter than the residual, so a retry cannot land in
   * the censor's residual block and renew it.
   */
  backoffMaxMs?: number;
  /** Prefer the endpoint that last carried data (when not avoided) over configured order. */
  sticky?: boolean;
  /** Where records live (default an in-memory Map). */
  memory?: EndpointMemory;
  /** The memory key of an endpoint (default endpointKey: host|port). */
  keyOf?: (e: Endpoint) => string;
}

export type Pick = { endpoint: Endpoint; index: number } | { endpoint: undefined; retryAt: number };

export const DEFAULT_RESIDUAL_MS = DEFAULT_RESIDUAL_SECONDS * 1000;

export function endpointKey(e: Endpoint): string {
  const h = e.host.toLowerCase().replace(/^\[|\]$/g, '');
  return `${h}|${e.port}`;
}

export class EndpointSelector {
  readonly endpoints: readonly Endpoint[];
  readonly #clock: Clock;
  readonly #residual: number;
  readonly #backoffMax: number;
  readonly #sticky: boolean;
  readonly #memory: EndpointMemory;
  readonly #keyOf: (e: Endpoint) => string;
  #lastFailureAt = -Infinity;

  constructor(endpoints: readonly Endpoint[], opts: EndpointSelectorOptions) {
    if (endpoints.length === 0) throw new Error('at least one server endpoint is required');
    for (const e of endpoints) {
      if (!e.host || !Number.isInteger(e.port) || e.port < 1 || e.port > 65535) {
        throw new Error(`bad endpoint: host must be non-empty and port 1..65535 (got port ${e.port})`);
      }
    }
    this.endpoints = endpoints;
    this.#clock = opts.clock;
    this.#residual = opts.residualMs ?? DEFAULT_RESIDUAL_MS;
    this.#backoffMax = Math.max(this.#residual, opts.backoffMaxMs ?? this.#residual);
    this.#sticky = opts.sticky ?? false;
    this.#memory = opts.memory ?? new Map<string, EndpointRecord>();
    this.#keyOf = opts.keyOf ?? endpointKey;
  }

  #rec(e: Endpoint): EndpointRecord | undefined {
    return this.#memory.get(this.#keyOf(e));
  }

  #until(e: Endpoint): number | undefined {
    return this.#rec(e)?.avoidUntil;
  }

  isAvoided(e: Endpoint): boolean {
    const until = this.#until(e);
    return until !== undefined && until > this.#clock.now();
  }

  /**
   * The first endpoint, in configured order, whose 3-tuple is not in its residual period; with
   * `sticky`, the one that last carried data comes first when it is not avoided.
   */
  pick(): Pick {
    const now = this.#clock.now();
    if (this.#sticky) {
      let best = -1;
      let bestAt = -Infinity;
      this.endpoints.forEach((e, i) => {
        const r = this.#rec(e);
        const free = r?.avoidUntil === undefined || r.avoidUntil <= now;
        if (free && r?.lastOkAt !== undefined && r.lastOkAt > bestAt) {
          best = i;
          bestAt = r.lastOkAt;
        }
      });
      if (best !== -1) return { endpoint: this.endpoints[best]!, index: best };
    }
    let soonest = Infinity;
    for (let i = 0; i < this.endpoints.length; i++) {
      const e = this.endpoints[i]!;
      const until = this.#until(e);
      if (until === undefined || until <= now) return { endpoint: e, index: i };
      soonest = Math.min(soonest, until);
    }
    return { endpoint: undefined, retryAt: soonest };
  }

  /** How long a failure now would avoid `e` (residual, doubled per failure in a row, capped). */
  avoidMsFor(e: Endpoint): number {
    const n = (this.#rec(e)?.failures ?? 0) + 1;
    return Math.min(this.#backoffMax, this.#residual * 2 ** Math.min(n - 1, 20));
  }

  reportFailure(e: Endpoint, kind: EndpointFailure): void {
    const now = this.#clock.now();
    const r = this.#rec(e);
    this.#memory.set(this.#keyOf(e), {
      ...r,
      avoidUntil: now + this.avoidMsFor(e),
      failures: (r?.failures ?? 0) + 1,
      lastFailAt: now,
      lastFail: kind,
    });
    this.#lastFailureAt = now;
  }

  /** Data came back through this endpoint: it is not blocked, whatever was seen before. */
  reportSuccess(e: Endpoint): void {
    const r = this.#rec(e);
    const { avoidUntil: _gone, ...rest } = r ?? { failures: 0 };
    this.#memory.set(this.#keyOf(e), { ...rest, failures: 0, lastOkAt: this.#clock.now() });
  }

  /** When the most recent failure of any endpoint was reported (-Infinity if never). */
  get lastFailureAt(): number {
    return this.#lastFailureAt;
  }

  /** The avoided endpoint whose residual period ends first. */
  soonestAvoided(): Endpoint {
    let best = this.endpoints[0]!;
    let bestUntil = Infinity;
    for (const e of this.endpoints) {
      const until = this.#until(e) ?? -Infinity;
      if (until < bestUntil) {
        best = e;
        bestUntil = until;
      }
    }
    return best;
  }

  status(): {
    endpoint: Endpoint;
    avoidedForMs: number;
    failures: number;
    lastOkAt?: number;
    lastFail?: EndpointFailure;
  }[] {
    const now = this.#clock.now();
    return this.endpoints.map((e) => {
      const r = this.#rec(e);
      return {
        endpoint: e,
        avoidedForMs: Math.max(0, (r?.avoidUntil ?? 0) - now),
        failures: r?.failures ?? 0,
        ...(r?.lastOkAt !== undefined ? { lastOkAt: r.lastOkAt } : {}),
        ...(r?.lastFail !== undefined ? { lastFail: r.lastFail } : {}),
      };
    });
  }
}
