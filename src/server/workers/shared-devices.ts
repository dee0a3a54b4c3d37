/**
 * The device-limit table of a process (docs/limits.md, "Device limits"): which client addresses
 * use each limited key now, held in SharedArrayBuffers so every data-plane worker and every
 * server on the main thread (the web front, extra key ports) count one set of addresses.
 *
 * Nothing here is an address: an entry holds a keyed hash (HMAC-SHA-256 with a random key made
 * once per process, cut to 64 bits) of the key id and the address group, the number of open
 * connections or UDP sessions of that key from it, and when they last moved bytes. An entry goes
 * as soon as its last connection closes. A key row holds the key id (for the counts the
 * management plane and the metrics read) and its refusal counts.
 *
 * One futex-style lock (Atomics) guards the structure; the critical sections are a scan of the
 * entries in use (limited keys' addresses only), nothing that allocates or throws. Activity
 * (`touch`) is a plain store of a time, outside the lock: a torn or late value only moves when
 * an address stops counting by a moment.
 */
import { createHmac, randomBytes } from 'node:crypto';

/** What a worker is handed to open the process's table (workerData). */
export interface SharedDevicesBuffers {
  readonly ints: SharedArrayBuffer;
  readonly times: SharedArrayBuffer;
  /** The hashing key (per process, random). */
  readonly secret: Uint8Array;
}

/** Addresses of limited keys in use at once in the process; past it a new one is let through. */
export const DEVICE_ENTRIES = 16384;
/** Limited keys the table can tell apart; past it a further key's limit is not enforced. */
export const DEVICE_KEYS = 4096;
/** 1 ms waits for a held lock before it is taken over (its holder is gone). */
const LOCK_TAKEOVER_WAITS = 2000;
const ID_BYTES = 256;

const H_LOCK = 0;
const H_HIGH = 1; // entries in use are below this index
const H_ROWS = 2; // key rows allocated
const HEADER = 8;
// A key row: tag (2), refusals in all, refusals in the current window, id length, id bytes.
const R_TAG = 0;
const R_TOTAL = 2;
const R_WINDOW = 3;
const R_IDLEN = 4;
const R_ID = 5;
const ROW = R_ID + ID_BYTES / 4;
// An entry: key row + 1 (0: free), address tag (2), open connections and sessions.
const E_ROW = 0;
const E_TAG = 1;
const E_CONNS = 3;
const ENTRY = 4;
const ROWS_AT = HEADER;
const ENTRIES_AT = ROWS_AT + DEVICE_KEYS * ROW;
// Float64 times: per row the start of its log window, then per entry its last activity.
const T_ENTRIES = DEVICE_KEYS;

/** admit()'s answers besides an entry index. */
export const REFUSED = -1;
export const TABLE_FULL = -2;

export function createSharedDevices(): SharedDevicesBuffers {
  return {
    ints: new SharedArrayBuffer((ENTRIES_AT + DEVICE_ENTRIES * ENTRY) * 4),
    times: new SharedArrayBuffer((DEVICE_KEYS + DEVICE_ENTRIES) * 8),
    secret: randomBytes(32),
  };
}

/** Counts without addresses: per key id, addresses counting now and refusals since the start. */
export interface DeviceCounts {
  readonly inUse: Map<string, number>;
  readonly refused: Map<string, number>;
}

export class SharedDevices {
  readonly buffers: SharedDevicesBuffers;
  readonly #i: Int32Array;
  readonly #t: Float64Array;
  /** Key id -> row, on this thread (rows are never freed). */
  readonly #rows = new Map<string, number>();

  constructor(buffers: SharedDevicesBuffers) {
    this.buffers = buffers;
    this.#i = new Int32Array(buffers.ints);
    this.#t = new Float64Array(buffers.times);
  }

