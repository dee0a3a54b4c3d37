/**
 * DNS message helpers over dns-packet, and the D11 injection heuristics (docs/glossary.md C2, D11).
 * Pure.
 *
 * API:
 *   decodeDns(buf)                  -> DecodedPacket ; ProtocolError('ERR_DNS') if malformed
 *   frameTcp(msg)                   -> 2-byte big-endian length + msg (RFC 1035 §4.2.2)
 *   new TcpFrameDecoder().push(buf) -> complete messages so far
 *   servfailFor(query)              -> a SERVFAIL response echoing the query's id and question
 *   withId(msg, id)                 -> a copy of msg with another id
 *   inspectResponse(query, response, opts) -> { related, forged, reasons }
 *
 * Forgery reasons (each alone marks a response forged):
 *   'type-mismatch'   an answer for the question name whose type is neither the question type
 *                     nor CNAME/DNAME (the GFW answers A to TXT/HTTPS/MX queries, glossary C2)
 *   'forged-address'  an A/AAAA in the known-forged pool
 *   'aa-on-recursive' AA set although we asked a recursive resolver (RD=1); opt-in, since some
 *                     resolvers are also authoritative for a few zones
 *   'private-address' (opt-in) 127/8, 10/8 ... answers for a public name (ISP-style injection)
 */
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import { ProtocolError } from '../errors.js';
import { IpSet } from './ip-set.js';

export type { DecodedPacket };

export const MAX_DNS_MESSAGE = 65535;
export const RCODE_SERVFAIL = 2;

export function decodeDns(buf: Uint8Array): DecodedPacket {
  if (buf.length < 12)
    throw new ProtocolError('ERR_DNS', `DNS message of ${buf.length} bytes is shorter than the header`);
  try {
    return dnsPacket.decode(Buffer.from(buf.buffer, buf.byteOffset, buf.length));
  } catch (cause) {
    throw new ProtocolError('ERR_DNS', 'malformed DNS message', { cause });
  }
}

export function frameTcp(msg: Uint8Array): Buffer {
  if (msg.length > MAX_DNS_MESSAGE)
    throw new ProtocolError('ERR_DNS', 'DNS message too long for TCP framing');
  const out = Buffer.allocUnsafe(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  out.set(msg, 2);
  return out;
}

/** Splits a DNS-over-TCP byte stream into messages. */
export class TcpFrameDecoder {
  #buf: Buffer = Buffer.alloc(0);

  get buffered(): number {
    return this.#buf.length;
  }

  push(data: Uint8Array): Buffer[] {
    this.#buf = this.#buf.length === 0 ? Buffer.from(data) : Buffer.concat([this.#buf, data]);
    const out: Buffer[] = [];
    while (this.#buf.length >= 2) {
      const n = this.#buf.readUInt16BE(0);
      if (this.#buf.length < 2 + n) break;
      out.push(Buffer.from(this.#buf.subarray(2, 2 + n)));
      this.#buf = this.#buf.subarray(2 + n);
    }
    return out;
  }
}

export function queryId(msg: Uint8Array): number {
  if (msg.length < 2) throw new ProtocolError('ERR_DNS', 'DNS message shorter than its id');
  return (msg[0]! << 8) | msg[1]!;
}

export function withId(msg: Uint8Array, id: number): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16BE(id & 0xffff, 0);
  return out;
}

/** A SERVFAIL response for `query` (same id, question and RD; RA set). */
export function servfailFor(query: Uint8Array): Buffer {
  const q = decodeDns(query);
  const rd = (q.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  return dnsPacket.encode({
    type: 'response',
    id: q.id ?? 0,
    flags: rd | dnsPacket.RECURSION_AVAILABLE | RCODE_SERVFAIL,
    questions: q.questions ?? [],
  });
}

export type ForgeryReason = 'type-mismatch' | 'forged-address' | 'aa-on-recursive' | 'private-address';

/** Anything with a membership test for IP text (an IpSet, or a union of sets). */
export interface AddressMatcher {
  has(ip: string): boolean;
}

export interface InspectOptions {
  /** Known forged answer addresses/CIDRs (GFWatch-style pool). */
  forged?: AddressMatcher | undefined;
  /** We asked a recursive resolver with RD=1: AA in its reply is suspicious (default false). */
  flagAaOnRecursive?: boolean;
  /** Treat private/loopback answers as forged (default false). */
  flagPrivate?: boolean;
}

export interface Inspection {
  /** Same id and same question as the query (otherwise ignore the packet entirely). */
  readonly related: boolean;
  readonly forged: boolean;
  readonly reasons: readonly ForgeryReason[];
  readonly addresses: readonly string[];
}

const PRIVATE = new IpSet([
  '0.0.0.0/8',
  '10.0.0.0/8',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
  '::/128',
]);

function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}

export function inspectResponse(
  query: DecodedPacket,
  response: DecodedPacket,
  opts: InspectOptions = {},
): Inspection {
  const q = query.questions?.[0];
  const rq = response.questions?.[0];
  const related =
    response.type === 'response' &&
    response.id === query.id &&
    q !== undefined &&
    rq !== undefined &&
    sameName(q.name, rq.name) &&
    q.type === rq.type;
  const reasons = new Set<ForgeryReason>();
  const addresses: string[] = [];
  if (!related) return { related, forged: false, reasons: [], addresses };
  for (const a of response.answers ?? []) {
    if (a.type === 'A' || a.type === 'AAAA') addresses.push(a.data);
    if (
      sameName(a.name, q.name) &&
      a.type !== q.type &&
      a.type !== 'CNAME' &&
      a.type !== 'DNAME' &&
      (q.type as string) !== 'ANY'
    ) {
      reasons.add('type-mismatch');
    }
  }
  if (opts.forged && addresses.some((ip) => opts.forged!.has(ip))) reasons.add('forged-address');
  if (opts.flagAaOnRecursive && response.flag_aa && query.flag_rd) reasons.add('aa-on-recursive');
  if (opts.flagPrivate && addresses.some((ip) => PRIVATE.has(ip))) reasons.add('private-address');
  return { related, forged: reasons.size > 0, reasons: [...reasons], addresses };
}
