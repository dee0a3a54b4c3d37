/**
 * C8, the encapsulated-TLS (TLS-in-TLS) classifier (docs/glossary.md C8). Hypothetical: no GFW
 * deployment has been measured, the parameters are ours (after Xue et al., USENIX Security 2024),
 * and a test against it is only as strong as this classifier.
 *
 * For each TCP flow whose client opens with a TLS handshake record, the classifier follows the
 * TLS record headers in both directions (an on-path observer sees them in clear). After the outer
 * handshake (TLS 1.3: once the client's first encrypted record, its Finished, has passed; TLS
 * 1.2: application-data records only) it takes the first N = 8 application-data records of each
 * direction, minus `overhead` bytes each (outer AEAD tag, content type, a Shadowsocks chunk), and flags the flow
 * when the sequence shows an inner handshake:
 *
 *   a client record of [200, 700] bytes (an inner ClientHello),
 *   then the server records before the client's next one totalling [1 KB, 8 KB] (the inner
 *   ServerHello..Finished flight),
 *   then a client record of [40, 120] bytes (the inner Finished).
 *
 * The research notes also bound the server burst by 1.5 RTT; on loopback the RTT is noise, so
 * the burst is delimited by the client's records instead (order, not time).
 */
import type { FlowRef } from './decision-log.js';
import type { FlowShapeClassifier, ShapeVerdict } from './seams.js';

export interface C8Parameters {
  /** Application records taken per direction (N). */
  readonly records: number;
  /**
   * Bytes removed from each record's length: the outer TLS record's AEAD tag and inner content
   * type (17) plus one Shadowsocks AEAD chunk (2 + 16 + 16), the research notes' example for
   * Shadowsocks inside TLS.
   */
  readonly overhead: number;
  readonly clientHello: readonly [number, number];
  readonly serverFlight: readonly [number, number];
  readonly clientFinished: readonly [number, number];
  /**
   * Burst view (off by default): consecutive records of one direction count as one, of their
   * summed size (minus `overhead` once), so cutting a message into several records does not hide
   * it. The research notes' rule is per record; this is the stronger reading a client-only record
   * cutting (ShadowTLS D14) cannot defeat.
   */
  readonly burst?: boolean;
}

export const C8_DEFAULTS: C8Parameters = {
  records: 8,
  overhead: 17 + 34,
  clientHello: [200, 700],
  serverFlight: [1000, 8000],
  clientFinished: [40, 120],
};

const HANDSHAKE = 0x16;
const APPLICATION_DATA = 0x17;

/** Record headers of one direction of one flow, parsed incrementally from the byte stream. */
class RecordReader {
  #header = Buffer.alloc(0);
  #skip = 0;
  /** Feed bytes; returns the (type, length) of every record header completed by them. */
  push(chunk: Buffer): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - off);
        this.#skip -= n;
        off += n;
        continue;
      }
      const need = 5 - this.#header.length;
      this.#header = Buffer.concat([this.#header, chunk.subarray(off, off + need)]);
      off += Math.min(need, chunk.length - off);
      if (this.#header.length < 5) break;
      const type = this.#header[0]!;
      const length = this.#header.readUInt16BE(3);
      out.push([type, length]);
      this.#skip = length;
      this.#header = Buffer.alloc(0);
    }
    return out;
  }
}

interface FlowState {
  readonly c2s: RecordReader;
  readonly s2c: RecordReader;
  /** Not TLS, flagged already, or past its N records each way: nothing more to look at. */
  done: boolean;
  /** The server sent encrypted records before the client did: TLS 1.3. */
  tls13: boolean;
  clientApp: number;
  handshakeDone: boolean;
  /** Application records after the outer handshake: [direction, size minus overhead]. */
  readonly seq: Array<['c2s' | 's2c', number]>;
  counts: { c2s: number; s2c: number };
}

const inRange = (x: number, [lo, hi]: readonly [number, number]): boolean => x >= lo && x <= hi;

