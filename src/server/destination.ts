import dns from 'node:dns';
import net from 'node:net';
import { ipToBytes, type SocksAddress } from '../protocol/socks5/address.js';
import type { Clock } from '../shared/clock.js';

/**
 * Destinations a key holder may not reach through the server unless the operator allows it
 * (like Outline): the server host's own services, the LAN behind it, cloud metadata endpoints.
 * Checked after name resolution, so a domain that resolves to 127.0.0.1 is refused too.
 */
export const PRIVATE_V4: readonly (readonly [string, number])[] = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // shared address space (CGNAT)
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];
const PRIVATE = new net.BlockList();
for (const [net4, bits] of PRIVATE_V4) PRIVATE.addSubnet(net4, bits, 'ipv4');
PRIVATE.addAddress('::', 'ipv6');
PRIVATE.addAddress('::1', 'ipv6');
PRIVATE.addSubnet('fc00::', 7, 'ipv6'); // unique local
PRIVATE.addSubnet('fe80::', 10, 'ipv6'); // link-local
PRIVATE.addSubnet('ff00::', 8, 'ipv6'); // multicast

/**
 * IPv6 forms that carry an IPv4 address in their last 32 bits and reach it: IPv4-compatible
 * ::/96 (deprecated, still routed by some stacks) and the NAT64 well-known prefix 64:ff9b::/96
 * (a NAT64 gateway turns it into the IPv4 address). IPv4-mapped ::ffff:0:0/96 BlockList handles.
 */
const EMBEDS_V4 = new net.BlockList();
EMBEDS_V4.addSubnet('::', 96, 'ipv6');
EMBEDS_V4.addSubnet('64:ff9b::', 96, 'ipv6');

/**
 * True for loopback, private, link-local, unspecified, multicast, and for IPv6 addresses that
 * embed such an IPv4 address (mapped, compatible, NAT64 64:ff9b::/96). The C fast path of the
 * UDP relay applies the same rule (native/udp_fastpath.cc IsPrivate4/IsPrivate6; held equal by
 * src/server/destination.test.ts).
 */
export function isPrivateAddress(ip: string): boolean {
  const v4 = ipv4Number(ip);
  if (v4 !== undefined) return isPrivate4(v4);
  const family = net.isIP(ip);
  if (family === 4) return PRIVATE.check(ip, 'ipv4');
  if (family === 6) {
    const bare = ip.split('%')[0]!;
    if (PRIVATE.check(bare, 'ipv6')) return true;
    if (!EMBEDS_V4.check(bare, 'ipv6')) return false;
    const b = ipToBytes(bare)!; // a valid IPv6 literal here
    return PRIVATE.check(b.subarray(12).join('.'), 'ipv4');
  }
  return true; // not an IP at all: refuse
}

/**
 * A dotted-quad IPv4 literal ("a.b.c.d", decimal, no leading zeros) as an unsigned 32-bit number,
 * or undefined for anything else (which then takes net.isIP and BlockList). Parsed by hand: a
 * server checks each destination, and BlockList.check parses the string into a C++ address on
 * every call (~2-3 µs, against ~0.1 here).
 */
function ipv4Number(ip: string): number | undefined {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return undefined;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return undefined; // a leading zero
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + part;
}

/** The IPv4 ranges of PRIVATE_V4 above, on the number ipv4Number gives (held equal by a test). */
function isPrivate4(a: number): boolean {
  const top = a >>> 24;
  if (top === 0 || top === 10 || top === 127 || top >= 224) return true;
  const top16 = a >>> 16;
  if (top16 === 0xa9fe || top16 === 0xc0a8) return true; // 169.254/16, 192.168/16
  if (a >>> 20 === 0xac1) return true; // 172.16/12
  return a >>> 22 === 0x191; // 100.64/10
}

export type DialFailure = 'ERR_RESOLVE' | 'ERR_FORBIDDEN' | 'ERR_CONNECT';

export class DialError extends Error {
  override readonly name = 'DialError';
  constructor(
    readonly status: DialFailure,
    message: string,
    /** ERR_CONNECT: the system error code (ECONNREFUSED, EHOSTUNREACH…; ETIMEDOUT for our budget). */
    readonly errno?: string,
  ) {
    super(message);
  }
}

/** Name resolution: every address of a name, in resolver order. */
export type Lookup = (host: string) => Promise<{ address: string; family: number }[]>;

export interface DialOptions {
  allowPrivate: boolean;
  timeoutMs: number;
  clock: Clock;
  /** Name resolution (injectable for tests); default dns.lookup with all addresses. */
  lookup?: Lookup;
}

/** dns.lookup with all addresses, in the resolver's order. */
export const defaultLookup: Lookup = (host) => dns.promises.lookup(host, { all: true, verbatim: true });

