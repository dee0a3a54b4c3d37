/**
 * Caps on connections that have not authenticated: accepted, no key found yet, or refused and
 * held by the uniform reaction until the peer closes or the pre-relay deadline (one idle timeout).
 * Each costs a descriptor and some memory for up to that deadline, so without a cap one address
 * could hold as many as the descriptor limit allows.
 *
 * Over a cap the OLDEST pending connection goes (of that address when the address is over its
 * cap, else of all), closed exactly as the pre-relay deadline closes it (a FIN after everything
 * the peer sent was read); a new connection is never refused. A real client authenticates with
 * its first packet (one round trip), so it is never the oldest: clients behind one carrier NAT
 * keep connecting while a flood from their address only evicts its own held connections — where
 * refusing new connections at a cap would let one flooder lock out everyone behind its address.
 * nginx does the same when it runs short of connections (it closes its idle keep-alive ones
 * first). What a prober learns: only by holding more than the cap from one address (or more
 * than the total from all of them) does it see one of its own held connections closed early,
 * with the deadline's FIN; below the caps nothing differs. docs/probing-defenses.md.
 *
 * IPv6 addresses count by their /64 (one host usually has a whole /64 to pick addresses from);
 * an IPv4-mapped address counts as its IPv4 address.
 */

import { envSwitch } from '../shared/env.js';

/** Most pending connections of one address (an IPv6 /64); 0: no cap. */
export const DEFAULT_MAX_PENDING_PER_ADDRESS = 512;
/** Most pending connections in all; 0: no cap. */
export const DEFAULT_MAX_PENDING = 8192;

export interface PendingCaps {
  /** Default DEFAULT_MAX_PENDING_PER_ADDRESS; 0 turns the per-address cap off. */
  perAddress?: number | undefined;
  /** Default DEFAULT_MAX_PENDING; 0 turns the overall cap off. */
  total?: number | undefined;
}

/** One pending connection: remove() it once it authenticated or closed. */
export interface PendingEntry {
  remove(): void;
}

/** One pending connection, in the list of all (oldest first) and in its address's list. */
class Entry implements PendingEntry {
  prev: Entry | undefined;
  next: Entry | undefined;
  prevSame: Entry | undefined;
  nextSame: Entry | undefined;
  live = true;
  constructor(
    readonly limits: PendingLimits,
    readonly address: AddressList | undefined,
    readonly evict: () => void,
  ) {}
  remove(): void {
    this.limits.remove(this);
  }
}

/** The pending connections of one address, oldest first. */
interface AddressList {
  readonly key: string;
  head: Entry | undefined;
  tail: Entry | undefined;
  count: number;
}

/** The key a client address counts under: an IPv4 address, or an IPv6 address's /64. */
export function addressKey(address: string): string {
  if (!address.includes(':')) return address;
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7); // as Node gives them
  const lower = address.toLowerCase().replace(/%.*$/, '');
  if (lower.startsWith('::ffff:') && lower.includes('.')) return lower.slice(7);
  const [head = '', tail] = lower.split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  // A dotted IPv4 tail is two groups; only the first four groups name the /64.
  const width = (g: string[]): number => g.reduce((n, x) => n + (x.includes('.') ? 2 : 1), 0);
  const all =
    tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - width(h) - width(t))).fill('0'), ...t];
  return `${all
    .slice(0, 4)
    .map((g) => (g.includes('.') ? g : (parseInt(g, 16) || 0).toString(16)))
    .join(':')}::/64`;
}

export class PendingLimits {
  readonly perAddress: number;
  readonly total: number;
  /** Every pending connection, oldest first (intrusive lists: no allocation but the entry). */
  #head: Entry | undefined;
  #tail: Entry | undefined;
  #size = 0;
  readonly #byAddress = new Map<string, AddressList>();
  /** Connections closed to keep within the caps (tests, metrics). */
  evicted = 0;

  constructor(caps: PendingCaps = {}) {
    this.perAddress = capValue(caps.perAddress, DEFAULT_MAX_PENDING_PER_ADDRESS, 'perAddress');
    this.total = capValue(caps.total, DEFAULT_MAX_PENDING, 'total');
  }

  /** Pending connections now. */
  get size(): number {
    return this.#size;
  }

  /**
   * A connection from `address` ('' or undefined: unknown, counted only in the total) is pending;
   * `evict` closes it should a cap need its place (called at most once, after its removal).
   */
  add(address: string | undefined, evict: () => void): PendingEntry {
    let list: AddressList | undefined;
    if (this.perAddress > 0 && address) {
      const key = addressKey(address);
      list = this.#byAddress.get(key);
      if (!list) this.#byAddress.set(key, (list = { key, head: undefined, tail: undefined, count: 0 }));
    }
    const e = new Entry(this, list, evict);
    e.prev = this.#tail;
    if (this.#tail) this.#tail.next = e;
    else this.#head = e;
    this.#tail = e;
    this.#size++;
    if (list) {
      e.prevSame = list.tail;
      if (list.tail) list.tail.nextSame = e;
      else list.head = e;
      list.tail = e;
      if (++list.count > this.perAddress) this.#evict(list.head!);
    }
    if (this.total > 0 && this.#size > this.total) this.#evict(this.#head!);
    return e;
  }

  /** Entry.remove(): gone from both lists (once). */
  remove(e: Entry): boolean {
    if (!e.live) return false;
    e.live = false;
    if (e.prev) e.prev.next = e.next;
    else this.#head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.#tail = e.prev;
    this.#size--;
    const list = e.address;
    if (list) {
      if (e.prevSame) e.prevSame.nextSame = e.nextSame;
      else list.head = e.nextSame;
      if (e.nextSame) e.nextSame.prevSame = e.prevSame;
      else list.tail = e.prevSame;
      if (--list.count === 0) this.#byAddress.delete(list.key);
    }
    e.prev = e.next = e.prevSame = e.nextSame = undefined;
    return true;
  }

  #evict(e: Entry): void {
    if (!this.remove(e)) return;
    this.evicted++;
    e.evict();
  }
}

function capValue(v: number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 0)
    throw new RangeError(`pending connection cap ${what} must be an integer >= 0`);
  return v;
}

/**
 * ServerOptions.pending as caps, or undefined for none: false, both caps 0, or
 * LADDER_PENDING_CAPS=0 (the switch for A/B measurements).
 */
export function pendingLimitsFor(
  opt: PendingLimits | PendingCaps | false | undefined,
): PendingLimits | undefined {
  if (opt === false || !envSwitch('LADDER_PENDING_CAPS')) return undefined;
  const p = opt instanceof PendingLimits ? opt : new PendingLimits(opt);
  return p.perAddress === 0 && p.total === 0 ? undefined : p;
}

/** The pending entries of a server's connections, by connection. */
export class PendingConnections<C extends object> {
  readonly #of = new Map<C, PendingEntry>();
  constructor(
    readonly limits: PendingLimits,
    readonly evict: (c: C) => void,
  ) {}

  /** `c` counts against the caps until remove(c) (it authenticated or closed). */
  add(c: C, address: string | undefined): void {
    this.#of.set(
      c,
      this.limits.add(address, () => this.evict(c)),
    );
  }

  remove(c: C): void {
    const entry = this.#of.get(c);
    if (!entry) return;
    this.#of.delete(c);
    entry.remove();
  }
}
