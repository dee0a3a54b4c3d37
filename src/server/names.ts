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
 * failure is kept FAILURE_MS (2 s: a client retrying a dead name in a loop asks once). Concurrent
 * lookups of one name share one getaddrinfo, every waiter has LOOKUP_MS (or the connect budget
 * when shorter), and lookups run through the process's LookupGate (name-lookups.ts: slots on
 * libuv's thread pool, a share per key, queues served key by key). The cache holds what the resolver said; the private-address rule is applied
 * to it on every use, so `allowPrivateDestinations` holds for cached answers as for fresh ones.
 * One cache per server (per data-plane worker): it goes with the server, and nothing a config
 * reload changes (keys) bears on resolution.
 *
 * On by default; LADDER_NAME_DIAL=0 turns both off (names resolved per connection by dialWith,
 * dialled by nativeConnect and handed off, as before).
 */
import type { SocksAddress } from '../protocol/socks5/address.js';
import type { Clock, Timer } from '../shared/clock.js';
import { envSwitch } from '../shared/env.js';
import { NAME_CACHE_MS, nameCacheMsFromEnv } from './name-cache-env.js';
import {
  allowedAddresses,
  attemptDeadline,
  defaultLookup,
  DialError,
  resolveName,
  type Lookup,
} from './destination.js';
import { type Admission, LookupGate } from './name-lookups.js';
import type { RelayStart } from './native-relay.js';

export { NAME_CACHE_MS, nameCacheMsFromEnv } from './name-cache-env.js';

/** At most this many names are kept (per server). */
export const NAME_CACHE_MAX = 1000;

/** Names resolved through the cache and dialled in the addon, unless LADDER_NAME_DIAL=0. */
export function nameDialFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NAME_DIAL', env);
}

/** A name lookup's own limit, ms (the connect budget when shorter): every waiter fails then. */
export const LOOKUP_MS = 5000;
/** How long a failed lookup is kept, ms (at most the cache's ttlMs): a name failing in a loop. */
export const FAILURE_MS = 2000;
/** Lookups one key may have waiting for a slot; more fail (ERR_RESOLVE) at once. */
export const LOOKUP_QUEUE_PER_KEY = 32;

/** A server's name cache (its nameCache option, else LADDER_NAME_DIAL), undefined when off. */
export function serverNameCache(
  o: {
    nameCache?: boolean | Omit<NameCacheOptions, 'clock' | 'lookup'>;
    lookup?: Lookup;
    lookupGate?: { memory: SharedArrayBuffer; row: number };
    timeouts?: { connectMs?: number };
  },
  clock: Clock,
): NameCache | undefined {
  const want = o.nameCache ?? nameDialFromEnv();
  if (want === false) return undefined;
  const given = want === true ? {} : want;
  const connectMs = o.timeouts?.connectMs;
  return new NameCache({
    ...(given.ttlMs === undefined ? { ttlMs: nameCacheMsFromEnv() } : {}),
    ...(connectMs !== undefined ? { lookupMs: Math.min(LOOKUP_MS, connectMs) } : {}),
    ...(o.lookupGate ? { gate: new LookupGate(o.lookupGate.memory, o.lookupGate.row) } : {}),
    ...given,
    clock,
    lookup: o.lookup ?? defaultLookup,
  });
}

export interface NameCacheOptions {
  clock: Clock;
  /** The resolver (dns.lookup with all addresses by default). */
  lookup: Lookup;
  /** How long an answer is kept, ms (0: never kept, nor a failure). */
  ttlMs?: number;
  /** How long a failure is kept, ms (default FAILURE_MS, at most ttlMs). */
  failMs?: number;
  /** How long a waiter waits for a lookup, queued or running, ms (default LOOKUP_MS; 0: no limit). */
  lookupMs?: number;
  /** At most this many names. */
  max?: number;
  /** The process's lookup slots (name-lookups.ts); default a gate of this cache's own. */
  gate?: LookupGate;
  /** Lookups one key may have waiting (default LOOKUP_QUEUE_PER_KEY). */
  queuePerKey?: number;
}

interface Waiter {
  /** The set it waits in: its Asked's while queued, the running lookup's after. */
  set: Set<Waiter>;
  /** Its queue entry while queued. */
  asked: Asked | undefined;
  ok(addresses: string[]): void;
  fail(err: unknown): void;
  timer?: Timer;
}

