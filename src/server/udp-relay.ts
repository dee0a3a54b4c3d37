import dgram from 'node:dgram';
import { bindUdp } from '../shared/listen.js';
import net from 'node:net';
import { encodeUdp2017, encodeUdp2017Raw } from '../protocol/shadowsocks/udp.js';
import { SaltFilter } from '../protocol/shadowsocks/replay.js';
import { SubkeyCache, UDP_SESSION_TTL_MS, Udp2022ServerSession } from '../protocol/shadowsocks/udp2022.js';
import type { SocksAddress } from '../protocol/socks5/address.js';
import type { Clock, Timer } from '../shared/clock.js';
import {
  ADDR_SIZE,
  addrKey,
  addrToIp,
  addrToSocks,
  BatchUdpSocket,
  type PacketHandler,
} from '../transport/batch-udp.js';
import { FastUdpSender } from '../transport/fast-udp.js';
import type { Logger } from '../shared/logger.js';
import { isPrivateAddress, lookupOf, type Lookup } from './destination.js';
import type { AnyKeyEntry, Key2022Entry, KeyEntry, KeyRing } from './keys.js';
import { openDatagram, type Opened } from './udp-open.js';
import { limited, overRate, type SpeedLimits } from './speed-limits.js';
import { admitPlace, type DeviceLimits, type DevicePlace } from './device-limits.js';

export { openDatagram, type Opened } from './udp-open.js';

/** A session is forgotten this long after its last packet (SIP022 §3.2.4 asks for >= 60 s). */
export const DEFAULT_UDP_IDLE_MS = 120_000;
/** At most this many NAT sessions; the least recently active one is evicted past it. */
export const DEFAULT_UDP_MAX_SESSIONS = 4096;
/** SIP004 datagram salts remembered: two generations of this many (about 10 MB). */
const SALTS_2017 = 50_000;
/** How often usage relayed by the C paths (batched sockets) is collected. */
const COLLECT_MS = 1000;
/** Resolved destination names are reused for this long within a session. */
const NAME_TTL_MS = 60_000;

/** A UDP socket bound already (the native udpBind, on the main thread) for the relay to adopt. */
export interface AdoptedUdpSocket {
  readonly fd: number;
  readonly family: 4 | 6;
  readonly ip: string;
}

export interface UdpRelayOptions {
  idleMs?: number;
  maxSessions?: number;
  /**
   * One key's share of the sessions (default a quarter of maxSessions, at least 1): when the
   * table is full, a key at its share makes room among its own sessions, and the others take
   * theirs from the key holding the most when it is at its share.
   */
  maxSessionsPerKey?: number;
}

/** What the relay needs from the server: the current keys, policy, and accounting. */
export interface UdpRelayContext {
  readonly clock: Clock;
  readonly log: Logger;
  readonly allowPrivateDestinations: boolean;
  readonly lookup: Lookup | undefined;
  /** The server's name cache: names resolve through it, under its limits per key (names.ts). */
  readonly names?: { lookupFor(who?: string): Lookup } | undefined;
  /** The current keys (their entries by id, and the trial order). */
  readonly keys: KeyRing;
  addUsage(keyId: string, up: number, down: number): void;
  /** The keys' speed limits: a limited key's datagrams stay in JS, those over its rate dropped. */
  readonly speed?: SpeedLimits | undefined;
  /** The server's device limits: a session of a limited key holds a place for its client's address. */
  readonly devices?: DeviceLimits | undefined;
}

interface Session {
  readonly id: string;
  readonly key: AnyKeyEntry;
  /** SIP004: [key], tried first for the next datagram from this source. */
  readonly first: readonly KeyEntry[];
  /** 2022: the server side of the client's session (replay window, reply sealing). */
  readonly s2022: Udp2022ServerSession<Key2022Entry> | undefined;
  /** Where replies go: the client's latest authenticated source address. */
  clientAddress: string;
  clientPort: number;
  /** Batched sockets: the same as a source key and 20 address bytes (see batch-udp.ts). */
  clientKey: string;
  clientRaw: Buffer | undefined;
  /** The client address the listener's C forward path has a route for (SIP004). */
  routed: Buffer | undefined;
  out4: dgram.Socket | undefined;
  out6: dgram.Socket | undefined;
  send4: FastUdpSender | undefined;
  send6: FastUdpSender | undefined;
  bout4: BatchUdpSocket | undefined;
  bout6: BatchUdpSocket | undefined;
  lastMs: number;
  readonly names: Map<string, { ip: string; at: number }>;
  closed: boolean;
  device: DevicePlace | undefined;
}

