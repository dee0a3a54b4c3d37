/**
 * How many name lookups a process runs at once, and how many one access key may hold (names.ts
 * NameCache queues the rest).
 *
 * getaddrinfo runs on libuv's thread pool: UV_THREADPOOL_SIZE threads (4 by default) per
 * process, shared by every data-plane worker and by the process's file, crypto and zlib work. A
 * lookup of a name whose nameservers never answer holds a thread for the resolver's whole
 * timeout (resolv.conf: 5 s per try, 2 tries per nameserver), and a JS timeout does not free it.
 * So a key holder asking for a stream of such names (distinct ones: no cache helps) could hold
 * every thread and stall all other users' names. The gate therefore admits at most `slots`
 * lookups at once in the process (the pool's size less one, so one thread is always left to the
 * rest of the process) and at most `perKey` of them (slots - 1, at least 1) for one key, so one
 * key always leaves a thread to the others. The counts live in one SharedArrayBuffer per process
 * (name-cache-env.ts processLookupGate): a row for the main thread's caches, a row per worker (a
 * restarted worker's row is zeroed: a crash leaks no slot; so are a closed pool's); a key is
 * counted in one of LOOKUP_GATE_KEYS buckets by a hash of its id (two keys in one bucket only
 * share their limit).
 */
import { LOOKUP_GATE_KEYS, LOOKUP_GATE_ROW, processLookupGate } from './name-cache-env.js';

/** Lookups running at once in a process: the thread pool's size less one (at least 1). */
export function lookupSlots(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.UV_THREADPOOL_SIZE);
  const pool = Number.isSafeInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
  return Math.max(1, pool - 1);
}

/** What take() says: 0 taken, 1 this key is at its limit, 2 every slot is busy. */
export type Admission = 0 | 1 | 2;

export class LookupGate {
  readonly #all: Int32Array;
  readonly #rows: number;
  readonly #mine: number;
  readonly slots: number;
  readonly perKey: number;

  /**
   * `row`: this thread's counters in `memory` (the others' are only read). The default is the
   * main thread's row of the process's memory, which every name cache of that thread shares.
   */
  constructor(memory: SharedArrayBuffer = processLookupGate(), row = 0, slots: number = lookupSlots()) {
    this.#all = new Int32Array(memory);
    this.#rows = this.#all.length / LOOKUP_GATE_ROW;
    this.#mine = Math.min(row, this.#rows - 1) * LOOKUP_GATE_ROW; // a row past the end: the last
    this.slots = slots;
    this.perKey = Math.max(1, slots - 1);
  }

  /**
   * Take a slot for a lookup of `who` (a key id; '' for none). The rows are summed, then this
   * worker's is added to: two workers taking at the same instant may both pass (one over).
   */
  take(who: string): Admission {
    const b = bucket(who);
    if (this.#sum(0) >= this.slots) return 2;
    if (this.#sum(b) >= this.perKey) return 1;
    Atomics.add(this.#all, this.#mine, 1);
    Atomics.add(this.#all, this.#mine + b, 1);
    return 0;
  }

  /** The lookup take() admitted ended. */
  give(who: string): void {
    Atomics.sub(this.#all, this.#mine + bucket(who), 1);
    Atomics.sub(this.#all, this.#mine, 1);
  }

  /** Lookups running in the process (tests). */
  get running(): number {
    return this.#sum(0);
  }

  #sum(column: number): number {
    let n = 0;
    for (let r = 0; r < this.#rows; r++) n += Atomics.load(this.#all, r * LOOKUP_GATE_ROW + column);
    return n;
  }
}

/** A key id's counter (1..LOOKUP_GATE_KEYS): FNV-1a over its UTF-16 units. */
function bucket(who: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < who.length; i++) h = Math.imul(h ^ who.charCodeAt(i), 0x01000193);
  return 1 + ((h >>> 0) % LOOKUP_GATE_KEYS);
}
