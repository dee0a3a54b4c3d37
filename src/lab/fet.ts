/**
 * C6: the fully-encrypted-traffic exemption rules (Wu et al., USENIX Security 2023, Algorithm 1,
 * as implemented in the artifact's utils/detect.py; docs/glossary.md C6). Pure functions.
 *
 * A first client packet is *eligible* for blocking only if none of Ex1..Ex5 holds.
 */
export interface FetFeatures {
  readonly length: number;
  /** Average set bits per byte. */
  readonly popcountPerByte: number;
  readonly firstSixPrintable: boolean;
  readonly printableFraction: number;
  readonly longestPrintableRun: number;
  readonly matchesTls: boolean;
  readonly matchesHttp: boolean;
  /** Ex1: popcount/len <= 3.4 or >= 4.6. */
  readonly ex1: boolean;
  /** Ex2: the first 6 bytes are printable. */
  readonly ex2: boolean;
  /** Ex3: more than half the bytes are printable (exactly 0.5 is not exempt). */
  readonly ex3: boolean;
  /** Ex4: a run of more than 20 printable bytes (exactly 20 is not exempt). */
  readonly ex4: boolean;
  /** Ex5: begins like TLS (16|17 03 00..09) or HTTP (GET /PUT /POST /HEAD , case-sensitive). */
  readonly ex5: boolean;
  /** None of Ex1..Ex5 holds. */
  readonly eligible: boolean;
}

export const POPCOUNT_LOW = 3.4;
export const POPCOUNT_HIGH = 4.6;
export const PRINTABLE_PREFIX = 6;
export const PRINTABLE_RUN = 20;
/** The paper says 0x00..0x09; the artifact code accepts up to 0x0F. We follow the paper. */
export const TLS_MAX_MINOR = 0x09;

const POP = new Uint8Array(256);
for (let i = 0; i < 256; i++) POP[i] = (i & 1) + POP[i >> 1]!;

export function isPrintable(b: number): boolean {
  return b >= 0x20 && b <= 0x7e;
}

const HTTP_PREFIXES = ['GET ', 'PUT ', 'POST ', 'HEAD '].map((s) => Buffer.from(s, 'latin1'));

export function fetFeatures(buf: Uint8Array, opts: { tlsMaxMinor?: number } = {}): FetFeatures {
  const n = buf.length;
  let bits = 0;
  let printable = 0;
  let run = 0;
  let longest = 0;
  for (let i = 0; i < n; i++) {
    const b = buf[i]!;
    bits += POP[b]!;
    if (isPrintable(b)) {
      printable++;
      run++;
      if (run > longest) longest = run;
    } else {
      run = 0;
    }
  }
  const popcountPerByte = n === 0 ? 0 : bits / n;
  const printableFraction = n === 0 ? 0 : printable / n;
  let firstSixPrintable = n >= PRINTABLE_PREFIX;
  for (let i = 0; i < PRINTABLE_PREFIX && firstSixPrintable; i++) firstSixPrintable = isPrintable(buf[i]!);
  const maxMinor = opts.tlsMaxMinor ?? TLS_MAX_MINOR;
  const matchesTls = n >= 3 && (buf[0] === 0x16 || buf[0] === 0x17) && buf[1] === 0x03 && buf[2]! <= maxMinor;
  const matchesHttp = HTTP_PREFIXES.some(
    (p) => n >= p.length && Buffer.from(buf.buffer, buf.byteOffset, p.length).equals(p),
  );
  const ex1 = popcountPerByte <= POPCOUNT_LOW || popcountPerByte >= POPCOUNT_HIGH;
  const ex2 = firstSixPrintable;
  const ex3 = printableFraction > 0.5;
  const ex4 = longest > PRINTABLE_RUN;
  const ex5 = matchesTls || matchesHttp;
  return {
    length: n,
    popcountPerByte,
    firstSixPrintable,
    printableFraction,
    longestPrintableRun: longest,
    matchesTls,
    matchesHttp,
    ex1,
    ex2,
    ex3,
    ex4,
    ex5,
    eligible: n > 0 && !(ex1 || ex2 || ex3 || ex4 || ex5),
  };
}

/** Per-byte Shannon entropy in bits (C7 trigger weighting). */
export function shannonEntropy(buf: Uint8Array): number {
  if (buf.length === 0) return 0;
  const counts = new Uint32Array(256);
  for (const b of buf) counts[b]!++;
  let h = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / buf.length;
    h -= p * Math.log2(p);
  }
  return h;
}
