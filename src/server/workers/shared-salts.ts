/**
 * The replay filters over SharedArrayBuffers, so every data-plane worker (and the main thread,
 * which loads and saves them) sees one set of salts: a salt one worker accepted is refused by
 * every other worker exactly as by the first (D5 across threads).
 *
 * Each filter is two open-addressing hash tables ("generations") in one SharedArrayBuffer, guarded
 * by one futex-style lock (Atomics.wait/notify; the critical sections are a hash and a few probes,
 * nothing that allocates or can throw half-way). A slot belongs to a table's current generation
 * only when its stamp equals the table's stamp, so dropping a whole generation is one store (no
 * clearing, no rehash) and the pages of an idle server are never touched.
 * A slot holds its stamp and the salt's entry in its table's log, where salts (and the window's
 * expiry times) are written in arrival order: an insertion touches one random page of slots and
 * the log's current page, not a random page of salts as well. Resident memory then grows by about
 * 33 bytes a salt plus the slots' pages, where salts in the slots made every new connection fault
 * in a fresh 4 KiB page until the whole table was resident (4.6 MiB per SIP004 filter at the
 * default capacity, 2.3 MiB now; docs/benchmarks.md, "Idle connections").
 *
 * - `SharedSaltFilter` keeps SaltFilter's contract (exact; two generations of at most `capacity`
 *   salts; the older dropped whole when the newer is full). serialize() writes the same LSF1 form
 *   (older generation first, each in arrival order).
 * - `SharedSaltWindow` keeps SaltWindow's contract (exact; a salt is remembered for `ttlMs`): one
 *   table per `ttlMs` epoch, the table of epoch e-2 reused for epoch e. A table holds at most
 *   `windowCapacity` salts per epoch; when it is full, add() answers "seen" (the connection is
 *   refused like a replay: fail closed, never accept a salt it could not remember).
 *
 * Both subclass the in-process classes so the codecs and the connection code take them unchanged
 * (the base classes' own storage stays empty and unused).
 */
import { randomInt } from 'node:crypto';
import { SaltFilter, SaltWindow, SALT_TTL_MS } from '../../protocol/shadowsocks/replay.js';
import type { ReplayFilters } from '../replay-state.js';

const MAX_SALT = 32;
const STRIDE = 1 + MAX_SALT; // a log entry: length byte, salt bytes
const SLOT_INTS = 2; // a slot: its stamp, then its entry in the table's log
const HEADER_INTS = 16;
const H_LOCK = 0;
const H_SEED = 1;
const H_STAMP = 2; // 2, 3: the stamp of table 0, 1 (0 = unused)
const H_COUNT = 4; // 4, 5: salts in table 0, 1
const H_CHANGES = 6;
const H_CURRENT = 7; // the filter's current table; the window's newest epoch + 1
const H_FULL = 8; // window: salts refused because the epoch's table was full
const H_SLOTS = 9;
const H_CAPACITY = 10;
/** The lock's state while the addon holds it (Tables.lock). */
const HELD_NATIVE = 3;
const NATIVE_SPINS = 200;

/** The buffers of one server's replay filters, as posted to its workers. */
export interface SharedReplayBuffers {
  readonly client: SharedArrayBuffer;
  readonly server: SharedArrayBuffer;
  readonly window: SharedArrayBuffer;
}

/** Default salts per 60-s epoch of the shared 2022 window (about 2,200 new 2022 connections/s). */
export const DEFAULT_WINDOW_CAPACITY = 131_072;

function slotsFor(capacity: number): number {
  let n = 16;
  while (n < capacity * 2) n *= 2; // load factor at most 1/2: short probe runs
  return n;
}

