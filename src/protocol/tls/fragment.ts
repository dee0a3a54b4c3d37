/**
 * D8: TLS-record fragmentation of a ClientHello (docs/glossary.md D8). Pure.
 *
 * A handshake message may span several records (RFC 8446 §5.1); every mainstream server
 * reassembles them, while the GFW's SNI filter (as of 2024) did not. We re-frame the ClientHello
 * so the server_name value is never whole in any one record: by default one cut in the middle of
 * the host name. Optionally the first record also ends before the server_name extension, and
 * extra random cuts can be added.
 *
 * API:
 *   fragmentClientHello(record, opts?) -> { records, cuts }   (records carry their own headers)
 *   planSegments(recordLengths, mode)   -> TCP write sizes over the concatenated records
 *
 * Caveat (glossary C4): CERNET/China Mobile reportedly reset record-fragmented hellos in late 2025;
 * treat this as a knob the censor can defeat (lab: tlsRecordReassembly = true).
 */
import { ProtocolError } from '../errors.js';
import { CONTENT_HANDSHAKE, encodeRecord, MAX_FRAGMENT, parseClientHelloRecord } from './clienthello.js';

/**
 * - 'name-middle': one cut inside the host name (default).
 * - 'before-extension': one cut just before the server_name extension (the first record holds
 *   no SNI at all, but the second holds the whole name; some DPI blocks hellos whose first
 *   record has no SNI).
 * - 'both': both cuts.
 */
export type SplitStrategy = 'name-middle' | 'before-extension' | 'both';

export interface FragmentOptions {
  strategy?: SplitStrategy;
  /** Additional cuts at random positions (default 0). */
  extraCuts?: number;
  /** Uniform integer in [0, n) for extra cuts (inject in tests). */
  randInt?: (n: number) => number;
}

export interface FragmentResult {
  /** The new records, each with its 5-byte header, in order. */
  readonly records: Buffer[];
  /** Cut offsets within the handshake message, ascending. */
  readonly cuts: number[];
  readonly serverName?: string | undefined;
}

function defaultRandInt(n: number): number {
  return Math.floor(Math.random() * n);
}

/** Re-frame one ClientHello record into several records per `opts`. */
export function fragmentClientHello(record: Uint8Array, opts: FragmentOptions = {}): FragmentResult {
  const info = parseClientHelloRecord(record);
  const hs = info.handshake;
  const strategy = opts.strategy ?? 'name-middle';
  const cuts = new Set<number>();
  const sni = info.serverName;
  if (sni && sni.nameLength >= 2) {
    if (strategy !== 'before-extension') cuts.add(sni.nameOffset + Math.floor(sni.nameLength / 2));
    if (strategy !== 'name-middle') cuts.add(sni.extensionOffset);
  } else if (sni && sni.nameLength === 1) {
    // A one-byte name cannot be split inside; cut right before it.
    cuts.add(sni.nameOffset);
  } else {
    // No SNI: still fragment (in the middle), so the record shape does not depend on it.
    cuts.add(Math.floor(hs.length / 2));
  }
  const randInt = opts.randInt ?? defaultRandInt;
  const extra = Math.max(0, Math.min(opts.extraCuts ?? 0, hs.length - 1 - cuts.size));
  for (let i = 0, guard = 0; i < extra && guard < 1000; guard++) {
    const c = 1 + randInt(hs.length - 1);
    if (!cuts.has(c)) {
      cuts.add(c);
      i++;
    }
  }
  // Respect the 2^14 fragment limit (a ClientHello near it is rare but legal).
  let sorted = [...cuts].filter((c) => c > 0 && c < hs.length).sort((a, b) => a - b);
  const withLimit: number[] = [];
  let prev = 0;
  for (const c of [...sorted, hs.length]) {
    while (c - prev > MAX_FRAGMENT) {
      prev += MAX_FRAGMENT;
      withLimit.push(prev);
    }
    if (c < hs.length) withLimit.push(c);
    prev = c;
  }
  sorted = withLimit;
  const records: Buffer[] = [];
  let start = 0;
  for (const c of [...sorted, hs.length]) {
    records.push(encodeRecord(CONTENT_HANDSHAKE, info.recordVersion, hs.subarray(start, c)));
    start = c;
  }
  return { records, cuts: sorted, serverName: sni?.name };
}

/**
 * - 'single': one write with all records.
 * - 'per-record': one write per record.
 * - 'misaligned': cut each record in its middle, so every write straddles a record boundary and
 *   no write holds a whole record (TlsFragment/Xray style).
 */
export type SegmentMode = 'single' | 'per-record' | 'misaligned';

/** Sizes of the TCP writes for records of the given lengths (sums to their total). */
export function planSegments(recordLengths: readonly number[], mode: SegmentMode): number[] {
  const total = recordLengths.reduce((a, b) => a + b, 0);
  if (recordLengths.some((l) => !Number.isInteger(l) || l < 1))
    throw new ProtocolError('ERR_TLS', 'bad record lengths');
  if (mode === 'single' || recordLengths.length === 0) return total > 0 ? [total] : [];
  if (mode === 'per-record') return [...recordLengths];
  const cuts: number[] = [];
  let pos = 0;
  for (const l of recordLengths) {
    cuts.push(pos + Math.max(1, Math.floor(l / 2)));
    pos += l;
  }
  const sizes: number[] = [];
  let prev = 0;
  for (const c of [...cuts, total]) {
    if (c > prev) sizes.push(c - prev);
    prev = c;
  }
  return sizes;
}
