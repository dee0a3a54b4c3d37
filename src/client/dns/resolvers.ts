/**
 * D11 resolvers (research notes §4, §9 D11). Both take a raw DNS query and give back a raw DNS
 * response; neither ever returns an answer it judged forged.
 *
 *   interface DnsResolver { resolve(query: Buffer): Promise<Buffer> }
 *
 *   new TunnelDnsResolver({ dial, upstream, timeoutMs? })
 *     DNS over TCP (2-byte framing) on a stream from `dial(upstream, firstData)`: the tunnel
 *     dialer, so queries for remote names never leave the client as plaintext UDP/53. The query
 *     is the dial's firstData, so it rides in the tunnel's first packet. One stream per query.
 *     Adapter from a transport Dialer:
 *       dial = async (dest, first) => { const s = new DialerStream(dialer, dest); if (first) s.write(first); return s; }
 *
 *   new FilteringUdpResolver({ upstream, windowMs = 300, timeoutMs = 2000, forged?, ... })
 *     Plain DNS over UDP that recognises injected answers (type mismatch, known forged address,
 *     AA on a recursive path): after the first related reply it keeps listening for `windowMs`
 *     for the later genuine one, then returns the last reply that is not forged, or SERVFAIL if
 *     only forged ones came. Each query uses a fresh socket (random source port) and a random id.
 *     `onForged` reports detections (auto routing moves the name to the tunnel).
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { SocksAddress } from '../../protocol/socks5/address.js';
import { IpSet } from '../../protocol/dns/ip-set.js';
import {
  decodeDns,
  frameTcp,
  inspectResponse,
  queryId,
  servfailFor,
  TcpFrameDecoder,
  withId,
  type DecodedPacket,
  type ForgeryReason,
  type InspectOptions,
  type Inspection,
} from '../../protocol/dns/message.js';
import { systemClock, type Clock, type Timer } from '../../shared/clock.js';

export interface DnsResolver {
  resolve(query: Buffer): Promise<Buffer>;
}

export type DnsDial = (dest: SocksAddress, firstData?: Buffer) => Promise<Duplex>;

export class DnsError extends Error {
  override readonly name = 'DnsError';
}

export interface TunnelDnsResolverOptions {
  dial: DnsDial;
  /** The resolver on the far side, e.g. { type: 'ipv4', host: '1.1.1.1', port: 53 }. */
  upstream: SocksAddress;
  timeoutMs?: number;
  clock?: Clock;
}

export class TunnelDnsResolver implements DnsResolver {
  readonly #o: Required<Omit<TunnelDnsResolverOptions, 'clock'>> & { clock: Clock };

  constructor(opts: TunnelDnsResolverOptions) {
    this.#o = { timeoutMs: 5000, clock: systemClock, ...opts };
  }

  async resolve(query: Buffer): Promise<Buffer> {
    const origId = queryId(query);
    const id = randomInt(0x10000);
    const wireQuery = withId(query, id);
    const stream = await this.#o.dial(this.#o.upstream, frameTcp(wireQuery));
    return await new Promise<Buffer>((resolve, reject) => {
      const dec = new TcpFrameDecoder();
      const t: { timer?: Timer } = {};
      const finish = (err: Error | undefined, msg?: Buffer): void => {
        if (t.timer) this.#o.clock.clearTimeout(t.timer);
        stream.off('data', onData);
        stream.off('error', onError);
        stream.off('end', onEnd);
        stream.on('error', () => {});
        stream.destroy();
        if (err) reject(err);
        else resolve(msg!);
      };
      const onData = (chunk: Buffer): void => {
        for (const m of dec.push(chunk)) {
          if (m.length >= 12 && queryId(m) === id) {
            finish(undefined, withId(m, origId));
            return;
          }
        }
      };
      const onError = (err: Error): void => finish(new DnsError(`tunnel DNS stream failed: ${err.message}`));
      const onEnd = (): void => finish(new DnsError('tunnel DNS stream closed before the answer'));
      t.timer = this.#o.clock.setTimeout(() => finish(new DnsError(`no tunnel DNS answer in ${this.#o.timeoutMs} ms`)), this.#o.timeoutMs);
      t.timer.unref?.();
      stream.on('data', onData);
      stream.once('error', onError);
      stream.once('end', onEnd);
    });
  }
}

export interface FilteringUdpResolverOptions {
  upstream: { host: string; port: number };
  /** How long to keep listening after the first related reply (default 300 ms). */
  windowMs?: number;
  /** Give up (SERVFAIL) when no reply at all came in this time (default 2000 ms). */
  timeoutMs?: number;
  /** Known forged answer addresses (IPs or CIDRs). */
  forged?: IpSet | Iterable<string>;
  /** Treat AA on our RD=1 queries as a forgery sign (default true: we only ask recursive resolvers). */
  flagAaOnRecursive?: boolean;
  /** Treat private/loopback answers as forged (default false). */
  flagPrivate?: boolean;
  /**
   * An address across the censored path with no resolver behind it (research §4.3 rule 6).
   * The query is sent there too; any reply from it is injected, and its addresses join the
   * learned forged pool, which then also catches the same forged reply from the real upstream.
   */
  canary?: { host: string; port: number } | undefined;
  clock?: Clock;
  /** Called once per query that drew at least one forged reply. Carries no name by default. */
  onForged?: (info: { reasons: StubForgeryReason[]; question: string | undefined; genuineFound: boolean }) => void;
}