function allocate(capacity: number, timed: boolean): SharedArrayBuffer {
  const slots = slotsFor(capacity);
  const bytes =
    HEADER_INTS * 4 + 2 * slots * SLOT_INTS * 4 + (timed ? 2 * capacity * 8 : 0) + 2 * capacity * STRIDE;
  const sab = new SharedArrayBuffer(bytes);
  const h = new Int32Array(sab, 0, HEADER_INTS);
  h[H_SEED] = randomInt(1, 0x7fffffff);
  h[H_SLOTS] = slots;
  h[H_CAPACITY] = capacity;
  return sab;
}

/** New, empty buffers for one port's filters (the main thread makes them before the workers). */
export function createSharedReplay(
  capacity: number,
  windowCapacity = DEFAULT_WINDOW_CAPACITY,
): SharedReplayBuffers {
  return {
    client: allocate(capacity, false),
    server: allocate(capacity, false),
    window: allocate(windowCapacity, true),
  };
}

/**
 * Two tables of salts in one buffer, and the lock. Table t's salts are entries t * capacity + i
 * (i < its count, in arrival order) of the log; a slot refers to one by i.
 */
class Tables {
  readonly h: Int32Array;
  readonly slots: number;
  readonly capacity: number;
  /** Per slot: [stamp, i]. */
  readonly slot: Int32Array;
  /** Per log entry (the window's): when the salt expires. */
  readonly expiry: Float64Array | undefined;
  readonly log: Uint8Array;

  constructor(sab: SharedArrayBuffer, timed: boolean) {
    this.h = new Int32Array(sab, 0, HEADER_INTS);
    const slots = (this.slots = this.h[H_SLOTS]!);
    const capacity = (this.capacity = this.h[H_CAPACITY]!);
    let o = HEADER_INTS * 4;
    this.slot = new Int32Array(sab, o, 2 * slots * SLOT_INTS);
    o += 2 * slots * SLOT_INTS * 4;
    if (timed) {
      this.expiry = new Float64Array(sab, o, 2 * capacity);
      o += 2 * capacity * 8;
    }
    this.log = new Uint8Array(sab, o, 2 * capacity * STRIDE);
  }

  /**
   * Futex mutex (Drepper's three states: 0 free, 1 locked, 2 locked with waiters), and a fourth:
   * 3, held by the addon (native/shared_salts.h: the accept's checks). The addon only tries (0 to
   * 3, never waiting) and frees it with a store of 0 that wakes no one, since V8 keeps its
   * waiters to itself: a thread that finds 3 spins a little (the addon's hold is a hash and a few
   * probes) and then sleeps in 1 ms timed waits, never on a value the addon set.
   */
  lock(): void {
    const h = this.h;
    let c = Atomics.compareExchange(h, H_LOCK, 0, 1);
    if (c === 0) return;
    do {
      if (c === HELD_NATIVE) {
        for (let i = 0; i < NATIVE_SPINS && Atomics.load(h, H_LOCK) === HELD_NATIVE; i++);
        Atomics.wait(h, H_LOCK, HELD_NATIVE, 1);
      } else if (c === 2 || Atomics.compareExchange(h, H_LOCK, 1, 2) !== 0) Atomics.wait(h, H_LOCK, 2, 50);
    } while ((c = Atomics.compareExchange(h, H_LOCK, 0, 2)) !== 0);
  }

  unlock(): void {
    const h = this.h;
    if (Atomics.sub(h, H_LOCK, 1) !== 1) {
      Atomics.store(h, H_LOCK, 0);
      Atomics.notify(h, H_LOCK, 1);
    }
  }