  #tag(text: string): [number, number] {
    const d = createHmac('sha256', this.buffers.secret).update(text).digest();
    return [d.readInt32LE(0), d.readInt32LE(4)];
  }

  #lock(): void {
    const i = this.#i;
    for (let n = 0; Atomics.compareExchange(i, H_LOCK, 0, 1) !== 0; n++) {
      // A holder keeps the lock for microseconds; one still held after ~2 s of 1 ms waits belongs
      // to a thread that ended while holding it (a terminated or out-of-memory worker): take it
      // over rather than hang every thread that counts devices.
      if (n > 64 + LOCK_TAKEOVER_WAITS) {
        Atomics.store(i, H_LOCK, 1);
        return;
      }
      if (n > 64) Atomics.wait(i, H_LOCK, 1, 1);
    }
  }

  #unlock(): void {
    Atomics.store(this.#i, H_LOCK, 0);
    Atomics.notify(this.#i, H_LOCK, 1);
  }

  /** The key's row (found or made); -1 when the rows are all taken. */
  row(keyId: string): number {
    const known = this.#rows.get(keyId);
    if (known !== undefined) return known;
    const [a, b] = this.#tag(`k\u0000${keyId}`);
    const i = this.#i;
    this.#lock();
    let row = -1;
    try {
      const n = i[H_ROWS]!;
      for (let r = 0; r < n; r++) {
        const at = ROWS_AT + r * ROW;
        if (i[at + R_TAG] === a && i[at + R_TAG + 1] === b) {
          row = r;
          break;
        }
      }
      if (row < 0 && n < DEVICE_KEYS) {
        row = n;
        const at = ROWS_AT + row * ROW;
        i[at + R_TAG] = a;
        i[at + R_TAG + 1] = b;
        const id = Buffer.from(keyId, 'utf8');
        if (id.length <= ID_BYTES) {
          i[at + R_IDLEN] = id.length;
          new Uint8Array(this.buffers.ints, (at + R_ID) * 4, ID_BYTES).set(id);
        } else i[at + R_IDLEN] = -1; // too long to name in the counts: enforced all the same
        i[H_ROWS] = n + 1;
      }
    } finally {
      this.#unlock();
    }
    if (row >= 0) this.#rows.set(keyId, row);
    return row;
  }

  /** The hashed form of an address group under a key (the only form the table keeps). */
  addressTag(keyId: string, group: string): [number, number] {
    return this.#tag(`a\u0000${keyId}\u0000${group}`);
  }

  /**
   * One more connection of `row` from the address `tag`: its entry's index, or REFUSED when
   * `limit` other addresses count (open, and active within `silentMs`) and this one does not,
   * or TABLE_FULL. An address counting already is always let in.
   */
  admit(row: number, tag: [number, number], limit: number, now: number, silentMs: number): number {
    const [i, t] = [this.#i, this.#t];
    const want = row + 1;
    this.#lock();
    try {
      let mine = -1;
      let free = -1;
      let counting = 0;
      const high = i[H_HIGH]!;
      for (let e = 0; e < high; e++) {
        const at = ENTRIES_AT + e * ENTRY;
        const r = i[at + E_ROW]!;
        if (r === 0) {
          if (free < 0) free = e;
          continue;
        }
        if (r !== want) continue;
        if (i[at + E_TAG] === tag[0] && i[at + E_TAG + 1] === tag[1]) mine = e;
        else if (now - t[T_ENTRIES + e]! < silentMs) counting++;
      }
      if (mine >= 0 && now - t[T_ENTRIES + mine]! < silentMs) {
        i[ENTRIES_AT + mine * ENTRY + E_CONNS]!++;
        t[T_ENTRIES + mine] = now;
        return mine;
      }
      if (counting >= limit) return REFUSED;
      if (mine < 0) {
        if (free < 0) {
          if (high >= DEVICE_ENTRIES) return TABLE_FULL;
          free = high;
          i[H_HIGH] = high + 1;
        }
        mine = free;
        const at = ENTRIES_AT + mine * ENTRY;
        i[at + E_ROW] = want;
        i[at + E_TAG] = tag[0];
        i[at + E_TAG + 1] = tag[1];
        i[at + E_CONNS] = 0;
      }
      i[ENTRIES_AT + mine * ENTRY + E_CONNS]!++;
      t[T_ENTRIES + mine] = now;
      return mine;
    } finally {
      this.#unlock();
    }
  }

  /** The entry's connections moved bytes at `now` (no lock: a time only). */
  touch(entry: number, now: number): void {
    const t = this.#t;
    if (t[T_ENTRIES + entry]! < now) t[T_ENTRIES + entry] = now;
  }

  /** One connection of the entry closed; the entry goes with its last one. */
  release(entry: number): void {
    const i = this.#i;
    this.#lock();
    try {
      const at = ENTRIES_AT + entry * ENTRY;
      if (i[at + E_ROW] === 0) return;
      if (--i[at + E_CONNS]! > 0) return;
      i[at + E_ROW] = 0;
      i[at + E_TAG] = 0;
      i[at + E_TAG + 1] = 0;
      let high = i[H_HIGH]!;
      while (high > 0 && i[ENTRIES_AT + (high - 1) * ENTRY + E_ROW] === 0) high--;
      i[H_HIGH] = high;
    } finally {
      this.#unlock();
    }
  }

  /**
   * Count a refusal of the key's row; returns the refusals of its log window when a line is due
   * (the window began `windowMs` or more ago, or never: then the window restarts), else 0.
   */
  refused(row: number, now: number, windowMs: number): number {
    const at = ROWS_AT + row * ROW;
    Atomics.add(this.#i, at + R_TOTAL, 1);
    Atomics.add(this.#i, at + R_WINDOW, 1);
    return this.due(row, now, windowMs);
  }

  /** The refusals waiting for a line, when one is due now (and the window restarts); else 0. */
  due(row: number, now: number, windowMs: number): number {
    const at = ROWS_AT + row * ROW;
    this.#lock();
    try {
      const start = this.#t[row]!;
      const n = this.#i[at + R_WINDOW]!;
      if (n === 0 || (start !== 0 && now - start < windowMs)) return 0;
      this.#i[at + R_WINDOW] = 0;
      this.#t[row] = now;
      return n;
    } finally {
      this.#unlock();
    }
  }

  /** When the key's log window began (0: never). */
  windowStart(row: number): number {
    return this.#t[row]!;
  }

  /** Per key id: addresses counting now (active within `silentMs`), refusals since the start. */
  counts(now: number, silentMs: number): DeviceCounts {
    const [i, t] = [this.#i, this.#t];
    const inUse = new Map<string, number>();
    const refused = new Map<string, number>();
    this.#lock();
    try {
      const rows = i[H_ROWS]!;
      const per = new Int32Array(rows);
      const high = i[H_HIGH]!;
      for (let e = 0; e < high; e++) {
        const r = i[ENTRIES_AT + e * ENTRY + E_ROW]!;
        if (r !== 0 && now - t[T_ENTRIES + e]! < silentMs) per[r - 1]!++;
      }
      for (let r = 0; r < rows; r++) {
        const at = ROWS_AT + r * ROW;
        const len = i[at + R_IDLEN]!;
        if (len < 0) continue;
        const id = Buffer.from(this.buffers.ints, (at + R_ID) * 4, len).toString('utf8');
        inUse.set(id, per[r]!);
        refused.set(id, i[at + R_TOTAL]!);
      }
    } finally {
      this.#unlock();
    }
    return { inUse, refused };
  }
}

let processTable: SharedDevices | undefined;

/** The process's table: made on first use on the main thread, handed to workers (useDevices). */
export function processDevices(): SharedDevices {
  return (processTable ??= new SharedDevices(createSharedDevices()));
}

/** A worker thread adopts the main thread's table (before its server starts). */
export function useDevices(buffers: SharedDevicesBuffers): SharedDevices {
  processTable = new SharedDevices(buffers);
  return processTable;
}