/** A name one key waits for a slot to look up. */
interface Asked {
  readonly host: string;
  readonly who: string;
  readonly waiters: Set<Waiter>;
}

const unresolved = (): DialError => new DialError('ERR_RESOLVE', 'destination name did not resolve');

/**
 * A name's addresses as the resolver gave them, for `ttlMs`, and a failure for `failMs`.
 * Lookups run through the process's LookupGate (name-lookups.ts: at most the thread pool less
 * one at once, one key at most one fewer); the others wait in a queue per key, the keys served in
 * turn, so one key's backlog of slow names does not hold up another key's. Every waiter has
 * `lookupMs`; one lookup of a name runs at a time and all its waiters get its answer.
 */
export class NameCache {
  readonly #clock: Clock;
  readonly #lookup: Lookup;
  readonly #ttlMs: number;
  readonly #failMs: number;
  readonly #lookupMs: number;
  readonly #max: number;
  readonly #queueMax: number;
  readonly #gate: LookupGate;
  /** addresses undefined: the lookup failed. */
  readonly #answers = new Map<string, { addresses: string[] | undefined; until: number }>();
  /** Names being looked up now, with their waiters. */
  readonly #running = new Map<string, Set<Waiter>>();
  /** Per key, the names waiting for a slot; the first key is served next. */
  readonly #queued = new Map<string, Asked[]>();
  #retry: Timer | undefined;

  constructor(o: NameCacheOptions) {
    this.#clock = o.clock;
    this.#lookup = o.lookup;
    this.#ttlMs = o.ttlMs ?? NAME_CACHE_MS;
    this.#failMs = Math.min(o.failMs ?? FAILURE_MS, this.#ttlMs);
    this.#lookupMs = o.lookupMs ?? LOOKUP_MS;
    this.#max = o.max ?? NAME_CACHE_MAX;
    this.#queueMax = o.queuePerKey ?? LOOKUP_QUEUE_PER_KEY;
    this.#gate = o.gate ?? new LookupGate();
  }

  /** The addresses of `host` while its answer is fresh (no call, no promise), else undefined. */
  get(host: string): string[] | undefined {
    return this.#fresh(host)?.addresses;
  }

  /**
   * Resolve `host` for key `who` and keep the answer; DialError ERR_RESOLVE when it has no
   * address, failed a moment ago, timed out (lookupMs) or `who` has too many lookups waiting.
   */
  resolve(host: string, who = ''): Promise<string[]> {
    const e = this.#fresh(host);
    if (e) return e.addresses ? Promise.resolve(e.addresses) : Promise.reject(unresolved());
    return new Promise((ok, fail) => {
      let set = this.#running.get(host);
      let asked: Asked | undefined;
      if (!set) {
        const q = this.#queued.get(who) ?? [];
        asked = q.find((a) => a.host === host);
        if (!asked) {
          if (q.length >= this.#queueMax)
            return fail(new DialError('ERR_RESOLVE', 'too many name lookups waiting'));
          asked = { host, who, waiters: new Set() };
          q.push(asked);
          this.#queued.set(who, q);
        }
        set = asked.waiters;
      }
      const w: Waiter = { set, asked, ok, fail };
      set.add(w);
      if (this.#lookupMs > 0) {
        w.timer = this.#clock.setTimeout(() => this.#timedOut(w), this.#lookupMs);
        w.timer.unref?.();
      }
      this.#pump();
    });
  }

  /** A Lookup served from the cache for key `who` (dialWith's, for the paths not dialling in the addon). */
  lookupFor(who = ''): Lookup {
    return async (host) => {
      const addresses = this.get(host) ?? (await this.resolve(host, who));
      return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };
  }

  /** A Lookup served from the cache, for no key in particular. */
  readonly lookup: Lookup = this.lookupFor();

  /** Names held now, answers and failures (tests). */
  get size(): number {
    return this.#answers.size;
  }

  #fresh(host: string): { addresses: string[] | undefined } | undefined {
    const e = this.#answers.get(host);
    if (e === undefined) return undefined;
    if (this.#clock.now() < e.until) return e;
    this.#answers.delete(host);
    return undefined;
  }

  #timedOut(w: Waiter): void {
    w.set.delete(w);
    w.fail(new DialError('ERR_RESOLVE', 'destination name lookup timed out'));
    const a = w.asked;
    if (!a || a.waiters.size > 0) return;
    const q = this.#queued.get(a.who); // nobody waits for it any more: it leaves the queue
    const i = q ? q.indexOf(a) : -1;
    if (i < 0) return;
    q!.splice(i, 1);
    if (q!.length === 0) this.#queued.delete(a.who);
  }

