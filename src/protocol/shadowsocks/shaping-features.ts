/**
 * Our own, independent C6 feature extractor (fully-encrypted-traffic detection, Wu et al.,
 * USENIX Security 2023, Algorithm 1; docs/glossary.md C6), used to test first-packet shaping.
 * The lab has its own extractor (src/lab/fet.ts); keeping two written separately means a bug in
 * one does not silently bless the other.
 *
 * API (all pure):
 *   fetFeatures(packet)     -> FetVerdict { popcountPerByte, ..., ex1..ex5, exempt }
 *   isFetExempt(packet)     -> boolean (at least one of Ex1..Ex5 holds)
 *   offsetEntropy(samples, offset) -> Shannon entropy (bits) of the byte at `offset` over samples
 *   maxShare(strings)       -> the largest fraction of samples sharing one value
 *   signatureStats(packets) -> per-offset entropy (0..15) and, per leading length k, the share
 *                              of the most common k-byte start: the D1 signature check, so the
 *                              lab and the unit tests use one definition
 *
 * "Printable" is 0x20..0x7E inclusive. Ex5/TLS follows the paper (third byte 0x00..0x09), which
 * is stricter than the artifact code (0x00..0x0F): a packet exempt here is exempt under both.
 */

export const POPCOUNT_EXEMPT_LOW = 3.4;
export const POPCOUNT_EXEMPT_HIGH = 4.6;

const POPCOUNT = new Uint8Array(256);
for (let i = 1; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1]!;

export function isPrintableByte(b: number): boolean {
  return b >= 0x20 && b <= 0x7e;
}

export interface FetVerdict {
  readonly length: number;
  readonly popcountPerByte: number;
  readonly leadingPrintable: number;
  readonly printableFraction: number;
  readonly longestPrintableRun: number;
  /** popcount/len <= 3.4 or >= 4.6 */
  readonly ex1: boolean;
  /** first 6 bytes printable */
  readonly ex2: boolean;
  /** printable fraction > 0.5 */
  readonly ex3: boolean;
  /** a printable run > 20 bytes */
  readonly ex4: boolean;
  /** starts like TLS (16|17 03 00..09) or HTTP ("GET ", "PUT ", "POST ", "HEAD ", case-sensitive) */
  readonly ex5: boolean;
  readonly exempt: boolean;
}

const HTTP_STARTS = ['GET ', 'PUT ', 'POST ', 'HEAD '].map((s) => Buffer.from(s, 'latin1'));

function startsWith(p: Uint8Array, prefix: Uint8Array): boolean {
  if (p.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (p[i] !== prefix[i]) return false;
  return true;
}

export function looksLikeTlsStart(p: Uint8Array): boolean {
  return p.length >= 3 && (p[0] === 0x16 || p[0] === 0x17) && p[1] === 0x03 && p[2]! <= 0x09;
}

export function looksLikeHttpStart(p: Uint8Array): boolean {
  return HTTP_STARTS.some((h) => startsWith(p, h));
}

export function fetFeatures(p: Uint8Array): FetVerdict {
  const n = p.length;
  let bits = 0;
  let printable = 0;
  let run = 0;
  let longest = 0;
  let leading = 0;
  let leadingOpen = true;
  for (let i = 0; i < n; i++) {
    const b = p[i]!;
    bits += POPCOUNT[b]!;
    if (isPrintableByte(b)) {
      printable++;
      run++;
      if (run > longest) longest = run;
      if (leadingOpen) leading++;
    } else {
      run = 0;
      leadingOpen = false;
    }
  }
  const popcountPerByte = n === 0 ? 0 : bits / n;
  const printableFraction = n === 0 ? 0 : printable / n;
  const ex1 = n > 0 && (popcountPerByte <= POPCOUNT_EXEMPT_LOW || popcountPerByte >= POPCOUNT_EXEMPT_HIGH);
  const ex2 = leading >= 6;
  const ex3 = printableFraction > 0.5;
  const ex4 = longest > 20;
  const ex5 = looksLikeTlsStart(p) || looksLikeHttpStart(p);
  return {
    length: n,
    popcountPerByte,
    leadingPrintable: leading,
    printableFraction,
    longestPrintableRun: longest,
    ex1,
    ex2,
    ex3,
    ex4,
    ex5,
    exempt: ex1 || ex2 || ex3 || ex4 || ex5,
  };
}

export function isFetExempt(p: Uint8Array): boolean {
  return fetFeatures(p).exempt;
}

/** Plug-in Shannon entropy (bits) of the byte at `offset` across samples (missing = skipped). */
export function offsetEntropy(samples: readonly Uint8Array[], offset: number): number {
  const counts = new Map<number, number>();
  let total = 0;
  for (const s of samples) {
    if (offset >= s.length) continue;
    const b = s[offset]!;
    counts.set(b, (counts.get(b) ?? 0) + 1);
    total++;
  }
  let h = 0;
  for (const c of counts.values()) {
    const q = c / total;
    h -= q * Math.log2(q);
  }
  return h;
}

/** The largest fraction of `values` equal to one value (0 for an empty list). */
export function maxShare(values: readonly string[]): number {
  if (values.length === 0) return 0;
  const counts = new Map<string, number>();
  let best = 0;
  for (const v of values) {
    const c = (counts.get(v) ?? 0) + 1;
    counts.set(v, c);
    if (c > best) best = c;
  }
  return best / values.length;
}

export interface SignatureStats {
  readonly samples: number;
  /** Entropy in bits of byte i, for i in 0..offsets-1. */
  readonly offsetEntropy: readonly number[];
  readonly minOffsetEntropy: number;
  /** leadingShare[k-1]: share of the most common k-byte start, k = 1..maxPrefix. */
  readonly leadingShare: readonly number[];
}

export function signatureStats(
  packets: readonly Uint8Array[],
  opts: { offsets?: number; maxPrefix?: number } = {},
): SignatureStats {
  const offsets = opts.offsets ?? 16;
  const maxPrefix = opts.maxPrefix ?? 16;
  const ent: number[] = [];
  for (let i = 0; i < offsets; i++) ent.push(offsetEntropy(packets, i));
  const lead: number[] = [];
  for (let k = 1; k <= maxPrefix; k++) {
    lead.push(
      maxShare(
        packets
          .filter((p) => p.length >= k)
          .map((p) => Buffer.from(p.buffer, p.byteOffset, k).toString('hex')),
      ),
    );
  }
  return {
    samples: packets.length,
    offsetEntropy: ent,
    minOffsetEntropy: Math.min(...ent),
    leadingShare: lead,
  };
}
