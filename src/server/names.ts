/**
 * Destinations given as a name (a browser's socks5h request, curl --socks5-hostname, most
 * v2rayNG/Clash clients): a short-lived cache of their addresses, and the dial of a natively
 * accepted connection over those addresses in the addon, as an IP destination's is.
 *
 * Without this, each such connection ran getaddrinfo on libuv's thread pool (a thread hop, a
 * promise chain, /etc/nsswitch.conf and /etc/hosts read each time), then connected through
 * nativeConnect (another promise, a timer) and handed both descriptors to relayPair with a JS
 * encoder: ~180 µs of server CPU more than an IP literal's connection (docs/benchmarks.md).
 *
 * The cache: getaddrinfo gives no TTL, so an answer is kept a fixed time (LADDER_DNS_CACHE_MS,
 * default 10 s; 0: no cache), at most NAME_CACHE_MAX names (the oldest answer goes first). A
 * failure is never kept: the next connection asks again. Concurrent lookups of one name share
 * one getaddrinfo. The cache holds what the resolver said; the private-address rule is applied
 * to it on every use, so `allowPrivateDestinations` holds for cached answers as for fresh ones.
 * One cache per server (per data-plane worker): it goes with the server, and nothing a config
 * reload changes (keys) bears on resolution.
 *
 * On by default; LADDER_NAME_DIAL=0 turns both off (names resolved per connection by dialWith,
 * dialled by nativeConnect and handed off, as before).
 */
import type { SocksAddress } from '../protocol/socks5/address.js';
import type { Clock } from '../shared/clock.js';
import { envSwitch } from '../shared/env.js';
import { NAME_CACHE_MS, nameCacheMsFromEnv } from './name-cache-env.js';
import { allowedAddresses, defaultLookup, DialError, resolveName, type Lookup } from './destination.js';
import type { RelayStart } from './native-relay.js';

export { NAME_CACHE_MS, nameCacheMsFromEnv } from './name-cache-env.js';

/** At most this many names are kept (per server). */
export const NAME_CACHE_MAX = 1000;

/** Names resolved through the cache and dialled in the addon, unless LADDER_NAME_DIAL=0. */
export function nameDialFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NAME_DIAL', env);
}

/** A server's name cache (its nameCache option, else LADDER_NAME_DIAL), undefined when off. */
export function serverNameCache(
  o: { nameCache?: boolean | { ttlMs?: number; max?: number }; lookup?: Lookup },
  clock: Clock,
): NameCache | undefined {
  const want = o.nameCache ?? nameDialFromEnv();
  if (want === false) return undefined;
  const { ttlMs = nameCacheMsFromEnv(), max } = want === true ? {} : want;
  return new NameCache({
    clock,
    lookup: o.lookup ?? defaultLookup,
    ttlMs,
    ...(max !== undefined ? { max } : {}),
  });
}

export interface NameCacheOptions {
  clock: Clock;
  /** The resolver (dns.lookup with all addresses by default). */
  lookup: Lookup;
  /** How long an answer is kept, ms (0: never kept). */
  ttlMs?: number;
  /** At most this many names. */
  max?: number;
}

/** A name's addresses as the resolver gave them, for `ttlMs`. Failures are not kept. */
export class NameCache {
  readonly #clock: Clock;
  readonly #lookup: Lookup;
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #answers = new Map<string, { addresses: string[]; until: number }>();
  readonly #pending = new Map<string, Promise<string[]>>();

  constructor(o: NameCacheOptions) {
    this.#clock = o.clock;
    this.#lookup = o.lookup;
    this.#ttlMs = o.ttlMs ?? NAME_CACHE_MS;
    this.#max = o.max ?? NAME_CACHE_MAX;
  }

