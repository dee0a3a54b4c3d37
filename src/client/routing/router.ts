/**
 * The Router: decides direct | fragment | proxy | block per destination, and in `auto` mode learns from
 * the failure patterns the censor produces. Pure logic over an injected Clock.
 *
 *   const router = new Router({ mode: 'auto', rules, clock });
 *   const d = router.decide(host);                   // { route, source: 'rule'|'learned'|'mode' }
 *   ... connect by d.route ...
 *   const retry = router.reportFailure(host, d.route, 'reset-after-clienthello');
 *   if (retry) ... retry this same request at once by `retry` (so no request fails twice) ...
 *   router.reportSuccess(host, route);
 *
 * Modes: 'proxy' (everything tunnelled), 'direct' (nothing tunnelled), 'auto'. Rules always win
 * (the user's explicit intent), except `soft` ones from a probe measurement, which `auto` may
 * escalate like a default route; a rule-set fallback ('final,...' or ACL [bypass_all]) applies to
 * unmatched hosts in every mode.
 *
 * `auto` state machine per host (names are normalised; IP literals are their own key):
 *
 *   direct --reset-after-clienthello--> fragment   (SNI filter: C4, docs/glossary.md)
 *   direct --forged-dns / stall-after-first-packet / connect-failed / reset--> proxy
 *   fragment --any failure--> proxy                (record reassembly on, or not an SNI block)
 *   proxy  --failure--> (no change: tunnel failures are the EndpointSelector's business)
 *
 * A learned route lasts `ttlMs` (default 30 min) from when it was learned, then the host goes
 * back to direct (the block may be gone). At most `maxEntries` hosts are remembered (oldest
 * dropped first). Nothing here logs; `snapshot()` is for a debug endpoint.
 */
import type { Clock } from '../../shared/clock.js';
import { normalizeHost, type Route, type Rule, type RuleSet } from './rules.js';

export type RouteMode = 'auto' | 'proxy' | 'direct';

export type FailureKind =
  'reset-after-clienthello' | 'forged-dns' | 'stall-after-first-packet' | 'connect-failed' | 'reset';

export interface Decision {
  readonly route: Route;
  readonly source: 'rule' | 'learned' | 'mode';
  /** The rule that matched (source 'rule'; none for a rule set's fallback). */
  readonly rule?: Rule | undefined;
  /** Why the route was learned (source 'learned'). */
  readonly reason?: FailureKind | undefined;
}

export interface RouterOptions {
  mode: RouteMode;
  rules?: RuleSet | undefined;
  clock: Clock;
  /** How long a learned route is kept (default 30 min). */
  ttlMs?: number;
  /** Use fragmentation as the first escalation for SNI resets (default true). */
  fragment?: boolean;
  maxEntries?: number;
}

interface Learned {
  route: Route;
  until: number;
  reason: FailureKind;
}

export const DEFAULT_ROUTE_TTL_MS = 30 * 60_000;

export class Router {
  readonly mode: RouteMode;
  readonly #rules: RuleSet | undefined;
  readonly #clock: Clock;
  readonly #ttl: number;
  readonly #fragment: boolean;
  readonly #max: number;
  readonly #learned = new Map<string, Learned>();

  constructor(opts: RouterOptions) {
    this.mode = opts.mode;
    this.#rules = opts.rules;
    this.#clock = opts.clock;
    this.#ttl = opts.ttlMs ?? DEFAULT_ROUTE_TTL_MS;
    this.#fragment = opts.fragment ?? true;
    this.#max = opts.maxEntries ?? 10_000;
  }

