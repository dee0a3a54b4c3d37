/**
 * D11 resolvers (docs/glossary.md C2, D11). Both take a raw DNS query and give back a raw DNS
 * response; neither ever returns an answer it judged forged.
 *
 *   interface DnsResolver { resolve(query: Buffer): Promise<Buffer> }
 *
 *   new TunnelDnsResolver({ dial, upstream, timeoutMs?, reuse? = true, idleMs? })
 *     DNS over TCP (2-byte framing) on a stream from `dial(upstream, firstData)`: the tunnel
 *     dialer, so queries for remote names never leave the client as plaintext UDP/53. The first
 *     query of a stream is the dial's firstData, so it rides in the tunnel's first packet; later
 *     queries are pipelined on the same stream until it idles out (or one stream per query with
 *     reuse: false). A query caught by a stale stream closing under it is resent once.
 *     Adapter from a transport Dialer:
 *       dial = async (dest, first) => { const s = new DialerStream(dialer, dest); if (first) s.write(first); return s; }
 *
 *   new FilteringUdpResolver({ upstream, windowMs = 300, timeoutMs = 2000, forged?, ... })
 *     Plain DNS over UDP that recognises injected answers (type mismatch, known forged address,
 *     optionally AA on a recursive path, optionally a canary): after the first related reply it
 *     keeps listening for `windowMs` for the later genuine one, then returns the last reply that
 *     is not forged, or SERVFAIL if only forged ones came. Each query uses a fresh socket (random source port) and a random id.
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
import { CodedError } from '../../shared/errors.js';

export interface DnsResolver {
  resolve(query: Buffer): Promise<Buffer>;
}

export type DnsDial = (dest: SocksAddress, firstData?: Buffer) => Promise<Duplex>;

export type DnsErrorCode =
  | 'ERR_DNS_CLOSED' // the resolver was closed with the query pending
  | 'ERR_DNS_TIMEOUT' // no answer within the per-query limit
  | 'ERR_DNS_DIAL' // the tunnel to the upstream resolver could not be opened
  | 'ERR_DNS_STREAM'; // the tunnel stream failed or closed before the answer

/** A query the tunnel resolver could not get answered (the local DNS server answers SERVFAIL). */
export class DnsError extends CodedError<DnsErrorCode> {
  override readonly name = 'DnsError';
}

export interface TunnelDnsResolverOptions {
  dial: DnsDial;
  /** The resolver on the far side, e.g. { type: 'ipv4', host: '1.1.1.1', port: 53 }. */
  upstream: SocksAddress;
  /** Per-query limit (default 5 s). */
  timeoutMs?: number;
  /**
   * Keep one tunnel stream open and pipeline queries on it (RFC 7766 §6.2.1), default true.
   * The first query of a stream rides in the dial's first data. A stream idle this long is closed
   * (`idleMs`, default 10 s). false: one stream per query.
   */
  reuse?: boolean;
  idleMs?: number;
  clock?: Clock;
}

interface Pending {
  readonly origId: number;
  readonly framed: Buffer;
  readonly resolve: (b: Buffer) => void;
  readonly reject: (e: Error) => void;
  timer: Timer | undefined;
  /** Already resent once after its stream died. */
  retried: boolean;
}

interface TunnelConn {
  stream: Duplex | undefined;
  readonly queue: Buffer[];
  readonly pending: Map<number, Pending>;
  dead: boolean;
  answered: number;
  idle: Timer | undefined;
}

export class TunnelDnsResolver implements DnsResolver {
  readonly #dial: DnsDial;
  readonly #upstream: SocksAddress;
  readonly #timeoutMs: number;
  readonly #reuse: boolean;
  readonly #idleMs: number;
  readonly #clock: Clock;
  #conn: TunnelConn | undefined;
  /** Streams dialled so far (for tests and metrics). */
  dials = 0;

  constructor(opts: TunnelDnsResolverOptions) {
    this.#dial = opts.dial;
    this.#upstream = opts.upstream;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#reuse = opts.reuse ?? true;
    this.#idleMs = opts.idleMs ?? 10_000;
    this.#clock = opts.clock ?? systemClock;
  }

  resolve(query: Buffer): Promise<Buffer> {
    const origId = queryId(query);
    return new Promise<Buffer>((resolve, reject) => {
      const p: Pending = {
        origId,
        framed: Buffer.alloc(0),
        resolve,
        reject,
        timer: undefined,
        retried: false,
      };
      this.#send(p, query);
    });
  }