/** The pattern, if the sequence shows one: indices and sizes for the decision log. */
export function matchInnerHandshake(
  records: ReadonlyArray<readonly ['c2s' | 's2c', number]>,
  p: C8Parameters = C8_DEFAULTS,
): Record<string, number> | undefined {
  const seq = p.burst ? bursts(records, p.overhead) : records;
  for (let i = 0; i < seq.length; i++) {
    const [dir, size] = seq[i]!;
    if (dir !== 'c2s' || !inRange(size, p.clientHello)) continue;
    let burst = 0;
    let j = i + 1;
    while (j < seq.length && seq[j]![0] === 's2c') burst += seq[j++]![1];
    if (j >= seq.length || !inRange(burst, p.serverFlight)) continue;
    const fin = seq[j]![1];
    if (inRange(fin, p.clientFinished))
      return { clientHello: size, serverFlight: burst, clientFinished: fin, at: i };
  }
  return undefined;
}

/** Consecutive records of one direction merged: sizes summed, the per-record overhead counted once. */
function bursts(
  seq: ReadonlyArray<readonly ['c2s' | 's2c', number]>,
  overhead: number,
): Array<['c2s' | 's2c', number]> {
  const out: Array<['c2s' | 's2c', number]> = [];
  for (const [dir, size] of seq) {
    const last = out.at(-1);
    if (last && last[0] === dir) last[1] += size + overhead;
    else out.push([dir, size]);
  }
  return out;
}

export class TlsInTlsClassifier implements FlowShapeClassifier {
  readonly behaviour = 'C8' as const;
  readonly params: C8Parameters;
  readonly #flows = new Map<string, FlowState>();
  /** Flows seen with a TLS handshake, and how many were flagged (for TPR/FPR reports). */
  readonly stats = { tlsFlows: 0, flagged: 0 };

  constructor(params: Partial<C8Parameters> = {}) {
    this.params = { ...C8_DEFAULTS, ...params };
  }

  observe(flow: FlowRef, direction: 'c2s' | 's2c', _length: number, chunk?: Buffer): ShapeVerdict {
    if (!chunk) return { action: 'PASS' };
    const key = `${flow.cIP}:${flow.cPort}>${flow.sIP}:${flow.sPort}`;
    let st = this.#flows.get(key);
    if (!st) {
      if (direction !== 'c2s') return { action: 'PASS' };
      st = {
        c2s: new RecordReader(),
        s2c: new RecordReader(),
        done: chunk[0] !== HANDSHAKE,
        tls13: false,
        clientApp: 0,
        handshakeDone: false,
        seq: [],
        counts: { c2s: 0, s2c: 0 },
      };
      if (this.#flows.size > 20_000) this.#flows.clear();
      this.#flows.set(key, st);
      if (!st.done) this.stats.tlsFlows++;
    }
    if (st.done) return { action: 'PASS' };
    for (const [type, length] of st[direction].push(chunk)) {
      if (type !== APPLICATION_DATA) continue;
      if (direction === 's2c' && st.clientApp === 0 && !st.handshakeDone) {
        st.tls13 = true; // encrypted server handshake: EncryptedExtensions .. Finished
        continue;
      }
      if (direction === 'c2s' && !st.handshakeDone) {
        st.clientApp++;
        st.handshakeDone = true;
        if (st.tls13) continue; // the client's Finished
      }
      if (st.counts[direction] >= this.params.records) continue;
      st.counts[direction]++;
      st.seq.push([direction, Math.max(0, length - this.params.overhead)]);
    }
    const hit = matchInnerHandshake(st.seq, this.params);
    if (hit) {
      st.done = true;
      this.stats.flagged++;
      return { action: 'FLAG', features: { ...hit, records: this.params.records } };
    }
    if (st.counts.c2s >= this.params.records && st.counts.s2c >= this.params.records) st.done = true;
    return { action: 'PASS' };
  }
}