const NO_KEYS: readonly KeyEntry[] = [];

/**
 * The UDP half of the Shadowsocks server on the TCP port's number: both editions on one socket.
 * SIP004 datagrams are found by trial decryption (the key of the client's address:port first),
 * SIP022 ones through identity groups and single-user keys, then mapped to a NAT session (SIP004:
 * per client address:port; SIP022: per client session ID) with its own outbound sockets, an idle
 * expiry and a bounded table. Every datagram that does not authenticate, is a replay (SIP022
 * packet-ID window), has a timestamp more than 30 s off or a forbidden destination is dropped
 * silently: a prober gets no reply whatever it sends.
 */
export class UdpRelay {
  readonly #ctx: UdpRelayContext;
  readonly idleMs: number;
  readonly maxSessions: number;
  readonly maxSessionsPerKey: number;
  readonly #sessions = new Map<string, Session>();
  /** Each key's sessions, least recently active first (as #sessions). */
  readonly #byKey = new Map<string, Map<string, Session>>();
  readonly #cache = new SubkeyCache(4096);
  #socket: dgram.Socket | undefined;
  #sender: FastUdpSender | undefined;
  /** The listener when the addon's batched sockets are in use (then #socket is unused). */
  #batch: BatchUdpSocket | undefined;
  #batchHost = '';
  #sweepTimer: Timer | undefined;
  #collectTimer: Timer | undefined;
  #droppedJs = 0;

  /** Datagrams dropped before reaching a destination (garbage, replays, forbidden). */
  get dropped(): number {
    return this.#droppedJs + (this.#batch?.droppedInC() ?? 0);
  }
  /**
   * Salts of authenticated SIP004 datagrams (exact, two generations of at most this many each:
   * about 10 MB). The 2017 edition has no timestamps, so a replay older than the last ~2N
   * datagrams is forgotten; 2022 keys have a real window.
   */
  readonly #salts2017 = new SaltFilter(SALTS_2017);