  /** Start what the gate lets start, one name per key in turn. */
  #pump(): void {
    let passed = 0; // keys in a row that could not start anything
    while (passed < this.#queued.size) {
      const [who, q] = this.#queued.entries().next().value!;
      const r = this.#start(q[0]!);
      if (r === 2) break; // every slot busy: a lookup's end pumps again
      this.#queued.delete(who);
      if (r === 0) {
        q.shift();
        passed = 0;
      } else passed++;
      if (q.length > 0) this.#queued.set(who, q); // to the back: the next key goes first
    }
    // Slots held by another worker's lookups free without telling this one: look again soon.
    if (this.#queued.size > 0 && this.#retry === undefined) {
      this.#retry = this.#clock.setTimeout(() => {
        this.#retry = undefined;
        this.#pump();
      }, 25);
      this.#retry.unref?.();
    }
  }

  /** Look `a` up, or settle it from what is known now (0); 1/2: the gate said no. */
  #start(a: Asked): Admission {
    if (a.waiters.size === 0) return 0;
    const known = this.#fresh(a.host);
    if (known) return (this.#settle(a.waiters, known.addresses), 0);
    const running = this.#running.get(a.host);
    if (running) {
      for (const w of a.waiters) [w.set, w.asked] = [running, undefined];
      for (const w of a.waiters) running.add(w);
      return 0;
    }
    const r = this.#gate.take(a.who);
    if (r !== 0) return r;
    this.#running.set(a.host, a.waiters);
    for (const w of a.waiters) w.asked = undefined;
    const done = (addresses: string[] | undefined): void => {
      this.#gate.give(a.who);
      const waiters = this.#running.get(a.host)!;
      this.#running.delete(a.host);
      this.#keep(a.host, addresses);
      this.#settle(waiters, addresses);
      this.#pump();
    };
    resolveName(a.host, this.#lookup).then(done, () => done(undefined));
    return 0;
  }

  #settle(waiters: Set<Waiter>, addresses: string[] | undefined): void {
    for (const w of waiters) {
      if (w.timer !== undefined) this.#clock.clearTimeout(w.timer);
      if (addresses) w.ok(addresses);
      else w.fail(unresolved());
    }
    waiters.clear();
  }

  #keep(host: string, addresses: string[] | undefined): void {
    const ms = addresses ? this.#ttlMs : this.#failMs;
    if (ms <= 0 || this.#max <= 0) return;
    this.#answers.delete(host); // a refreshed answer is the newest
    if (this.#answers.size >= this.#max) this.#answers.delete(this.#answers.keys().next().value!);
    this.#answers.set(host, { addresses, until: this.#clock.now() + ms });
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
  /** The access key's id: lookups are queued and limited per key (name-lookups.ts). */
  readonly who?: string | undefined;
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
 * rule applied first, within `connectMs` from now for the lookup and every connect (as dialWith;
 * each address gets its share of what is left, attemptDeadline):
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
  // Dropped once the last address has started (or none is left): `start` holds what the
  // connection's first call brought (its first read, up to 64 KiB), which a held connection must
  // not keep for its life through this closure (review17).
  let startNext: RelayStart | undefined = start;
  /** Start the next address that connects or is pending; the error to fail with when none is left. */
  const next = (): DialError | undefined => {
    while (startNext !== undefined && at < queue.length && clock.now() < deadline) {
      try {
        const now = clock.now();
        const ends = attemptDeadline(now, deadline, queue.length - at);
        const started = startNext(queue[at++]!, address.port, ends - now);
        if (at === queue.length) startNext = undefined;
        owner.started(started);
        return undefined;
      } catch (err) {
        last = err;
      }
    }
    startNext = undefined;
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
    cache.resolve(address.host, owner.who).then(
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
