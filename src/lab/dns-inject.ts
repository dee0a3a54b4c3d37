/**
 * C2: DNS injection in the measured format (docs/glossary.md C2; Wallbleed `blackbox.c`,
 * Triplet Censors). Pure functions: query parsing, name matching and forged-answer building.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface DnsQueryView {
  readonly id: number;
  readonly rd: boolean;
  readonly qname: string;
  readonly qtype: number;
  readonly qclass: number;
  /** Byte offset just past the first question. */
  readonly questionEnd: number;
}

export const QTYPE_A = 1;
export const QTYPE_AAAA = 28;
export const QTYPE_TXT = 16;
export const QCLASS_IN = 1;
/** The injector flattens QNAME into a C string of at most about 125 characters. */
export const MAX_FLAT_NAME = 125;

/**
 * Parse the header and first question the way the injector does: ignore anything shorter than
 * the 12-byte header or with QR = 1. Returns undefined when the packet is not inspected.
 */
export function parseDnsQuery(msg: Uint8Array): DnsQueryView | undefined {
  if (msg.length < 12) return undefined;
  const b = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  const flags = b.readUInt16BE(2);
  if (flags & 0x8000) return undefined;
  if (b.readUInt16BE(4) < 1) return undefined;
  const labels: string[] = [];
  let off = 12;
  for (let i = 0; i < 128; i++) {
    if (off >= b.length) return undefined;
    const l = b[off]!;
    off++;
    if (l === 0) break;
    if (l & 0xc0) return undefined;
    if (off + l > b.length) return undefined;
    labels.push(b.subarray(off, off + l).toString('latin1'));
    off += l;
  }
  if (off + 4 > b.length) return undefined;
  return {
    id: b.readUInt16BE(0),
    rd: (flags & 0x0100) !== 0,
    qname: labels.join('.').slice(0, MAX_FLAT_NAME).toLowerCase(),
    qtype: b.readUInt16BE(off),
    qclass: b.readUInt16BE(off + 2),
    questionEnd: off + 4,
  };
}

/**
 * A blocklist rule as the injector's regex list: "(^|\\.)name$" end-anchored with subdomains,
 * "^name" start-anchored, or unanchored. Case-insensitive.
 */
export function compileDnsRules(rules: readonly string[]): RegExp[] {
  return rules.map((r) => new RegExp(r, 'i'));
}

/** The end-anchored rule with optional subdomains for a domain, e.g. `(^|\.)example\.com$`. */
export function domainRule(domain: string): string {
  return `(^|\\.)${domain.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
}

export function matchDnsRule(rules: readonly RegExp[], qname: string): RegExp | undefined {
  return rules.find((r) => r.test(qname));
}

export interface ForgeOptions {
  readonly ttl: number;
  readonly address: string;
}

/**
 * Build one forged reply: header and question copied; flags 0x8400 if RD = 0 else 0x8180;
 * QDCOUNT 1, ANCOUNT 1, NS 0, AR 0; one RR with name pointer 0xC00C, type AAAA if QTYPE is
 * AAAA and A for every other QTYPE, class IN, the given TTL and address.
 */
export function forgeAnswer(query: Uint8Array, q: DnsQueryView, opts: ForgeOptions): Buffer {
  const wantV6 = q.qtype === QTYPE_AAAA;
  const rdata = wantV6 ? ipv6Bytes(opts.address) : ipv4Bytes(opts.address);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  header.writeUInt16BE(q.rd ? 0x8180 : 0x8400, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 6);
  const question = Buffer.from(query.subarray(12, q.questionEnd));
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0);
  rr.writeUInt16BE(wantV6 ? QTYPE_AAAA : QTYPE_A, 2);
  rr.writeUInt16BE(QCLASS_IN, 4);
  rr.writeUInt32BE(opts.ttl >>> 0, 6);
  rr.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([header, question, rr, rdata]);
}

function ipv4Bytes(a: string): Buffer {
  if (!isIPv4(a)) throw new RangeError(`forged pool entry ${a} is not IPv4`);
  return Buffer.from(a.split('.').map(Number));
}

function ipv6Bytes(a: string): Buffer {
  if (!isIPv6(a)) throw new RangeError(`forged pool entry ${a} is not IPv6`);
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return out;
}

/**
 * Forged-address pools. The measured pools are public, routable addresses, many owned by US
 * companies (Facebook, Twitter, Dropbox); these are addresses of that kind. The lab never
 * connects to them: its dialers refuse anything outside 127/8.
 */
export const FORGED_POOL_V4: readonly string[] = [
  '31.13.66.23',
  '157.240.12.35',
  '104.244.46.71',
  '162.125.8.1',
  '69.171.229.11',
  '108.160.166.142',
  '199.59.148.20',
  '31.13.94.41',
];
export const FORGED_POOL_V6: readonly string[] = [
  '2001::c73b:9414',
  '2001::1f0d:5e29',
  '2a03:2880:f10d:83:face:b00c:0:25de',
];

/** Round-robin over ordered pools, one cursor per domain group (the matching rule). */
export class ForgedPool {
  readonly #v4: readonly string[];
  readonly #v6: readonly string[];
  readonly #cursor = new Map<string, number>();

  constructor(v4: readonly string[] = FORGED_POOL_V4, v6: readonly string[] = FORGED_POOL_V6) {
    this.#v4 = v4;
    this.#v6 = v6;
  }

  next(group: string, v6: boolean): string {
    const pool = v6 ? this.#v6 : this.#v4;
    const key = `${v6 ? 6 : 4}:${group}`;
    const i = this.#cursor.get(key) ?? 0;
    this.#cursor.set(key, i + 1);
    return pool[i % pool.length]!;
  }

  isForged(address: string): boolean {
    return this.#v4.includes(address) || this.#v6.includes(address);
  }
}
