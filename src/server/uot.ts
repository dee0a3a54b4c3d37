import dgram from 'node:dgram';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { SocksAddress } from '../protocol/socks5/address.js';
import {
  encodeUotDatagram,
  UotReader,
  type UotDatagram,
  type UotRequest,
  type UotVersion,
} from '../protocol/uot.js';
import type { Clock, Timer } from '../shared/clock.js';
import { isPrivateAddress, lookupOf, type DialFailure, type Lookup } from './destination.js';

/** What an association needs from the server: policy and time. */
export interface UotContext {
  readonly clock: Clock;
  /** End the stream after this long without a datagram either way. */
  readonly idleMs: number;
  readonly allowPrivateDestinations: boolean;
  readonly lookup: Lookup | undefined;
  /** The server's name cache: names resolve through it, under its limits per key (names.ts). */
  readonly names?: { lookupFor(who?: string): Lookup } | undefined;
  /** The keys' speed limits: a limited key's datagrams over its rate are dropped (speed-limits.ts). */
  readonly speed?: { for(id: string): { datagram(up: boolean, n: number): boolean } | undefined } | undefined;
}

/** The authenticated Shadowsocks stream the association runs in, and where it reports. */
export interface UotStream {
  /** The client's byte stream (paused by the caller; resumed here). */
  readonly stream: Duplex;
  /** Opens the stream's chunks (may throw: then the stream is torn down, as a relay would). */
  readonly decode: (chunk: Buffer) => Buffer[];
  /** Seals a reply for the stream. */
  readonly encode: (chunk: Buffer) => Buffer;
  /** Wire bytes read from (`up`) and written to (`down`) the client, for usage. */
  count(up: number, down: number): void;
  /** The access key's id (name lookups are limited per key). */
  readonly who?: string | undefined;
  /** The association was refused (bad framing, forbidden or unresolvable connect destination). */
  refused(status: 'ERR_ADDRESS' | DialFailure): void;
}

export interface UotAssociation {
  /** Close the UDP sockets; the stream is left to the caller. Idempotent. */
  close(): void;
}

/** Datagrams handed to the kernel and not yet sent before the client's stream is paused. */
const MAX_SENDS_IN_FLIGHT = 64;
/** Replies dropped while the client's stream holds more than this unsent (UDP may lose). */
const MAX_BUFFERED_REPLIES = 1024 * 1024;
/** Datagrams held while the connect-mode destination resolves (the stream is paused meanwhile). */
const MAX_PENDING = 256;
/** Names resolved at once per association; datagrams to further names are dropped meanwhile. */
const MAX_LOOKUPS = 16;
/** Datagrams waiting for their name to resolve, per association; further ones are dropped. */
const MAX_WAITING = 64;
/** Resolved names kept per association, and for how long. */
const MAX_NAMES = 64;
const NAME_TTL_MS = 60_000;

/**
 * Resolve a datagram's destination under the private rule: its IP, or why not. Names resolve to
 * their first allowed address.
 */
export async function resolveUdpDestination(
  addr: SocksAddress,
  ctx: Pick<UotContext, 'allowPrivateDestinations' | 'lookup' | 'names'>,
  /** The access key's id (the name cache's limits are per key). */
  who?: string,
): Promise<string | DialFailure> {
  let ips: string[];
  if (addr.type === 'domain') {
    try {
      ips = (await lookupOf(ctx, who)(addr.host)).map((f) => f.address);
    } catch {
      return 'ERR_RESOLVE';
    }
    if (ips.length === 0) return 'ERR_RESOLVE';
  } else ips = [addr.host];
  const ok = ctx.allowPrivateDestinations ? ips[0] : ips.find((ip) => !isPrivateAddress(ip));
  return ok ?? 'ERR_FORBIDDEN';
}

const isFailure = (r: string): r is DialFailure => r.startsWith('ERR_');

/**
 * sing's UDP-over-TCP on the server (protocol/uot.ts): a Shadowsocks stream whose target was the
 * magic name carries datagrams, relayed through this association's own UDP sockets (one per
 * address family, opened on first use). v2 connect mode resolves its one destination once (a
 * forbidden or unresolvable one refuses the association, as a failed dial refuses a TCP stream);
 * otherwise every datagram names its destination, and one that is private (unless allowed),
 * unresolvable or port 0 is dropped, as the UDP relay drops it. In connect mode the association's
 * socket is connected to the destination and only its replies come back (bare); otherwise replies
 * from any source come back with their source address (full cone, as the UDP relay and sing-box).
 *
 * Bounded: the client's stream is paused while 64 sends are in flight, replies are dropped while
 * 1 MiB of them waits to be written, at most 16 lookups run at once and 64 datagrams wait on
 * them (more are dropped: a name that resolves slowly must not hold an unbounded queue). Garbage framing refuses the
 * association (ERR_ADDRESS); the client's FIN or the idle timeout ends it with a FIN.
 */