  #current(key: string): Learned | undefined {
    const l = this.#learned.get(key);
    if (l && l.until <= this.#clock.now()) {
      this.#learned.delete(key);
      return undefined;
    }
    return l;
  }

  decide(host: string): Decision {
    const key = normalizeHost(host);
    const rule = this.#rules?.matchRule(key);
    if (rule && !(rule.soft && this.mode === 'auto' && this.#current(key)))
      return { route: rule.route, source: 'rule', rule };
    if (this.mode === 'auto') {
      const l = this.#current(key);
      if (l) return { route: l.route, source: 'learned', reason: l.reason };
    }
    const fb = this.#rules?.fallback;
    if (fb) return { route: fb, source: 'rule' };
    return { route: this.mode === 'proxy' ? 'proxy' : 'direct', source: 'mode' };
  }

  /**
   * Report that a connection by `route` failed with `kind`. Returns the route to retry this
   * request with right away, or undefined when there is nothing better to try.
   */
  reportFailure(host: string, route: Route, kind: FailureKind): Route | undefined {
    if (this.mode !== 'auto') return undefined;
    const key = normalizeHost(host);
    const rule = this.#rules?.matchRule(key);
    if (rule && !rule.soft) return undefined; // explicit rules are not second-guessed (measured ones are: probe-rules.ts)
    let next: Route | undefined;
    if (route === 'direct')
      next = kind === 'reset-after-clienthello' && this.#fragment ? 'fragment' : 'proxy';
    else if (route === 'fragment') next = 'proxy';
    else next = undefined;
    if (!next) return undefined;
    const cur = this.#current(key);
    // Never step back down (a late failure report for 'direct' after we already chose 'proxy').
    if (cur && rank(cur.route) >= rank(next)) return cur.route === route ? undefined : cur.route;
    this.#learned.delete(key);
    this.#learned.set(key, { route: next, until: this.#clock.now() + this.#ttl, reason: kind });
    while (this.#learned.size > this.#max) this.#learned.delete(this.#learned.keys().next().value!);
    return next;
  }

  /** A connection by `route` worked. Nothing to learn for direct; keeps the learned TTL as is. */
  reportSuccess(_host: string, _route: Route): void {
    // Deliberately no TTL extension: the host is re-probed direct when the TTL ends.
  }

  /** Forget what was learned about a host (or everything). */
  forget(host?: string): void {
    if (host === undefined) this.#learned.clear();
    else this.#learned.delete(normalizeHost(host));
  }

  snapshot(): { host: string; route: Route; reason: FailureKind; expiresInMs: number }[] {
    const now = this.#clock.now();
    const out: { host: string; route: Route; reason: FailureKind; expiresInMs: number }[] = [];
    for (const [host, l] of this.#learned)
      if (l.until > now) out.push({ host, route: l.route, reason: l.reason, expiresInMs: l.until - now });
    return out;
  }
}

function rank(r: Route): number {
  return r === 'direct' ? 0 : r === 'fragment' ? 1 : 2; // block is never learned
}

/** What the client observed about a failed connection attempt. */
export interface FailureObservation {
  /** The name resolved to a forged address, or the stub flagged the answer. */
  forgedDns?: boolean;
  /** Where it failed: before the TCP handshake completed, or after. */
  phase: 'connect' | 'established';
  /** ECONNRESET, ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ... or 'timeout' for our own timer. */
  errorCode?: string | undefined;
  bytesSent: number;
  bytesReceived: number;
  /** The first bytes we sent were a TLS ClientHello. */
  sentClientHello: boolean;
}

/** Map an observation to a failure pattern; undefined when it does not look like censorship. */
export function classifyFailure(o: FailureObservation): FailureKind | undefined {
  if (o.forgedDns) return 'forged-dns';
  const reset = o.errorCode === 'ECONNRESET' || o.errorCode === 'EPIPE';
  const timeout = o.errorCode === 'ETIMEDOUT' || o.errorCode === 'timeout';
  if (o.phase === 'connect') {
    if (timeout || o.errorCode === 'EHOSTUNREACH' || o.errorCode === 'ENETUNREACH' || reset)
      return 'connect-failed';
    return undefined; // ECONNREFUSED etc.: the site itself, not the path
  }
  if (o.bytesReceived > 0) return reset ? 'reset' : undefined;
  if (reset && o.sentClientHello) return 'reset-after-clienthello';
  if (reset) return 'reset';
  if (timeout && o.bytesSent > 0) return 'stall-after-first-packet';
  return undefined;
}
