import { timingSafeEqual } from 'node:crypto';

/**
 * Whether two secrets (as UTF-8) are equal, in a time that does not reveal where they first
 * differ: both are padded to one length before the comparison, and the lengths compared after.
 */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  const n = Math.max(x.length, y.length, 1);
  const px = Buffer.alloc(n);
  const py = Buffer.alloc(n);
  x.copy(px);
  y.copy(py);
  return timingSafeEqual(px, py) && x.length === y.length;
}