export function startUot(
  version: UotVersion,
  initial: Buffer,
  io: UotStream,
  ctx: UotContext,
): UotAssociation {
  const { stream } = io;
  const { clock } = ctx;
  const reader = new UotReader(version);
  const sockets = new Map<4 | 6, dgram.Socket>();
  const names = new Map<string, { ip: string; at: number }>();
  const lookups = new Map<string, Promise<string | DialFailure>>();
  /** Connect mode: the socket connected to the destination; pending datagrams until then. */
  let connected: dgram.Socket | undefined;
  let pending: Buffer[] | undefined;
  let inFlight = 0;
  /** Datagrams waiting on a lookup (the stream is not paused for them: bounded here instead). */
  let waiting = 0;
  /** The stream is paused while any hold is on (sends in flight, the destination resolving). */
  let holds = 0;
  let sendsHeld = false;
  let last = clock.now();
  let timer: Timer | undefined;
  let state: 'open' | 'refused' | 'closed' = 'open';

  const hold = (): void => {
    if (holds++ === 0) stream.pause();
  };
  const release = (): void => {
    if (--holds === 0 && state === 'open') stream.resume();
  };

  const close = (): void => {
    if (state === 'closed') return;
    state = 'closed';
    if (timer) clock.clearTimeout(timer);
    timer = undefined;
    for (const s of sockets.values()) s.close();
    sockets.clear();
    stream.off('data', onData);
    stream.off('end', onEnd);
  };

  /**
   * End our side with a FIN, reading (and discarding) whatever the client still sends. A client
   * that does not read keeps our replies unflushed and the FIN unsent: it gets one more idle
   * period, then the stream is destroyed (else the socket stayed open as long as the client liked).
   */
  const finish = (): void => {
    close();
    stream.on('data', () => undefined);
    stream.resume();
    const cut = clock.setTimeout(() => stream.destroy(), ctx.idleMs);
    cut.unref?.();
    stream.end(() => {
      clock.clearTimeout(cut);
      stream.destroy();
    });
  };

  const refuse = (status: 'ERR_ADDRESS' | DialFailure): void => {
    if (state !== 'open') return;
    state = 'refused';
    io.refused(status);
    finish();
  };

  /**
   * A datagram of `n` bytes (`up`: from the client) over the key's speed limit: dropped, as plain
   * UDP drops it. Looked up per datagram: a limit set or changed applies at once.
   */
  const overRate = (up: boolean, n: number): boolean =>
    io.who !== undefined && ctx.speed?.for(io.who)?.datagram(up, n) === false;

  const reply = (data: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (state !== 'open' || stream.writableLength > MAX_BUFFERED_REPLIES) return;
    if (overRate(false, data.length)) return;
    const from: SocksAddress | undefined = reader.request?.connect
      ? undefined
      : { type: rinfo.family === 'IPv6' ? 'ipv6' : 'ipv4', host: rinfo.address, port: rinfo.port };
    let wire: Buffer;
    try {
      wire = io.encode(encodeUotDatagram(from, data));
    } catch {
      return; // a datagram too large to frame (not from UDP): dropped
    }
    last = clock.now();
    io.count(0, wire.length);
    stream.write(wire);
  };

  const socketFor = (family: 4 | 6): dgram.Socket => {
    let s = sockets.get(family);
    if (s) return s;
    s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
    s.on('error', () => undefined); // ICMP errors and the like: the destination just doesn't answer
    s.on('message', reply);
    sockets.set(family, s);
    return s;
  };

  /** Hand one datagram to the kernel (to `ip`:`port`, or to a connected socket's peer). */
  const transmit = (s: dgram.Socket, payload: Buffer, port?: number, ip?: string): void => {
    const sent = (): void => {
      if (--inFlight < MAX_SENDS_IN_FLIGHT / 2 && sendsHeld) {
        sendsHeld = false;
        release();
      }
    };
    try {
      if (port === undefined) s.send(payload, sent);
      else s.send(payload, port, ip, sent);
    } catch {
      return; // a send node refuses drops the datagram, never the stream
    }
    if (++inFlight >= MAX_SENDS_IN_FLIGHT && !sendsHeld) {
      sendsHeld = true;
      hold();
    }
  };

  const send = (ip: string, port: number, payload: Buffer): void => {
    if (state !== 'open' || port === 0) return;
    transmit(socketFor(net.isIP(ip) === 6 ? 6 : 4), payload, port, ip);
  };

  const resolve = (addr: SocksAddress): Promise<string | DialFailure> | string | undefined => {
    if (addr.type !== 'domain') return addr.host;
    const hit = names.get(addr.host);
    if (hit && clock.now() - hit.at < NAME_TTL_MS) return hit.ip;
    const running = lookups.get(addr.host);
    if (running) return running;
    if (lookups.size >= MAX_LOOKUPS) return undefined;
    const p = resolveUdpDestination(addr, ctx, io.who).then((r) => {
      lookups.delete(addr.host);
      if (!isFailure(r)) {
        if (names.size >= MAX_NAMES) names.clear();
        names.set(addr.host, { ip: r, at: clock.now() });
      }
      return r;
    });
    lookups.set(addr.host, p);
    return p;
  };

  const forward = (d: UotDatagram): void => {
    if (overRate(true, d.payload.length)) return;
    if (!d.address) {
      if (connected) transmit(connected, d.payload);
      else if (pending && pending.length < MAX_PENDING) pending.push(d.payload);
      return;
    }
    const port = d.address.port;
    const r = resolve(d.address);
    if (typeof r === 'string') {
      if (ctx.allowPrivateDestinations || !isPrivateAddress(r)) send(r, port, d.payload);
    } else if (r && waiting < MAX_WAITING) {
      waiting++;
      void r.then((ip) => {
        waiting--;
        if (!isFailure(ip)) send(ip, port, d.payload);
      });
    }
  };

  /**
   * v2 connect mode: resolve the one destination and connect a UDP socket to it, holding the stream
   * until then. The kernel then delivers only the destination's datagrams (and the sender is
   * checked too, for any queued before connect()): a host that learns the socket's port cannot
   * inject replies the client would take as the destination's. Port 0 is refused like a failed
   * dial (no host answers from it).
   */
  const connectTo = (dest: SocksAddress): void => {
    if (dest.port === 0) return refuse('ERR_CONNECT');
    pending = [];
    hold();
    void resolveUdpDestination(dest, ctx, io.who).then((r) => {
      if (state !== 'open') return;
      if (isFailure(r)) return refuse(r);
      const family = net.isIP(r) === 6 ? 6 : 4;
      const s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
      sockets.set(family, s);
      let peer: { address: string; port: number } | undefined;
      s.on('error', () => undefined); // ICMP errors and the like: the destination just doesn't answer
      s.on('message', (data, rinfo) => {
        if (peer && rinfo.address === peer.address && rinfo.port === peer.port) reply(data, rinfo);
      });
      const opened = (err?: Error): void => {
        if (state !== 'open') return;
        if (err) return refuse('ERR_CONNECT');
        peer = s.remoteAddress();
        connected = s;
        for (const p of pending ?? []) transmit(s, p);
        pending = undefined;
        release();
      };
      try {
        s.connect(dest.port, r, opened);
      } catch {
        refuse('ERR_CONNECT');
      }
    });
  };

  const onPlain = (plain: Buffer): void => {
    let datagrams: UotDatagram[];
    const before = reader.request;
    try {
      datagrams = reader.push(plain);
    } catch {
      return refuse('ERR_ADDRESS');
    }
    const req: UotRequest | undefined = reader.request;
    if (!before && req?.connect) connectTo(req.destination);
    if (datagrams.length > 0) last = clock.now();
    for (const d of datagrams) {
      if (state !== 'open') return;
      forward(d);
    }
  };

  function onData(chunk: Buffer): void {
    io.count(chunk.length, 0);
    let plains: Buffer[];
    try {
      plains = io.decode(chunk);
    } catch {
      close();
      stream.destroy();
      return;
    }
    for (const p of plains) if (state === 'open') onPlain(p);
  }

  function onEnd(): void {
    finish();
  }

  const armIdle = (): void => {
    timer = clock.setTimeout(
      () => {
        timer = undefined;
        if (state !== 'open') return;
        if (clock.now() - last >= ctx.idleMs) finish();
        else armIdle();
      },
      Math.max(1, last + ctx.idleMs - clock.now()),
    );
    timer.unref?.();
  };

  stream.on('data', onData);
  stream.on('end', onEnd);
  armIdle();
  if (initial.length > 0) onPlain(initial);
  if (state === 'open' && holds === 0) stream.resume();
  return { close };
}
