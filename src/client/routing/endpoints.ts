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

export interface EndpointSelectorOptions {
  clock: Clock;
  /** How long to avoid a failed host:port (default 180 s, the longest measured residual). */
  residualMs?: number;
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
  readonly #avoidUntil = new Map<string, number>();
  readonly #failures = new Map<string, number>();
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
  }

  isAvoided(e: Endpoint): boolean {
    const until = this.#avoidUntil.get(endpointKey(e));
    return until !== undefined && until > this.#clock.now();
  }

  /** The first endpoint, in configured order, whose 3-tuple is not in its residual period. */
  pick(): Pick {
    let soonest = Infinity;
    for (let i = 0; i < this.endpoints.length; i++) {
      const e = this.endpoints[i]!;
      const until = this.#avoidUntil.get(endpointKey(e));
      if (until === undefined || until <= this.#clock.now()) return { endpoint: e, index: i };
      soonest = Math.min(soonest, until);
    }
    return { endpoint: undefined, retryAt: soonest };
  }

  reportFailure(e: Endpoint, _kind: EndpointFailure): void {
    const k = endpointKey(e);
    this.#avoidUntil.set(k, this.#clock.now() + this.#residual);
    this.#failures.set(k, (this.#failures.get(k) ?? 0) + 1);
    this.#lastFailureAt = this.#clock.now();
  }

  /** Data came back through this endpoint: it is not blocked, whatever was seen before. */
  reportSuccess(e: Endpoint): void {
    const k = endpointKey(e);
    this.#failures.delete(k);
    this.#avoidUntil.delete(k);
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
      const until = this.#avoidUntil.get(endpointKey(e)) ?? -Infinity;
      if (until < bestUntil) {
        best = e;
        bestUntil = until;
      }
    }
    return best;
  }

  status(): { endpoint: Endpoint; avoidedForMs: number; failures: number }[] {
    const now = this.#clock.now();
    return this.endpoints.map((e) => {
      const k = endpointKey(e);
      return {
        endpoint: e,
        avoidedForMs: Math.max(0, (this.#avoidUntil.get(k) ?? 0) - now),
        failures: this.#failures.get(k) ?? 0,
      };
    });
  }
}