  /** The salt's hash (the same for both tables: an operation computes it once and passes it on). */
  hash(salt: Uint8Array): number {
    let h = this.h[H_SEED]! ^ salt.length;
    for (let i = 0; i < salt.length; i += 4) {
      let k =
        (salt[i] ?? 0) | ((salt[i + 1] ?? 0) << 8) | ((salt[i + 2] ?? 0) << 16) | ((salt[i + 3] ?? 0) << 24);
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      h ^= Math.imul(k, 0x1b873593);
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /**
   * The slot of `salt` in table `t` (>= 0), or -(free slot + 1) where it would go. Runs end at a
   * slot whose stamp is not the table's (a slot of a dropped generation is free).
   */
  find(t: number, salt: Uint8Array, hash: number): number {
    const stamp = this.h[H_STAMP + t]!;
    const mask = this.slots - 1;
    const base = t * this.slots;
    for (let i = hash & mask, n = 0; n < this.slots; i = (i + 1) & mask, n++) {
      const s = base + i;
      if (stamp === 0 || this.slot[s * SLOT_INTS] !== stamp) return -(s + 1);
      if (this.#equals(this.entry(s), salt)) return s;
    }
    return -(this.slots * 2 + 1); // a full table: cannot happen at load <= 1/2
  }

  /** The log entry of (live) slot `s`. */
  entry(s: number): number {
    const t = s < this.slots ? 0 : 1;
    return t * this.capacity + this.slot[s * SLOT_INTS + 1]!;
  }

  #equals(e: number, salt: Uint8Array): boolean {
    const b = this.log;
    const o = e * STRIDE;
    if (b[o] !== salt.length) return false;
    for (let i = 0; i < salt.length; i++) if (b[o + 1 + i] !== salt[i]) return false;
    return true;
  }

  /**
   * Write `salt` into free slot `s` of table `t` and the table's log; returns its log entry. The
   * callers put only while the table holds fewer than `capacity` salts.
   */
  put(t: number, s: number, salt: Uint8Array): number {
    const i = this.h[H_COUNT + t]!;
    const e = t * this.capacity + i;
    const o = e * STRIDE;
    this.log[o] = salt.length;
    this.log.set(salt, o + 1);
    this.slot[s * SLOT_INTS + 1] = i;
    this.slot[s * SLOT_INTS] = this.h[H_STAMP + t]!;
    this.h[H_COUNT + t] = i + 1;
    this.h[H_CHANGES]!++;
    return e;
  }

  /** Start table `t` over as `stamp` (its old slots become free at once). */
  reset(t: number, stamp: number): void {
    this.h[H_STAMP + t] = stamp;
    this.h[H_COUNT + t] = 0;
    this.h[H_CHANGES]!++;
  }

  /** The salts of table `t` with their log entries, in arrival order. */
  *entries(t: number): Generator<[entry: number, salt: Buffer]> {
    const stamp = this.h[H_STAMP + t]!;
    if (stamp === 0) return;
    for (let i = 0, n = this.h[H_COUNT + t]!; i < n; i++) {
      const e = t * this.capacity + i;
      const o = e * STRIDE;
      yield [e, Buffer.from(this.log.subarray(o + 1, o + 1 + this.log[o]!))];
    }
  }
}

function checkSalt(salt: Uint8Array): void {
  if (salt.length === 0 || salt.length > MAX_SALT)
    throw new RangeError(`salt length ${salt.length} out of 1..${MAX_SALT}`);
}

/** SaltFilter (SIP004 salts: two exact generations) shared by every thread holding the buffer. */
export class SharedSaltFilter extends SaltFilter {
  readonly #t: Tables;
  /** The whole buffer, for the addon's checks (native/shared_salts.h works on the same bytes). */
  readonly bytes: Uint8Array;

  constructor(sab: SharedArrayBuffer) {
    const t = new Tables(sab, false);
    super(t.capacity);
    this.#t = t;
    this.bytes = new Uint8Array(sab);
    if (t.h[H_STAMP] === 0) {
      t.lock();
      if (t.h[H_STAMP] === 0) t.reset(0, 1);
      t.unlock();
    }
  }

  override has(salt: Uint8Array): boolean {
    checkSalt(salt);
    const t = this.#t;
    t.lock();
    try {
      const h = t.hash(salt);
      return t.find(0, salt, h) >= 0 || t.find(1, salt, h) >= 0;
    } finally {
      t.unlock();
    }
  }

  override add(salt: Uint8Array): void {
    this.checkAndAdd(salt);
  }

  override checkAndAdd(salt: Uint8Array): boolean {
    checkSalt(salt);
    const t = this.#t;
    t.lock();
    try {
      const cur = t.h[H_CURRENT]!;
      const prev = 1 - cur;
      const h = t.hash(salt);
      if (t.find(prev, salt, h) >= 0) return false;
      let at = t.find(cur, salt, h);
      if (at >= 0) return false;
      if (t.h[H_COUNT + cur]! >= t.capacity) {
        // The current generation is full: it becomes the previous one, the old previous is dropped.
        t.reset(prev, Math.max(t.h[H_STAMP]!, t.h[H_STAMP + 1]!) + 1);
        t.h[H_CURRENT] = prev;
        at = t.find(prev, salt, h);
        t.put(prev, -at - 1, salt);
      } else t.put(cur, -at - 1, salt);
      return true;
    } finally {
      t.unlock();
    }
  }

  override get changes(): number {
    return Atomics.load(this.#t.h, H_CHANGES);
  }

  override get size(): number {
    const h = this.#t.h;
    return Atomics.load(h, H_COUNT) + Atomics.load(h, H_COUNT + 1);
  }

  override clear(): void {
    const t = this.#t;
    t.lock();
    const next = Math.max(t.h[H_STAMP]!, t.h[H_STAMP + 1]!) + 1;
    t.reset(0, next);
    t.reset(1, next + 1);
    t.h[H_CURRENT] = 0;
    t.unlock();
  }

  override serialize(): Buffer {
    const t = this.#t;
    const salts: Buffer[] = [];
    t.lock();
    try {
      const cur = t.h[H_CURRENT]!;
      for (const [, s] of t.entries(1 - cur)) salts.push(s);
      for (const [, s] of t.entries(cur)) salts.push(s);
    } finally {
      t.unlock();
    }
    const out = Buffer.allocUnsafe(8 + salts.reduce((n, s) => n + 1 + s.length, 0));
    out.write('LSF1', 0, 'latin1');
    out.writeUInt32BE(salts.length, 4);
    let o = 8;
    for (const s of salts) {
      out[o++] = s.length;
      o += s.copy(out, o);
    }
    return out;
  }

  /** Replace the contents with a loaded filter's salts (oldest first, as serialize() lists them). */
  replaceWith(f: SaltFilter): void {
    this.clear();
    const b = f.serialize();
    for (let o = 8, i = 0, n = b.readUInt32BE(4); i < n; i++) {
      const len = b[o]!;
      this.checkAndAdd(b.subarray(o + 1, o + 1 + len));
      o += 1 + len;
    }
  }
}

/** SaltWindow (2022 request salts of the last `ttlMs`) shared by every thread holding the buffer. */
export class SharedSaltWindow extends SaltWindow {
  readonly #t: Tables;

  constructor(sab: SharedArrayBuffer, ttlMs: number = SALT_TTL_MS) {
    super(ttlMs);
    this.#t = new Tables(sab, true);
  }

  /** Salts refused because an epoch's table was full (fail closed). */
  get refusedFull(): number {
    return Atomics.load(this.#t.h, H_FULL);
  }

  get changes(): number {
    return Atomics.load(this.#t.h, H_CHANGES);
  }

  /** The newest epoch (never goes back with the clock) and its table, made current. Locked. */
  #epoch(nowMs: number): number {
    const h = this.#t.h;
    const e = Math.max(Math.floor(nowMs / this.ttlMs), h[H_CURRENT]! - 1);
    if (h[H_STAMP + (e & 1)] !== e + 1) this.#t.reset(e & 1, e + 1);
    h[H_CURRENT] = e + 1;
    return e;
  }

  /** The live slot of `salt` (expiry after `nowMs`) in epoch e or e-1, else -1. Locked. */
  #live(salt: Uint8Array, e: number, nowMs: number, h: number): number {
    const t = this.#t;
    for (const ep of [e, e - 1]) {
      if (t.h[H_STAMP + (ep & 1)] !== ep + 1) continue;
      const s = t.find(ep & 1, salt, h);
      if (s >= 0 && t.expiry![t.entry(s)]! > nowMs) return s;
    }
    return -1;
  }

  override get size(): number {
    const h = this.#t.h;
    return Atomics.load(h, H_COUNT) + Atomics.load(h, H_COUNT + 1);
  }

  override prune(): void {
    // Nothing to do: an epoch's table is dropped whole when its number comes round again.
  }

  override has(salt: Uint8Array, nowMs: number): boolean {
    checkSalt(salt);
    const t = this.#t;
    t.lock();
    try {
      return this.#live(salt, this.#epoch(nowMs), nowMs, t.hash(salt)) >= 0;
    } finally {
      t.unlock();
    }
  }

  override add(salt: Uint8Array, nowMs: number): boolean {
    return this.#put(salt, nowMs, nowMs + this.ttlMs);
  }

  #put(salt: Uint8Array, nowMs: number, expiry: number): boolean {
    checkSalt(salt);
    const t = this.#t;
    t.lock();
    try {
      const e = this.#epoch(nowMs);
      const h = t.hash(salt);
      if (this.#live(salt, e, nowMs, h) >= 0) return false;
      const tab = e & 1;
      const at = t.find(tab, salt, h);
      if (at >= 0) {
        t.expiry![t.entry(at)] = expiry; // seen earlier in this epoch but expired (the clock stepped)
        t.h[H_CHANGES]!++;
        return true;
      }
      if (t.h[H_COUNT + tab]! >= t.capacity) {
        t.h[H_FULL]!++;
        return false;
      }
      t.expiry![t.put(tab, -at - 1, salt)] = expiry;
      return true;
    } finally {
      t.unlock();
    }
  }

  override export(nowMs: number): Array<[string, number]> {
    const t = this.#t;
    const out: Array<[string, number]> = [];
    t.lock();
    try {
      for (const tab of [0, 1]) {
        for (const [e, salt] of t.entries(tab)) {
          const exp = t.expiry![e]!;
          if (exp > nowMs) out.push([salt.toString('hex'), exp]);
        }
      }
    } finally {
      t.unlock();
    }
    return out.sort((a, b) => a[1] - b[1]);
  }

  override import(entries: Iterable<readonly [string, number]>, nowMs: number): void {
    for (const [hex, exp] of entries) if (exp > nowMs) this.#put(Buffer.from(hex, 'hex'), nowMs, exp);
  }

  /** Replace the contents with a loaded window's entries. */
  replaceWith(w: SaltWindow, nowMs: number): void {
    const t = this.#t;
    t.lock();
    t.reset(0, 0);
    t.reset(1, 0);
    t.h[H_CURRENT] = 0;
    t.unlock();
    this.import(w.export(nowMs), nowMs);
  }
}

/** The filters over `bufs`, in the form ReplayState takes (`filters`). */
export function sharedReplayFilters(bufs: SharedReplayBuffers): ReplayFilters {
  const clientSalts = new SharedSaltFilter(bufs.client);
  const serverSalts = new SharedSaltFilter(bufs.server);
  const salts2022 = new SharedSaltWindow(bufs.window);
  return {
    clientSalts,
    serverSalts,
    salts2022,
    sip004Bytes: [clientSalts.bytes, serverSalts.bytes],
    replace(client, server, window, nowMs) {
      clientSalts.replaceWith(client);
      serverSalts.replaceWith(server);
      if (window) salts2022.replaceWith(window, nowMs);
    },
    get changes() {
      return clientSalts.changes + serverSalts.changes + salts2022.changes;
    },
  };
}