export type StubForgeryReason = ForgeryReason | 'canary-reply';

export interface ResolveDetail {
  response: Buffer;
  forgedCount: number;
  genuineCount: number;
  reasons: StubForgeryReason[];
}

export class FilteringUdpResolver implements DnsResolver {
  readonly #upstream: { host: string; port: number };
  readonly #windowMs: number;
  readonly #timeoutMs: number;
  readonly #forged: IpSet;
  readonly #flagAa: boolean;
  readonly #flagPrivate: boolean;
  readonly #clock: Clock;
  readonly #onForged: FilteringUdpResolverOptions['onForged'];
  readonly #canary: { host: string; port: number } | undefined;
  /** Addresses seen in canary replies (bounded). */
  readonly #learned = new IpSet();

  constructor(opts: FilteringUdpResolverOptions) {
    this.#upstream = opts.upstream;
    this.#windowMs = opts.windowMs ?? 300;
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#forged = opts.forged instanceof IpSet ? opts.forged : new IpSet(opts.forged ?? []);
    this.#flagAa = opts.flagAaOnRecursive ?? true;
    this.#flagPrivate = opts.flagPrivate ?? false;
    this.#clock = opts.clock ?? systemClock;
    this.#onForged = opts.onForged;
    this.#canary = opts.canary;
  }

  /** How many forged addresses the canary has taught us. */
  get learnedForged(): number {
    return this.#learned.size;
  }

  #isForgedAddress(ip: string): boolean {
    return this.#forged.has(ip) || this.#learned.has(ip);
  }

  async resolve(query: Buffer): Promise<Buffer> {
    return (await this.resolveDetailed(query)).response;
  }

  resolveDetailed(query: Buffer): Promise<ResolveDetail> {
    const q = decodeDns(query);
    const origId = q.id ?? 0;
    const id = randomInt(0x10000);
    const wire = withId(query, id);
    const sentQuery: DecodedPacket = { ...q, id };
    const family = this.#upstream.host.includes(':') ? 'udp6' : 'udp4';
    const sock = dgram.createSocket(family);
    return new Promise<ResolveDetail>((resolve) => {
      let lastGenuine: Buffer | undefined;
      let genuineCount = 0;
      let forgedCount = 0;
      const reasons = new Set<StubForgeryReason>();
      const pending: Buffer[] = [];
      let windowTimer: Timer | undefined;
      let overall: Timer | undefined;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        if (overall) this.#clock.clearTimeout(overall);
        if (windowTimer) this.#clock.clearTimeout(windowTimer);
        try {
          sock.close();
        } catch {
          // already closed after a socket error
        }
        if (forgedCount > 0) {
          this.#onForged?.({ reasons: [...reasons], question: q.questions?.[0]?.name, genuineFound: lastGenuine !== undefined });
        }
        const response = lastGenuine ? withId(lastGenuine, origId) : servfailFor(query);
        resolve({ response, forgedCount, genuineCount, reasons: [...reasons] });
      };
      const inspectOpts: InspectOptions = {
        forged: { has: (ip: string) => this.#isForgedAddress(ip) },
        flagAaOnRecursive: this.#flagAa,
        flagPrivate: this.#flagPrivate,
      };
      const judge = (r: DecodedPacket): Inspection => inspectResponse(sentQuery, r, inspectOpts);
      const fromCanary = (addr: string, port: number): boolean =>
        this.#canary !== undefined && port === this.#canary.port && addr === this.#canary.host;
      const fromUpstream = (addr: string, port: number): boolean => port === this.#upstream.port && addr === this.#upstream.host;
      sock.on('message', (msg, rinfo) => {
        if (done) return;
        const canary = fromCanary(rinfo.address, rinfo.port);
        if (!canary && !fromUpstream(rinfo.address, rinfo.port)) return;
        let r: DecodedPacket;
        try {
          r = decodeDns(msg);
        } catch {
          return;
        }
        const ins = judge(r);
        if (!ins.related) return;
        if (canary) {
          forgedCount++;
          reasons.add('canary-reply');
          if (this.#learned.size < 4096) for (const ip of ins.addresses) this.#learned.add(ip);
          // Re-judge upstream replies already accepted: they may carry the same forged address.
          if (lastGenuine) {
            const again = [...pending];
            lastGenuine = undefined;
            genuineCount = 0;
            for (const m of again) {
              const j = judge(decodeDns(m));
              if (j.forged) {
                forgedCount++;
                for (const x of j.reasons) reasons.add(x);
              } else {
                genuineCount++;
                lastGenuine = m;
              }
            }
          }
        } else if (ins.forged) {
          forgedCount++;
          for (const x of ins.reasons) reasons.add(x);
        } else {
          genuineCount++;
          lastGenuine = msg;
          pending.push(msg);
        }
        // The window opens at the first related reply; the genuine one usually comes later.
        if (!windowTimer) {
          if (overall) this.#clock.clearTimeout(overall);
          overall = undefined;
          windowTimer = this.#clock.setTimeout(finish, this.#windowMs);
          windowTimer.unref?.();
        }
      });
      sock.on('error', () => finish());
      overall = this.#clock.setTimeout(finish, this.#timeoutMs);
      overall.unref?.();
      sock.send(wire, this.#upstream.port, this.#upstream.host, (err) => {
        if (err) finish();
      });
      if (this.#canary) sock.send(wire, this.#canary.port, this.#canary.host, () => {});
    });
  }
}