  constructor(ctx: UdpRelayContext, opts: UdpRelayOptions = {}) {
    this.#ctx = ctx;
    this.idleMs = opts.idleMs ?? DEFAULT_UDP_IDLE_MS;
    this.maxSessions = opts.maxSessions ?? DEFAULT_UDP_MAX_SESSIONS;
    this.maxSessionsPerKey = opts.maxSessionsPerKey ?? Math.max(1, Math.floor(this.maxSessions / 4));
    if (!(this.idleMs > 0) || !(this.maxSessions >= 1) || !(this.maxSessionsPerKey >= 1))
      throw new RangeError('udp idleMs, maxSessions and maxSessionsPerKey must be positive');
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  address(): { address: string; port: number; family: string } | undefined {
    if (this.#batch)
      return {
        address: this.#batchHost,
        port: this.#batch.port,
        family: this.#batch.family === 6 ? 'IPv6' : 'IPv4',
      };
    return this.#socket?.address();
  }

  /** True when the relay runs on the addon's batched sockets (recvmmsg), false on node:dgram. */
  get batched(): boolean {
    return this.#batch !== undefined;
  }

  /**
   * Bind on `port` (use the TCP listener's port number), or adopt `adopt` (batched sockets only:
   * it was made by the addon, so the addon is there).
   */
  async listen(port: number, host: string | undefined, adopt?: AdoptedUdpSocket): Promise<void> {
    const family = adopt?.family ?? (host !== undefined && net.isIP(host) === 4 ? 4 : 6);
    const type = family === 6 ? 'udp6' : 'udp4';
    if (adopt || (BatchUdpSocket.available() && (host === undefined || net.isIP(host) !== 0))) {
      const bindHost = adopt?.ip ?? host ?? '::';
      try {
        const onPacket: PacketHandler = (msg, addrs, off) => {
          try {
            this.#onClientPacket(msg, addrKey(addrs, off), undefined, addrs, off);
          } catch {
            this.#droppedJs++;
          }
        };
        this.#batch = BatchUdpSocket.bind(type === 'udp6' ? 6 : 4, bindHost, port, onPacket, adopt?.fd);
        this.#batchHost = bindHost;
        this.#batch.policy(this.#ctx.allowPrivateDestinations, SALTS_2017);
        this.#armSweep();
        this.#armCollect();
        return;
      } catch (err) {
        this.#batch?.close();
        this.#batch = undefined;
        if (this.#collectTimer) this.#ctx.clock.clearTimeout(this.#collectTimer);
        if (this.#sweepTimer) this.#ctx.clock.clearTimeout(this.#sweepTimer);
        const code = (err as NodeJS.ErrnoException).code;
        if (adopt || code === 'EADDRINUSE' || code === 'EACCES') throw err; // dgram would fail the same way
        this.#ctx.log.debug(
          { err: (err as Error).message },
          'batched UDP sockets unavailable; using node:dgram',
        );
      }
    }
    const socket = dgram.createSocket({ type, ipv6Only: false });
    await bindUdp(socket, port, host);
    socket.on('error', (err) => this.#ctx.log.warn({ err: err.message }, 'udp listener error'));
    socket.on('message', (msg, rinfo) => {
      // One bad datagram must never take the process (and every user) down: drop it.
      try {
        this.#onClientPacket(msg, `${rinfo.address}|${rinfo.port}`, rinfo, undefined, 0);
      } catch {
        this.#droppedJs++;
      }
    });
    this.#socket = socket;
    this.#sender = new FastUdpSender(socket, type === 'udp6' ? 6 : 4);
    this.#armSweep();
  }

  async close(): Promise<void> {
    if (this.#sweepTimer) this.#ctx.clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    if (this.#collectTimer) this.#ctx.clock.clearTimeout(this.#collectTimer);
    this.#collectTimer = undefined;
    for (const s of [...this.#sessions.values()]) this.#drop(s);
    this.#batch?.close();
    this.#batch = undefined;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#sender = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** Close the sessions of keys that are gone or changed (after setKeys), or just gained a limit. */
  pruneKeys(gainedLimits: readonly string[] = []): void {
    for (const s of [...this.#sessions.values()])
      if (this.#ctx.keys.get(s.key.id) !== s.key || gainedLimits.includes(s.key.id)) this.#drop(s);
  }

  /** Batched sockets: pick up what the C paths relayed (usage, activity) once a second. */
  #armCollect(): void {
    this.#collectTimer = this.#ctx.clock.setTimeout(() => {
      const now = this.#ctx.clock.now();
      for (const s of [...this.#sessions.values()]) if (this.#collect(s, now)) this.#touch(s);
      if (this.#batch) this.#armCollect();
    }, COLLECT_MS);
    this.#collectTimer.unref?.();
  }

  /** Most recently used, for the LRU bound. */
  #touch(s: Session): void {
    this.#sessions.delete(s.id);
    this.#sessions.set(s.id, s);
    const mine = this.#byKey.get(s.key.id);
    mine?.delete(s.id);
    mine?.set(s.id, s);
  }

  #armSweep(): void {
    const every = Math.max(50, Math.min(10_000, Math.floor(this.idleMs / 4)));
    this.#sweepTimer = this.#ctx.clock.setTimeout(() => {
      this.#sweep();
      if (this.#socket || this.#batch) this.#armSweep();
    }, every);
    this.#sweepTimer.unref?.();
  }

  #sweep(): void {
    const now = this.#ctx.clock.now();
    for (const s of [...this.#sessions.values()]) {
      if (this.#collect(s, now)) this.#touch(s); // active in C since the last look
      if (now - s.lastMs >= this.idleMs) this.#drop(s);
    }
  }

  /**
   * SIP004 sessions on batched sockets seal and send their replies in C (no JS per reply);
   * 2022 sessions keep sealing in JS (packet IDs, server session). Re-pointed when the client's
   * address changes.
   */
  #nativeReplies(s: Session, out: BatchUdpSocket | undefined): void {
    if (!out || s.key.edition !== 2017 || !this.#batch || !s.clientRaw || limited(this.#ctx.speed, s)) return;
    out.relayTo(this.#batch, s.key.method.cipher, s.key.masterKey, s.clientRaw, 0);
  }

  /**
   * SIP004 sessions on batched sockets: later datagrams from the client's address are forwarded
   * by the listener in C (open, salt filter, private-destination rule, send) once the session
   * has an outbound socket; only other keys, domains and new address families come to JS.
   */
  #route(s: Session): void {
    const l = this.#batch;
    if (!l || s.key.edition !== 2017 || !s.clientRaw || s.closed || limited(this.#ctx.speed, s)) return;
    if (s.routed && !s.routed.equals(s.clientRaw)) this.#unroute(s);
    if (!s.bout4 && !s.bout6) return;
    l.route(s.clientRaw, 0, s.bout4, s.bout6, s.key.method.cipher, s.key.masterKey);
    s.routed = s.clientRaw;
  }

  #unroute(s: Session): void {
    if (!s.routed || !this.#batch) return;
    const up = this.#batch.unroute(s.routed, 0);
    if (up > 0) this.#ctx.addUsage(s.key.id, up, 0);
    s.routed = undefined;
  }

  /** Usage and activity of datagrams relayed in C since the last look. */
  #collect(s: Session, now: number): boolean {
    if (s.key.edition !== 2017) return false;
    const down = (s.bout4?.relayedBytes() ?? 0) + (s.bout6?.relayedBytes() ?? 0);
    const up = s.routed && this.#batch ? this.#batch.routeTake(s.routed, 0) : 0;
    if (down === 0 && up === 0) return false;
    this.#ctx.addUsage(s.key.id, up, down);
    s.lastMs = now;
    return true;
  }

  #drop(s: Session): void {
    if (s.closed) return;
    this.#collect(s, this.#ctx.clock.now());
    this.#unroute(s);
    s.closed = true;
    if (s.device) this.#ctx.devices?.release(s.device);
    this.#sessions.delete(s.id);
    const mine = this.#byKey.get(s.key.id);
    if (mine?.get(s.id) === s) {
      mine.delete(s.id);
      if (mine.size === 0) this.#byKey.delete(s.key.id);
    }
    s.out4?.close();
    s.out6?.close();
    s.bout4?.close();
    s.bout6?.close();
  }

  // ---- client to destination ----

  /**
   * One datagram from a client. `src` identifies its source address (a session key); replies go
   * to `rinfo` (node:dgram) or to the 20 address bytes at addrs[off] (batched sockets).
   */
  #onClientPacket(
    msg: Buffer,
    src: string,
    rinfo: dgram.RemoteInfo | undefined,
    addrs: Uint8Array | undefined,
    off: number,
  ): void {
    const ctx = this.#ctx;
    const now = ctx.clock.now();
    const opened = this.#open(msg, src, now);
    if (!opened) {
      this.#droppedJs++;
      return;
    }
    let s: Session | undefined;
    if (opened.edition === 2022) {
      const p = opened.packet;
      const id = `b|${opened.key.id}|${p.sessionId.toString('hex')}`;
      s = this.#sessions.get(id);
      if (!s)
        s = this.#create(
          id,
          opened.key,
          new Udp2022ServerSession(opened.key.method, p, { cache: this.#cache }),
        );
      if (!s.s2022!.accept(p.packetId)) {
        this.#droppedJs++; // replayed or too old packet ID: like garbage
        return;
      }
    } else {
      const id = `a|${src}`;
      s = this.#sessions.get(id);
      if (s && s.key !== opened.key) {
        this.#drop(s);
        s = undefined;
      }
      s ??= this.#create(id, opened.key, undefined);
    }
    if (ctx.devices?.limited(s.key.id)) {
      const ip = rinfo ? rinfo.address : addrs ? addrToIp(addrs, off).ip : '';
      if (!admitPlace(ctx.devices, s, s.key.id, ip)) {
        if (!s.device) this.#drop(s); // over the key's device limit: as a key that is not usable
        this.#droppedJs++;
        return;
      }
    }
    this.#touch(s);
    if (rinfo) {
      s.clientAddress = rinfo.address;
      s.clientPort = rinfo.port;
    } else if (s.clientKey !== src && addrs) {
      s.clientKey = src;
      s.clientRaw = Buffer.from(addrs.subarray(off, off + ADDR_SIZE));
      this.#nativeReplies(s, s.bout4);
      this.#nativeReplies(s, s.bout6);
      this.#route(s);
    }
    s.lastMs = now;
    if (overRate(ctx.speed, s, true, msg.length)) return; // dropped (counted)
    ctx.addUsage(s.key.id, msg.length, 0);
    this.#forward(s, opened.address, opened.payload, now);
  }

  /** Find the key of a datagram (openDatagram), the key of this source's session first. */
  #open(msg: Buffer, src: string, now: number): Opened | undefined {
    const known = this.#sessions.get(`a|${src}`);
    return openDatagram(this.#ctx.keys, this.#cache, msg, now, known ? known.first : NO_KEYS, (salt) =>
      // On batched sockets the listener's filter in C, which its forward path shares.
      this.#batch ? this.#batch.saltAdd(salt) : this.#salts2017.checkAndAdd(salt),
    );
  }

  #create(id: string, key: AnyKeyEntry, s2022: Udp2022ServerSession<Key2022Entry> | undefined): Session {
    // A full table makes room: a key at its share gives up its own least recently active
    // session, another key takes one from the key holding the most when that one is at its share.
    // So one key holder opening sessions without end (a 2022 session ID per datagram costs them
    // nothing) cannot evict the others', and a key alone on the server still has the whole table.
    if (this.#sessions.size >= this.maxSessions) {
      const own = this.#byKey.get(key.id);
      const from = own && own.size >= this.maxSessionsPerKey ? own : this.#mostSessions();
      if (from && from.size >= this.maxSessionsPerKey) this.#drop(from.values().next().value!);
    }
    while (this.#sessions.size >= this.maxSessions) {
      const oldest = this.#sessions.values().next().value;
      if (!oldest) break;
      this.#drop(oldest);
    }
    const s: Session = {
      id,
      key,
      first: key.edition === 2017 ? [key] : NO_KEYS,
      s2022,
      clientAddress: '',
      clientPort: 0,
      clientKey: '',
      clientRaw: undefined,
      routed: undefined,
      out4: undefined,
      out6: undefined,
      send4: undefined,
      send6: undefined,
      bout4: undefined,
      bout6: undefined,
      lastMs: this.#ctx.clock.now(),
      names: new Map(),
      closed: false,
      device: undefined,
    };
    this.#sessions.set(id, s);
    let mine = this.#byKey.get(key.id);
    if (!mine) this.#byKey.set(key.id, (mine = new Map()));
    mine.set(id, s);
    return s;
  }

  /** The sessions of the key holding the most (a full table only: one pass over the keys). */
  #mostSessions(): Map<string, Session> | undefined {
    let most: Map<string, Session> | undefined;
    for (const m of this.#byKey.values()) if (!most || m.size > most.size) most = m;
    return most;
  }

  async #resolve(s: Session, address: SocksAddress, now: number): Promise<string | undefined> {
    if (address.type !== 'domain') return address.host;
    const hit = s.names.get(address.host);
    if (hit && now - hit.at < NAME_TTL_MS) return hit.ip;
    let found: { address: string; family: number }[];
    try {
      found = await lookupOf(this.#ctx, s.key.id)(address.host);
    } catch {
      return undefined;
    }
    const allowed = this.#ctx.allowPrivateDestinations
      ? found
      : found.filter((f) => !isPrivateAddress(f.address));
    const ip = allowed[0]?.address;
    if (ip === undefined) return undefined;
    if (s.names.size >= 64) s.names.clear();
    s.names.set(address.host, { ip, at: now });
    return ip;
  }

  #forward(s: Session, address: SocksAddress, payload: Buffer, now: number): void {
    if (address.type === 'domain') {
      void this.#resolve(s, address, now)
        .then((ip) => {
          if (ip === undefined || s.closed) this.#droppedJs++;
          else this.#sendOut(s, ip, address.port, payload);
        })
        .catch(() => {
          this.#droppedJs++;
        });
      return;
    }
    this.#sendOut(s, address.host, address.port, payload);
  }

  #sendOut(s: Session, ip: string, port: number, payload: Buffer): void {
    // Port 0 is not a destination (dgram would throw ERR_SOCKET_BAD_PORT).
    if (port === 0 || (!this.#ctx.allowPrivateDestinations && isPrivateAddress(ip))) {
      this.#droppedJs++;
      return;
    }
    const family = net.isIP(ip) === 6 ? 6 : 4;
    if (this.#batch) {
      let out = family === 4 ? s.bout4 : s.bout6;
      if (!out) {
        try {
          out = BatchUdpSocket.bind(family, family === 4 ? '0.0.0.0' : '::', 0, (data, addrs, off) =>
            this.#onBatchReply(s, data, addrs, off),
          );
        } catch {
          this.#droppedJs++; // out of fds, say: like a lost datagram
          return;
        }
        if (family === 4) s.bout4 = out;
        else s.bout6 = out;
        this.#nativeReplies(s, out);
        this.#route(s);
      }
      if (!out.sendTo(payload, port, ip)) this.#droppedJs++;
      return;
    }
    if (!this.#outSender(s, family).send(payload, port, ip)) this.#droppedJs++;
  }

  #outSender(s: Session, family: 4 | 6): FastUdpSender {
    const existing = family === 4 ? s.send4 : s.send6;
    if (existing) return existing;
    const out = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
    out.on('error', () => undefined); // ICMP errors and the like: the destination just doesn't answer
    out.on('message', (data, rinfo) => this.#onReply(s, data, rinfo));
    const sender = new FastUdpSender(out, family);
    if (family === 4) {
      s.out4 = out;
      s.send4 = sender;
    } else {
      s.out6 = out;
      s.send6 = sender;
    }
    return sender;
  }

  // ---- destination to client ----

  /**
   * A reply on a batched socket: the source is the 20 address bytes at addrs[off]. SIP004
   * sessions normally have their replies sealed in C (#nativeReplies); this is the 2022 path.
   */
  #onBatchReply(s: Session, data: Buffer, addrs: Uint8Array, off: number): void {
    const listener = this.#batch;
    const client = s.clientRaw;
    if (s.closed || !listener || !client || overRate(this.#ctx.speed, s, false, data.length)) return;
    const sealed = this.#sealReply(s, (now) => {
      if (s.key.edition !== 2022)
        return encodeUdp2017Raw(s.key.method, s.key.masterKey, addrToSocks(addrs, off), data);
      const a = addrToIp(addrs, off);
      return s.s2022!.seal({ type: a.family === 6 ? 'ipv6' : 'ipv4', host: a.ip, port: a.port }, data, now);
    });
    if (sealed) listener.send(sealed, client, 0);
  }

  /** Seal a reply with the session's key, counting it; undefined (logged at debug) when it cannot be sealed. */
  #sealReply(s: Session, seal: (now: number) => Buffer): Buffer | undefined {
    const now = this.#ctx.clock.now();
    let sealed: Buffer;
    try {
      sealed = seal(now);
    } catch (err) {
      this.#ctx.log.debug({ err: (err as Error).message }, 'udp reply not sealed');
      return undefined;
    }
    s.lastMs = now;
    this.#ctx.addUsage(s.key.id, 0, sealed.length);
    return sealed;
  }

  #onReply(s: Session, data: Buffer, rinfo: dgram.RemoteInfo): void {
    const sender = this.#sender;
    if (s.closed || !sender || overRate(this.#ctx.speed, s, false, data.length)) return;
    const from: SocksAddress = {
      type: rinfo.family === 'IPv6' ? 'ipv6' : 'ipv4',
      host: rinfo.address,
      port: rinfo.port,
    };
    const sealed = this.#sealReply(s, (now) =>
      s.key.edition === 2022
        ? s.s2022!.seal(from, data, now)
        : encodeUdp2017(s.key.method, s.key.masterKey, from, data),
    );
    if (sealed) sender.send(sealed, s.clientPort, s.clientAddress);
  }
}

/** SIP022 §3.2.4: a NAT session must outlive the 60 s a client remembers the server's session. */
export const MIN_UDP_IDLE_MS_2022 = UDP_SESSION_TTL_MS;
