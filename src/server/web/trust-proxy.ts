/**
 * Which client address to believe when the web front sits behind a reverse proxy or CDN
 * (`--trust-proxy CIDR`, repeatable). The forwarding headers — `Forwarded: for=` (RFC 7239),
 * `X-Forwarded-For`, `CF-Connecting-IP` — are read only when the socket peer is inside a trusted
 * range; otherwise anyone could claim any address. Within a trusted peer's headers the answer is
 * the rightmost hop that is not itself trusted (a client can prepend whatever it likes, but each
 * trusted proxy appends the address it saw).
 *
 * The address is used for key recency and metrics, never for logs.
 */
import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

export class TrustProxyError extends Error {
  override readonly name = 'TrustProxyError';
  readonly code = 'ERR_TRUST_PROXY';
  constructor(
    readonly entry: string,
    why: string,
  ) {
    super(`--trust-proxy: bad entry ${JSON.stringify(entry)}: ${why}`);
  }
}

/** A parsed list of trusted ranges. */
export interface TrustedProxies {
  /** True when `address` (v4, v6 or v4-mapped v6) is inside one of the ranges. */
  contains(address: string): boolean;
  /** The ranges as given, normalised (`a.b.c.d/n`, `x::/n`). */
  readonly ranges: readonly string[];
}

/** Strip an IPv4-mapped IPv6 prefix (`::ffff:1.2.3.4` → `1.2.3.4`), lower-case v6. */
export function normaliseAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (m?.[1] !== undefined) return m[1];
  return address.toLowerCase();
}

/**
 * Parse `CIDR` entries: `10.0.0.0/8`, `192.0.2.7` (a single host), `2001:db8::/32`, `::1`.
 * Also accepts comma-separated entries inside one string. Throws TrustProxyError naming the
 * first bad entry.
 */
export function parseTrustedProxies(entries: readonly string[]): TrustedProxies {
  const list = new BlockList();
  const ranges: string[] = [];
  for (const raw of entries.flatMap((e) => e.split(','))) {
    const entry = raw.trim();
    if (entry === '') continue;
    const slash = entry.indexOf('/');
    const addrPart = slash < 0 ? entry : entry.slice(0, slash);
    const addr = normaliseAddress(addrPart);
    const family = isIP(addr);
    if (family === 0)
      throw new TrustProxyError(raw, `${JSON.stringify(addrPart)} is not an IPv4 or IPv6 address`);
    const max = family === 4 ? 32 : 128;
    let prefix = max;
    if (slash >= 0) {
      const p = entry.slice(slash + 1);
      if (!/^\d{1,3}$/.test(p) || Number(p) > max)
        throw new TrustProxyError(raw, `prefix length ${JSON.stringify(p)} must be 0..${max}`);
      prefix = Number(p);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    list.addSubnet(addr, prefix, type);
    ranges.push(`${addr}/${prefix}`);
  }
  return {
    ranges,
    contains(address: string): boolean {
      const a = normaliseAddress(address);
      const family = isIP(a);
      if (family === 0) return false;
      return list.check(a, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/** One hop of a forwarding header as an address, or undefined (`unknown`, `_hidden`, garbage). */
export function parseHop(token: string): string | undefined {
  let t = token.trim();
  if (t.startsWith('"') && t.endsWith('"') && t.length >= 2) t = t.slice(1, -1).trim();
  if (t.startsWith('[')) {
    const end = t.indexOf(']');
    if (end < 0) return undefined;
    t = t.slice(1, end);
  } else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(t)) {
    t = t.slice(0, t.lastIndexOf(':'));
  }
  const a = normaliseAddress(t);
  return isIP(a) === 0 ? undefined : a;
}

function headerValues(req: IncomingMessage, name: string): string[] {
  const v = req.headers[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** `for=` values of a `Forwarded` header, left to right (other parameters ignored). */
function forwardedFor(values: string[]): string[] {
  const out: string[] = [];
  for (const element of values.join(',').split(',')) {
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      if (pair.slice(0, eq).trim().toLowerCase() === 'for') out.push(pair.slice(eq + 1));
    }
  }
  return out;
}

/**
 * Walk `hops` (left = client side) from the right, starting from a trusted `peer`: the first
 * untrusted hop is the client. An unparseable hop stops the walk at the last trusted address
 * (we cannot say who is behind it); if every hop is trusted, the leftmost is the answer.
 */
function rightmostUntrusted(hops: string[], peer: string, trusted: TrustedProxies): string {
  let last = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const a = parseHop(hops[i] ?? '');
    if (a === undefined) return last;
    if (!trusted.contains(a)) return a;
    last = a;
  }
  return last;
}

/**
 * The client address for `req`: the socket peer, unless the peer is trusted and sent forwarding
 * headers. One header is read, in this order, the next only when the one before is absent:
 * `X-Forwarded-For` (what nginx's `$proxy_add_x_forwarded_for`, Caddy, HAProxy and CDNs append),
 * `Forwarded` (RFC 7239), `CF-Connecting-IP` (one address, Cloudflare's own). Never two at once:
 * a proxy passes on the headers it does not write, so a client's own `Forwarded: for=` behind an
 * nginx that appends to X-Forwarded-For would otherwise choose the client's address (nginx's
 * real_ip_header also reads one header).
 */
export function clientAddress(req: IncomingMessage, trusted: TrustedProxies | undefined): string {
  const peer = normaliseAddress(req.socket.remoteAddress ?? '');
  if (trusted === undefined || !trusted.contains(peer)) return peer;
  const xff = headerValues(req, 'x-forwarded-for').join(',').split(',');
  if (xff.some((h) => h.trim() !== '')) return rightmostUntrusted(xff, peer, trusted);
  const fwd = forwardedFor(headerValues(req, 'forwarded'));
  if (fwd.length > 0) return rightmostUntrusted(fwd, peer, trusted);
  const cf = headerValues(req, 'cf-connecting-ip');
  if (cf.length === 1) return rightmostUntrusted(cf, peer, trusted);
  return peer;
}