  /** Close the reusable stream (pending queries fail). */
  close(): void {
    if (this.#conn) this.#kill(this.#conn, new DnsError('ERR_DNS_CLOSED', 'resolver closed'), false);
  }

  #freshId(conn: TunnelConn): number {
    for (let i = 0; i < 64; i++) {
      const id = randomInt(0x10000);
      if (!conn.pending.has(id)) return id;
    }
    return randomInt(0x10000);
  }

  #send(p: Pending, query: Buffer): void {
    const reusable = this.#reuse && this.#conn && !this.#conn.dead ? this.#conn : undefined;
    const conn: TunnelConn = reusable ?? {
      stream: undefined,
      queue: [],
      pending: new Map(),
      dead: false,
      answered: 0,
      idle: undefined,
    };
    const id = this.#freshId(conn);
    const framed = frameTcp(withId(query, id));
    const entry: Pending = { ...p, framed };
    conn.pending.set(id, entry);
    if (conn.idle) {
      this.#clock.clearTimeout(conn.idle);
      conn.idle = undefined;
    }
    if (!entry.timer) {
      entry.timer = this.#clock.setTimeout(() => {
        if (conn.pending.get(id) === entry) conn.pending.delete(id);
        entry.reject(new DnsError('ERR_DNS_TIMEOUT', `no tunnel DNS answer in ${this.#timeoutMs} ms`));
        if (!this.#reuse) this.#kill(conn, undefined, false);
        else this.#armIdle(conn);
      }, this.#timeoutMs);
      entry.timer.unref?.();
    }
    if (reusable) {
      if (conn.stream) conn.stream.write(framed);
      else conn.queue.push(framed);
      return;
    }
    if (this.#reuse) this.#conn = conn;
    this.dials++;
    this.#dial(this.#upstream, framed).then(
      (stream) => this.#attach(conn, stream),
      (err: unknown) =>
        this.#kill(
          conn,
          new DnsError(
            'ERR_DNS_DIAL',
            `tunnel DNS dial failed: ${err instanceof Error ? err.message : String(err)}`,
          ),
          false,
        ),
    );
  }

  #attach(conn: TunnelConn, stream: Duplex): void {
    if (conn.dead) {
      stream.on('error', () => {});
      stream.destroy();
      return;
    }
    conn.stream = stream;
    const dec = new TcpFrameDecoder();
    stream.on('data', (chunk: Buffer) => {
      for (const m of dec.push(chunk)) {
        if (m.length < 12) continue;
        const entry = conn.pending.get(queryId(m));
        if (!entry) continue;
        conn.pending.delete(queryId(m));
        if (entry.timer) this.#clock.clearTimeout(entry.timer);
        conn.answered++;
        entry.resolve(withId(m, entry.origId));
      }
      if (!this.#reuse && conn.pending.size === 0) this.#kill(conn, undefined, false);
      else this.#armIdle(conn);
    });
    stream.on('error', (err: Error) =>
      this.#kill(conn, new DnsError('ERR_DNS_STREAM', `tunnel DNS stream failed: ${err.message}`), true),
    );
    stream.on('end', () =>
      this.#kill(conn, new DnsError('ERR_DNS_STREAM', 'tunnel DNS stream closed before the answer'), true),
    );
    stream.on('close', () =>
      this.#kill(conn, new DnsError('ERR_DNS_STREAM', 'tunnel DNS stream closed before the answer'), true),
    );
    for (const q of conn.queue.splice(0)) stream.write(q);
  }

  #armIdle(conn: TunnelConn): void {
    if (conn.pending.size > 0 || conn.dead || conn.idle) return;
    conn.idle = this.#clock.setTimeout(() => {
      conn.idle = undefined;
      if (conn.pending.size === 0) this.#kill(conn, undefined, false);
    }, this.#idleMs);
    conn.idle.unref?.();
  }

  /**
   * Retire a stream. Pending queries fail with `err`, except that when `retry` is set and the
   * stream had already answered (it went stale under us: the upstream's idle close raced our
   * write), each is resent once on a fresh stream.
   */
  #kill(conn: TunnelConn, err: Error | undefined, retry: boolean): void {
    if (conn.dead) return;
    conn.dead = true;
    if (this.#conn === conn) this.#conn = undefined;
    if (conn.idle) this.#clock.clearTimeout(conn.idle);
    if (conn.stream) {
      conn.stream.on('error', () => {});
      conn.stream.destroy();
    }
    const stale = conn.answered > 0;
    for (const entry of conn.pending.values()) {
      if (retry && stale && !entry.retried) {
        entry.retried = true;
        if (entry.timer) this.#clock.clearTimeout(entry.timer);
        entry.timer = undefined;
        const query = withId(entry.framed.subarray(2), entry.origId);
        this.#send(entry, query);
        continue;
      }
      if (entry.timer) this.#clock.clearTimeout(entry.timer);
      entry.reject(err ?? new DnsError('ERR_DNS_STREAM', 'tunnel DNS stream closed'));
    }
    conn.pending.clear();
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
  /**
   * Treat AA on our RD=1 queries as a forgery sign (default false). The GFW sets AA only when
   * the query had RD=0 (glossary C2), and resolvers that also serve a zone set AA on genuine answers.
   */
  flagAaOnRecursive?: boolean;
  /** Treat private/loopback answers as forged (default false). */
  flagPrivate?: boolean;
  /**
   * An address across the censored path with no resolver behind it (docs/glossary.md D11).
   * The query is sent there too; any reply from it is injected, and its addresses join the
   * learned forged pool, which then also catches the same forged reply from the real upstream.
   */
  canary?: { host: string; port: number } | undefined;
  /** Source address to send from (multi-homed hosts; the lab's domestic client range). */
  localAddress?: string | undefined;
  clock?: Clock;
  /** Called once per query that drew at least one forged reply. Carries no name by default. */
  onForged?: (info: {
    reasons: StubForgeryReason[];
    question: string | undefined;
    genuineFound: boolean;
  }) => void;
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
  readonly #localAddress: string | undefined;
  /** Addresses seen in canary replies (bounded). */
  readonly #learned = new IpSet();

  constructor(opts: FilteringUdpResolverOptions) {
    this.#upstream = opts.upstream;
    this.#windowMs = opts.windowMs ?? 300;
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#forged = opts.forged instanceof IpSet ? opts.forged : new IpSet(opts.forged ?? []);
    this.#flagAa = opts.flagAaOnRecursive ?? false;
    this.#flagPrivate = opts.flagPrivate ?? false;
    this.#clock = opts.clock ?? systemClock;
    this.#onForged = opts.onForged;
    this.#canary = opts.canary;
    this.#localAddress = opts.localAddress;
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
      /** Related upstream replies in arrival order. */
      const upstream: { msg: Buffer; r: DecodedPacket }[] = [];
      let canaryReplies = 0;
      let windowTimer: Timer | undefined;
      let overall: Timer | undefined;
      let done = false;
      const inspectOpts: InspectOptions = {
        forged: { has: (ip: string) => this.#isForgedAddress(ip) },
        flagAaOnRecursive: this.#flagAa,
        flagPrivate: this.#flagPrivate,
      };
      const judge = (r: DecodedPacket): Inspection => inspectResponse(sentQuery, r, inspectOpts);
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
        // Judge at the end, so addresses the canary taught us during this query count too.
        // Each injector that answered the canary also answered our real query, first (race
        // model): the first `canaryReplies` upstream replies are treated as injected.
        const reasons = new Set<StubForgeryReason>();
        if (canaryReplies > 0) reasons.add('canary-reply');
        let forgedCount = canaryReplies;
        let genuineCount = 0;
        let lastGenuine: Buffer | undefined;
        upstream.forEach((u, i) => {
          const ins = judge(u.r);
          if (i < canaryReplies || ins.forged) {
            forgedCount++;
            for (const x of ins.reasons) reasons.add(x);
          } else {
            genuineCount++;
            lastGenuine = u.msg;
          }
        });
        if (forgedCount > 0) {
          this.#onForged?.({
            reasons: [...reasons],
            question: q.questions?.[0]?.name,
            genuineFound: lastGenuine !== undefined,
          });
        }
        const response = lastGenuine ? withId(lastGenuine, origId) : servfailFor(query);
        resolve({ response, forgedCount, genuineCount, reasons: [...reasons] });
      };
      const fromCanary = (addr: string, port: number): boolean =>
        this.#canary !== undefined && port === this.#canary.port && addr === this.#canary.host;
      const fromUpstream = (addr: string, port: number): boolean =>
        port === this.#upstream.port && addr === this.#upstream.host;
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
          canaryReplies++;
          if (this.#learned.size < 4096) for (const ip of ins.addresses) this.#learned.add(ip);
        } else {
          upstream.push({ msg, r });
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
      const send = (): void => {
        if (done) return;
        sock.send(wire, this.#upstream.port, this.#upstream.host, (err) => {
          if (err) finish();
        });
        if (this.#canary) sock.send(wire, this.#canary.port, this.#canary.host, () => {});
      };
      if (this.#localAddress) sock.bind(0, this.#localAddress, send);
      else send();
    });
  }
}
