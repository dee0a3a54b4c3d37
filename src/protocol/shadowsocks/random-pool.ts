import { randomBytes, randomFillSync } from 'node:crypto';

/**
 * Small random byte strings from a 4 KiB block of CSPRNG output, each byte handed out once, as
 * a copy: one randomBytes() call per draw (an allocation, a call into OpenSSL and its fork check)
 * costs about 5 µs, and a short connection draws several (a shaped prefix takes a few dozen
 * 4-byte draws, every connection a salt). Requests over 256 bytes go to randomBytes.
 */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolPos = POOL_BYTES; // empty: filled on first use

export function poolRandomBytes(n: number): Buffer {
  if (n > 256) return randomBytes(n);
  if (poolPos + n > POOL_BYTES) {
    randomFillSync(pool);
    poolPos = 0;
  }
  const out = Buffer.from(pool.subarray(poolPos, poolPos + n));
  pool.fill(0, poolPos, poolPos + n); // no copy of handed-out bytes stays behind
  poolPos += n;
  return out;
}
