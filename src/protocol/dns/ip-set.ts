/**
 * A set of IPv4/IPv6 addresses and CIDR prefixes with a membership test. Pure. Used for the
 * known-forged DNS answer pool (D11) and for CIDR routing rules (src/client/routing).
 *
 * API:
 *   parseCidr(text)   -> { version, bits: bigint, prefix } ; ProtocolError('ERR_ADDRESS') if bad
 *   new IpSet(entries?) ; add(text) ; has(ip) -> boolean ; size
 *   ipToBigInt(ip)    -> { version, value } | undefined (not an IP literal)
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ProtocolError } from '../errors.js';

export type IpVersion = 4 | 6;

export function ipToBigInt(ip: string): { version: IpVersion; value: bigint } | undefined {
  let t = ip.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const zone = t.indexOf('%');
  if (zone !== -1) t = t.slice(0, zone);
  if (isIPv4(t)) {
    let v = 0n;
    for (const part of t.split('.')) v = (v << 8n) | BigInt(Number(part));
    return { version: 4, value: v };
  }
  if (!isIPv6(t)) return undefined;
  // Expand an embedded IPv4 tail into two groups.
  const lastColon = t.lastIndexOf(':');
  const tail = t.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = ipToBigInt(tail)!.value;
    t = `${t.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, rest] = t.includes('::') ? t.split('::') : [t, undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g || '0', 16));
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches the IPv4 entries.
  if (v >> 32n === 0xffffn) return { version: 4, value: v & 0xffff_ffffn };
  return { version: 6, value: v };
}

export interface Cidr {
  readonly version: IpVersion;
  /** Network bits (host bits zeroed). */
  readonly value: bigint;
  readonly prefix: number;
}

export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const ipText = slash === -1 ? text : text.slice(0, slash);
  const ip = ipToBigInt(ipText);
  if (!ip) throw new ProtocolError('ERR_ADDRESS', `"${text}" is not an IP address or CIDR`);
  const width = ip.version === 4 ? 32 : 128;
  const textWidth = ipText.includes(':') ? 128 : 32;
  let prefix = width;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > textWidth)
      throw new ProtocolError('ERR_ADDRESS', `bad prefix length in "${text}"`);
    prefix = Number(p);
    // Mapped ::ffff:a.b.c.d/120 -> IPv4 /24.
    if (ip.version === 4 && textWidth === 128) prefix = Math.max(0, prefix - 96);
  }
  const hostBits = BigInt(width - prefix);
  return { version: ip.version, value: (ip.value >> hostBits) << hostBits, prefix };
}

export class IpSet {
  readonly #byPrefix = new Map<string, Set<bigint>>();
  #size = 0;

  constructor(entries: Iterable<string> = []) {
    for (const e of entries) this.add(e);
  }

  get size(): number {
    return this.#size;
  }

  add(entry: string): this {
    const c = parseCidr(entry.trim());
    const k = `${c.version}/${c.prefix}`;
    let s = this.#byPrefix.get(k);
    if (!s) this.#byPrefix.set(k, (s = new Set()));
    if (!s.has(c.value)) {
      s.add(c.value);
      this.#size++;
    }
    return this;
  }

  /** True if `ip` (an IP literal) is inside any entry; false for non-IP text. */
  has(ip: string): boolean {
    const a = ipToBigInt(ip);
    if (!a) return false;
    const width = a.version === 4 ? 32 : 128;
    for (const [k, set] of this.#byPrefix) {
      const [v, p] = k.split('/');
      if (Number(v) !== a.version) continue;
      const hostBits = BigInt(width - Number(p));
      if (set.has((a.value >> hostBits) << hostBits)) return true;
    }
    return false;
  }
}
