/**
 * The speed limits' token buckets (speed-limits.ts), one per key id and direction, in one
 * SharedArrayBuffer for the whole process: every data-plane worker, and every server on the main
 * thread (a managed server's web front and additional key ports), charges the same bucket for a
 * key, so a key's rate holds for all of its connections together, whichever thread and port
 * carries them. The main thread makes the buffer and hands it to each worker (WorkerInit), which
 * adopts it before its server starts.
 *
 * A bucket is kept as GCRA's "theoretical arrival time" (TAT, ms on the wall clock): charging n
 * bytes moves it to max(TAT, now) + n / rate, and the bucket is empty (the caller waits) while
 * TAT - now exceeds the burst's time. One number per direction, updated under a per-slot spin lock
 * (Atomics; the critical section is a few arithmetic operations, and it also runs on the main
 * thread, which may not Atomics.wait).
 *
 * A slot, once claimed by a key id (open addressing on an FNV-1a hash of the id, the id's bytes
 * compared), stays that key's: a key that comes back finds its slot again. The slot also holds the
 * key's counters for the metrics (time held back per direction, datagrams dropped), which the main
 * thread reads at a scrape (stats()). A full table (more limited keys than slots) gives a key a
 * bucket of this thread alone (the rate then holds per thread, not per process).
 */
const SLOTS = 4096;
const SLOT_BYTES = 128;
const MAX_ID = 72; // id bytes kept in a slot (56 + 72 = 128); a longer id is compared on these and its length
// Int32 indexes within a slot
const I_LOCK = 0;
const I_STATE = 1; // 0 free, 1 being claimed, 2 claimed
const I_HASH = 2;
const I_LEN = 3;
// Float64 indexes within a slot (after the four Int32s)
const F_TAT = 2; // 2: up, 3: down
const F_HELD = 4; // 4: up, 5: down (ms held back)
const F_DROPPED = 6;
const ID_AT = 56; // byte offset of the id
const SPINS = 1_000_000;

export type Direction = 0 | 1; // 0 up (client to destination), 1 down

/** One key's bucket pair: a slot of the shared table, or a table of this thread alone. */
export interface Bucket {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  /** The slot's first Int32 index (its Float64 index is half of it). */
  readonly at: number;
}

export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

let shared: SharedArrayBuffer | undefined;
let views: { i32: Int32Array; f64: Float64Array; u8: Uint8Array } | undefined;

/** The process's bucket table (made on first use on the main thread, adopted in a worker). */
export function speedBucketsBuffer(): SharedArrayBuffer {
  shared ??= new SharedArrayBuffer(SLOTS * SLOT_BYTES);
  return shared;
}

/** A worker: use the main thread's table (before its server starts). */
export function adoptSpeedBuckets(buf: SharedArrayBuffer | undefined): void {
  if (!buf) return;
  shared = buf;
  views = undefined;
}

function tables(): { i32: Int32Array; f64: Float64Array; u8: Uint8Array } {
  const buf = speedBucketsBuffer();
  views ??= { i32: new Int32Array(buf), f64: new Float64Array(buf), u8: new Uint8Array(buf) };
  return views;
}

function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
  return h | 0;
}

function sameId(u8: Uint8Array, at: number, id: Uint8Array, len: number): boolean {
  for (let i = 0; i < len; i++) if (u8[at + i] !== id[i]) return false;
  return true;
}

/** The bucket of key `id`: its slot in the shared table, claimed if new. */
export function bucketFor(id: string): Bucket {
  const { i32, f64, u8 } = tables();
  const full = Buffer.from(id, 'utf8');
  const bytes = full.subarray(0, MAX_ID);
  const hash = fnv1a(full);
  for (let probe = 0; probe < SLOTS; probe++) {
    const slot = ((hash >>> 0) + probe) % SLOTS;
    const at = (slot * SLOT_BYTES) / 4;
    let state = Atomics.load(i32, at + I_STATE);
    if (state === 0 && Atomics.compareExchange(i32, at + I_STATE, 0, 1) === 0) {
      u8.set(bytes, slot * SLOT_BYTES + ID_AT);
      Atomics.store(i32, at + I_HASH, hash);
      Atomics.store(i32, at + I_LEN, full.length);
      Atomics.store(i32, at + I_STATE, 2);
      return { i32, f64, at };
    }
    for (let i = 0; state === 1 && i < SPINS; i++) state = Atomics.load(i32, at + I_STATE);
    if (
      state === 2 &&
      Atomics.load(i32, at + I_HASH) === hash &&
      Atomics.load(i32, at + I_LEN) === full.length &&
      sameId(u8, slot * SLOT_BYTES + ID_AT, bytes, bytes.length)
    )
      return { i32, f64, at };
  }
  // Full: a bucket of this thread alone.
  const own = new ArrayBuffer(SLOT_BYTES);
  return { i32: new Int32Array(own), f64: new Float64Array(own), at: 0 };
}