  /** The addresses of `host` while its answer is fresh (no call, no promise), else undefined. */
  get(host: string): string[] | undefined {
    const e = this.#answers.get(host);
    if (e === undefined) return undefined;
    if (this.#clock.now() < e.until) return e.addresses;
    this.#answers.delete(host);
    return undefined;
  }

  /** Resolve `host` (one lookup at a time per name) and keep the answer; DialError ERR_RESOLVE. */
  resolve(host: string): Promise<string[]> {
    const running = this.#pending.get(host);
    if (running) return running;
    const p = resolveName(host, this.#lookup).then(
      (addresses) => {
        this.#pending.delete(host);
        this.#keep(host, addresses);
        return addresses;
      },
      (err: unknown) => {
        this.#pending.delete(host);
        throw err;
      },
    );
    this.#pending.set(host, p);
    return p;
  }

  /** A Lookup served from the cache (dialWith's, for the paths that do not dial in the addon). */
  readonly lookup: Lookup = async (host) => {
    const addresses = this.get(host) ?? (await this.resolve(host));
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

  /** Names held now (tests). */
  get size(): number {
    return this.#answers.size;
  }

  #keep(host: string, addresses: string[]): void {
    if (this.#ttlMs <= 0 || this.#max <= 0) return;
    this.#answers.delete(host); // a refreshed answer is the newest
    if (this.#answers.size >= this.#max) this.#answers.delete(this.#answers.keys().next().value!);
    this.#answers.set(host, { addresses, until: this.#clock.now() + this.#ttlMs });
  }
}

/** A server's connection context's part (connection.ts ConnectionContext). */
export interface NameContext {
  /** Names' addresses kept a short while, and names dialled in the addon as IPs are. */
  readonly names?: NameCache | undefined;
}

/** What dialName tells the connection it dials for (connection.ts). */
export interface NameDialOwner {
  /** Still waiting for this dial (not closed or aborted meanwhile). */
  live(): boolean;
  /** The relay of the address being dialled (relayConnect's handle). */
  started(relay: object): void;
  /** No address connected (DialError: ERR_RESOLVE, ERR_FORBIDDEN, ERR_CONNECT). */
  failed(err: unknown): void;
}

/** The rest of a dial over a name's addresses: retry(err) tries the next one. */
export interface NameDial {
  /**
   * relayConnect reported `err` for the current address: undefined when the next one started,
   * else the error to fail with (the last one an address gave, as dialWith throws it).
   */
  retry(err: DialError): DialError | undefined;
}

/**
 * Dial a name's addresses in the addon (relayConnect's `start`), in resolver order, the private
 * rule applied first, within `connectMs` from now for the lookup and every connect (as dialWith):
 * synchronously when the cache has the name, after its lookup otherwise. An address refused at
 * once is passed over at once; one that fails later comes back through retry(), which says what
 * to fail with when none is left (or the budget is spent).
 */
export function dialName(
  cache: NameCache,
  policy: { readonly allowPrivateDestinations: boolean; readonly connectMs: number; readonly clock: Clock },
  address: SocksAddress,
  start: RelayStart,
  owner: NameDialOwner,
): NameDial {
  const { allowPrivateDestinations: allowPrivate, connectMs, clock } = policy;
  const deadline = clock.now() + connectMs;
  let queue: string[] = [];
  let at = 0;
  let last: unknown;
  /** Start the next address that connects or is pending; the error to fail with when none is left. */
  const next = (): DialError | undefined => {
    while (at < queue.length && clock.now() < deadline) {
      try {
        owner.started(start(queue[at++]!, address.port, deadline - clock.now()));
        return undefined;
      } catch (err) {
        last = err;
      }
    }
    return last instanceof DialError ? last : new DialError('ERR_CONNECT', 'connect timed out', 'ETIMEDOUT');
  };
  const begin = (found: string[]): void => {
    let failed: unknown;
    try {
      queue = allowedAddresses(found, allowPrivate);
      failed = next();
    } catch (err) {
      failed = err;
    }
    if (failed !== undefined) owner.failed(failed);
  };
  const hit = cache.get(address.host);
  if (hit) begin(hit);
  else
    cache.resolve(address.host).then(
      (found) => {
        if (owner.live()) begin(found);
      },
      (err: unknown) => {
        if (owner.live()) owner.failed(err);
      },
    );
  return {
    retry(err) {
      last = err;
      return owner.live() ? next() : err;
    },
  };
}
