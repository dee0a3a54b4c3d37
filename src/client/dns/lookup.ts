/**
 * Name lookup for the direct and fragment routes (D11), over one of our DnsResolvers instead of
 * the system resolver, so a direct connection never goes to an injected address:
 *
 *   const lookup = new DirectLookup({ resolver, clock? });
 *   const r = await lookup.lookup('example.com');
 *     // { address: '93.184.216.34' } | { forged: true } | { error: 'NXDOMAIN' | 'SERVFAIL' | ... }
 *
 * - With a TunnelDnsResolver the name is resolved at the server's side (the genuine answer), and
 *   only the connection itself goes direct.
 * - With a FilteringUdpResolver a query that drew forged replies is reported `forged` (even when
 *   the late genuine answer was found, the censor is interfering with this name: auto routing
 *   then tunnels it), and a forged address is never returned.
 *
 * Asks A first, then AAAA when there is no A record. Positive answers are cached for their TTL
 * (at most 5 min, at least 5 s); at most 1,000 names, oldest dropped first. Logs nothing.
 */
import { randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { decodeDns } from '../../protocol/dns/message.js';
import { systemClock, type Clock } from '../../shared/clock.js';
import { DnsError, FilteringUdpResolver, type DnsResolver } from './resolvers.js';

/**
 * `forged`: the censor answered for this name; `address` is the genuine answer when the stub
 * still found one (use it only when there is no tunnel to move the name to).
 */
export type LookupResult = { address: string } | { forged: true; address?: string } | { error: string };

export interface DirectLookupOptions {
  resolver: DnsResolver;
  clock?: Clock;
  maxEntries?: number;
}

const MAX_TTL_S = 300;
const MIN_TTL_S = 5;

export class DirectLookup {
  readonly #resolver: DnsResolver;
  readonly #clock: Clock;
  readonly #max: number;
  readonly #cache = new Map<string, { address: string; until: number }>();

  constructor(opts: DirectLookupOptions) {
    this.#resolver = opts.resolver;
    this.#clock = opts.clock ?? systemClock;
    this.#max = opts.maxEntries ?? 1000;
  }

  async lookup(name: string): Promise<LookupResult> {
    const key = name.toLowerCase().replace(/\.$/, '');
    const hit = this.#cache.get(key);
    if (hit && hit.until > this.#clock.now()) return { address: hit.address };
    if (hit) this.#cache.delete(key);
    let last: LookupResult = { error: 'NODATA' };
    for (const type of ['A', 'AAAA'] as const) {
      const r = await this.#ask(key, type);
      if ('forged' in r) return r;
      if ('address' in r) {
        this.#cache.set(key, { address: r.address, until: this.#clock.now() + r.ttl * 1000 });
        while (this.#cache.size > this.#max) this.#cache.delete(this.#cache.keys().next().value!);
        return { address: r.address };
      }
      last = r;
      if (r.error !== 'NODATA') return r;
    }
    return last;
  }

  async #ask(
    name: string,
    type: 'A' | 'AAAA',
  ): Promise<{ address: string; ttl: number } | { forged: true } | { error: string }> {
    const query = dnsPacket.encode({
      type: 'query',
      id: randomInt(0x10000),
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name }],
    });
    let response: Buffer;
    try {
      if (this.#resolver instanceof FilteringUdpResolver) {
        const d = await this.#resolver.resolveDetailed(query);
        response = d.response;
        if (d.forgedCount > 0) {
          const genuine = d.genuineCount > 0 ? this.#addressIn(response, type) : undefined;
          return genuine ? { forged: true, address: genuine.address } : { forged: true };
        }
      } else {
        response = await this.#resolver.resolve(query);
      }
    } catch (err) {
      return { error: err instanceof DnsError ? 'SERVFAIL' : 'ERROR' };
    }
    let r;
    try {
      r = decodeDns(response) as ReturnType<typeof decodeDns> & { rcode?: string };
    } catch {
      return { error: 'FORMERR' };
    }
    if (r.rcode && r.rcode !== 'NOERROR') return { error: r.rcode };
    return this.#addressIn(response, type) ?? { error: 'NODATA' };
  }

  #addressIn(response: Buffer, type: 'A' | 'AAAA'): { address: string; ttl: number } | undefined {
    let r;
    try {
      r = decodeDns(response);
    } catch {
      return undefined;
    }
    for (const a of r.answers ?? []) {
      if (a.type === type && typeof (a as { data?: unknown }).data === 'string') {
        const ttl = Math.min(MAX_TTL_S, Math.max(MIN_TTL_S, (a as { ttl?: number }).ttl ?? MIN_TTL_S));
        return { address: (a as { data: string }).data, ttl };
      }
    }
    return undefined;
  }
}