function lock(b: Bucket): void {
  for (let i = 0; Atomics.compareExchange(b.i32, b.at + I_LOCK, 0, 1) !== 0; i++) {
    // A holder that never lets go (a thread terminated inside these few lines): take it over.
    if (i > SPINS) return;
  }
}

function unlock(b: Bucket): void {
  Atomics.store(b.i32, b.at + I_LOCK, 0);
}

/** A key's rate as the buckets use it. */
export interface Rate {
  /** 1000 / bytes per second. */
  readonly msPerByte: number;
  /** The burst's bytes, in ms at the rate. */
  readonly burstMs: number;
}

/** Charge `n` bytes in direction `dir`: how long (ms) the caller should wait before it moves more (<= 0: none). */
export function charge(b: Bucket, dir: Direction, n: number, rate: Rate, now: number): number {
  return take(b, dir, n, rate, now, false);
}

/** A datagram of `n` bytes: charged and true when the bucket holds it, else false (dropped, counted). */
export function tryTake(b: Bucket, dir: Direction, n: number, rate: Rate, now: number): boolean {
  return take(b, dir, n, rate, now, true) <= 0;
}

/** charge() (`datagram` false), or tryTake()'s all or nothing: the wait after charging `n`. */
function take(b: Bucket, dir: Direction, n: number, rate: Rate, now: number, datagram: boolean): number {
  const f = b.at / 2 + F_TAT + dir;
  lock(b);
  const tat = Math.max(b.f64[f]!, now) + n * rate.msPerByte;
  const wait = tat - rate.burstMs - now;
  if (!datagram || wait <= 0) b.f64[f] = tat;
  else b.f64[b.at / 2 + F_DROPPED]! += 1;
  unlock(b);
  return wait;
}

/** A changed rate: the debt charged at the old rate is forgiven (both directions). */
export function forgive(b: Bucket, now: number): void {
  const f = b.at / 2 + F_TAT;
  lock(b);
  b.f64[f] = Math.min(b.f64[f]!, now);
  b.f64[f + 1] = Math.min(b.f64[f + 1]!, now);
  unlock(b);
}

/** Count `ms` of holding back in direction `dir` (the metrics). */
export function addHeld(b: Bucket, dir: Direction, ms: number): void {
  const f = b.at / 2 + F_HELD + dir;
  lock(b);
  b.f64[f]! += ms;
  unlock(b);
}

/** One key's counters (the metrics). */
export interface SpeedLimitStat {
  readonly keyId: string;
  readonly heldSeconds: readonly [up: number, down: number];
  readonly droppedDatagrams: number;
}

/** The counters of every key that has a slot in this process's table. */
export function speedLimitStats(): SpeedLimitStat[] {
  if (!shared) return [];
  const { i32, f64, u8 } = tables();
  const out: SpeedLimitStat[] = [];
  for (let slot = 0; slot < SLOTS; slot++) {
    const at = (slot * SLOT_BYTES) / 4;
    if (Atomics.load(i32, at + I_STATE) !== 2) continue;
    const len = Math.min(Atomics.load(i32, at + I_LEN), MAX_ID);
    const keyId = Buffer.from(
      u8.subarray(slot * SLOT_BYTES + ID_AT, slot * SLOT_BYTES + ID_AT + len),
    ).toString();
    const f = at / 2;
    out.push({
      keyId,
      heldSeconds: [f64[f + F_HELD]! / 1000, f64[f + F_HELD + 1]! / 1000],
      droppedDatagrams: f64[f + F_DROPPED]!,
    });
  }
  return out;
}
