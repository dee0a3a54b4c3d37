import { randomBytes, randomFillSync } from 'node:crypto';

/**
 * Small random byte strings from a 4 KiB block of CSPRNG output, each byte handed out once, as
 * a copy: one randomBytes() call per draw (an allocation, a call into OpenSSL and its fork check)
 * costs about 5 µs, and a short connection draws several (a shaped prefix takes a few dozen
 * 4-byte draws, every connection a salt). Requests over 256 bytes go to randomBytes.
 * A copy rather than a view of the block (which would save ~0.3 µs a draw): a view would keep the
 * whole 4 KiB alive as long as the draw (an encoder keeps its salt for the connection's life, so
 * each long-lived connection could pin a block) and the block could not be refilled in place.
 * AeadEncoder keeps the copy it draws without copying it again.
 */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
/**
 * The same bytes as a plain Uint8Array: its subarray() and fill() are V8's builtins, where a
 * Buffer's go through Node's JS wrappers (argument checks, a FastBuffer per view), which cost a
 * few µs per draw in the baseline code a client runs for its first thousands of connections.
 */
const bytes = new Uint8Array(pool.buffer, pool.byteOffset, POOL_BYTES);
let poolPos = POOL_BYTES; // empty: filled on first use

export function poolRandomBytes(n: number): Buffer {
  if (n > 256) return randomBytes(n);
  if (poolPos + n > POOL_BYTES) {
    randomFillSync(pool);
    poolPos = 0;
  }
  // Node's pooled memory (as Buffer.from's copy was), filled by the builtins: no JS loop or views.
  const out = Buffer.allocUnsafe(n);
  out.set(bytes.subarray(poolPos, poolPos + n));
  bytes.fill(0, poolPos, poolPos + n); // no copy of handed-out bytes stays behind
  poolPos += n;
  return out;
}

/**
 * The next 4 pool bytes as a big-endian unsigned 32-bit integer: the value poolRandomBytes(4)
 * would give, without a Buffer (two allocations) per draw. Shaping's randInt draws a few dozen
 * per connection. LADDER_POOL_WORDS=0 (read once) draws them through poolRandomBytes(4) again.
 */
export function poolRandomUint32(): number {
  if (poolPos + 4 > POOL_BYTES) {
    randomFillSync(pool);
    poolPos = 0;
  }
  const v = pool.readUInt32BE(poolPos);
  pool.writeUInt32BE(0, poolPos); // no copy of handed-out bytes stays behind
  poolPos += 4;
  return v;
}

/** Whether randInt over the pool draws whole words (poolRandomUint32); off with LADDER_POOL_WORDS=0. */
export const POOL_WORDS = process.env.LADDER_POOL_WORDS !== '0';