/** A name's addresses in resolver order; DialError ERR_RESOLVE when it has none. */
export async function resolveName(host: string, lookup: Lookup = defaultLookup): Promise<string[]> {
  let found: { address: string; family: number }[];
  try {
    found = await lookup(host);
  } catch {
    throw new DialError('ERR_RESOLVE', 'destination name did not resolve');
  }
  if (found.length === 0) throw new DialError('ERR_RESOLVE', 'destination name did not resolve');
  return found.map((f) => f.address);
}

/**
 * A server's dial policy (its connection context) as dialWith's options; names resolve through
 * its name cache when it has one (names.ts), else through `lookup`.
 */
export function dialOptions(
  c: {
    readonly allowPrivateDestinations: boolean;
    readonly connectMs: number;
    readonly clock: Clock;
    readonly lookup: Lookup | undefined;
    readonly names?: { lookupFor(who?: string): Lookup } | undefined;
  },
  /** The access key's id: the name cache queues and limits lookups per key. */
  who?: string,
): DialOptions {
  const lookup = c.names?.lookupFor(who) ?? c.lookup;
  return {
    allowPrivate: c.allowPrivateDestinations,
    timeoutMs: c.connectMs,
    clock: c.clock,
    ...(lookup ? { lookup } : {}),
  };
}

/**
 * The lookup for key `who`'s names: through the server's name cache when it has one (its limits:
 * names.ts, name-lookups.ts), else `lookup`, else the system's. The UDP paths resolve here.
 */
export function lookupOf(
  c: {
    readonly lookup: Lookup | undefined;
    readonly names?: { lookupFor(who?: string): Lookup } | undefined;
  },
  who?: string,
): Lookup {
  return c.names?.lookupFor(who) ?? c.lookup ?? defaultLookup;
}

/** The addresses the private rule lets a dial use; throws ERR_FORBIDDEN when none is left. */
export function allowedAddresses(candidates: string[], allowPrivate: boolean): string[] {
  if (allowPrivate) return candidates;
  const allowed = candidates.filter((ip) => !isPrivateAddress(ip));
  if (allowed.length === 0) throw new DialError('ERR_FORBIDDEN', 'destination is a private address');
  return allowed;
}

/** dialWith's connect through a net.Socket (dialDestination's). */
export function connectSocket(ip: string, port: number, deadline: number, clock: Clock): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: ip, port, allowHalfOpen: true, noDelay: true });
    const timer = clock.setTimeout(
      () => {
        s.destroy();
        reject(new DialError('ERR_CONNECT', 'connect timed out', 'ETIMEDOUT'));
      },
      Math.max(1, deadline - clock.now()),
    );
    timer.unref?.();
    s.once('connect', () => {
      clock.clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clock.clearTimeout(timer);
      s.destroy();
      reject(new DialError('ERR_CONNECT', `connect failed: ${err.code ?? err.message}`, err.code));
    });
  });
}

/**
 * The least time an address is given before the next is tried: a lost SYN is sent again after
 * the kernel's initial 1 s timeout, so 2 s lets a lossy but live address answer.
 */
export const MIN_ATTEMPT_MS = 2000;

/**
 * When the attempt on the first of `left` addresses must give up: an equal share of what is left
 * of the budget, but at least MIN_ATTEMPT_MS (never past `deadline`); the last one gets all that
 * is left. So an address that never answers (a dead AAAA, a filtered IP) no longer spends the
 * budget of the addresses after it (a dial used to give the first one all of it).
 */
export function attemptDeadline(now: number, deadline: number, left: number): number {
  if (left <= 1) return deadline;
  return Math.min(deadline, now + Math.max((deadline - now) / left, MIN_ATTEMPT_MS));
}

/** One connection attempt to ip:port before `deadline` (clock time); DialError on failure. */
export type ConnectOnce<T> = (ip: string, port: number, deadline: number, clock: Clock) => Promise<T>;

/**
 * Resolve (if a domain) and connect to a destination, refusing private addresses unless
 * allowed. Tries each allowed address in resolver order, each within its share of the time
 * budget (attemptDeadline), until one connects or the budget runs out. Error messages never contain the destination.
 */
export function dialDestination(addr: SocksAddress, opts: DialOptions): Promise<net.Socket> {
  return dialWith(addr, opts, connectSocket);
}

/** dialDestination with another way to connect (the native relay's: a bare descriptor). */
export async function dialWith<T>(
  addr: SocksAddress,
  opts: DialOptions,
  connect: ConnectOnce<T>,
): Promise<T> {
  const deadline = opts.clock.now() + opts.timeoutMs;
  const found = addr.type === 'domain' ? await resolveName(addr.host, opts.lookup) : [addr.host];
  const candidates = allowedAddresses(found, opts.allowPrivate);
  let last: unknown;
  for (let i = 0; i < candidates.length; i++) {
    const now = opts.clock.now();
    if (now >= deadline) break;
    try {
      return await connect(
        candidates[i]!,
        addr.port,
        attemptDeadline(now, deadline, candidates.length - i),
        opts.clock,
      );
    } catch (err) {
      last = err;
    }
  }
  throw last instanceof DialError ? last : new DialError('ERR_CONNECT', 'connect timed out', 'ETIMEDOUT');
}
