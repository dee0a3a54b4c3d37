import { readFile, rename, writeFile } from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { isProtocolError } from '../protocol/errors.js';
import { AeadDecoder, AeadEncoder, sip004HeadMatches } from '../protocol/shadowsocks/aead.js';
import {
  Aead2022RequestDecoder,
  Aead2022ResponseEncoder,
  SaltWindow,
} from '../protocol/shadowsocks/aead2022.js';
import { IdentityTable } from '../protocol/shadowsocks/identity.js';
import type { Aead2022Method } from '../protocol/shadowsocks/methods2022.js';
import { SaltFilter } from '../protocol/shadowsocks/replay.js';
import { decodeAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import type { RuntimeKey, ServerControl, UsageSink } from '../shared/control.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { relay, type RelayHandle } from '../transport/relay.js';
import { DialError, dialDestination } from './destination.js';
import {
  authChannel,
  closedChannel,
  openedChannel,
  CONNECTION_STATUSES,
  type AuthEvent,
  type ConnectionClosedEvent,
  type ConnectionStatus,
  type ServerHooks,
} from './events.js';
import { UdpRelay, type UdpRelayOptions } from './udp-relay.js';
import {
  buildKeyEntries,
  RecentKeys,
  type AnyKeyEntry,
  type Key2022Entry,
  type KeyEntry,
  type RejectedKey,
} from './keys.js';

export const DEFAULT_IDLE_MS = 300_000;
export const DEFAULT_CONNECT_MS = 10_000;
export const DEFAULT_REPLAY_CAPACITY = 20_000;
export const DEFAULT_USAGE_FLUSH_MS = 5_000;
export const DEFAULT_REPLAY_SAVE_MS = 60_000;
const REPLAY_STATE_MAGIC = 'LRS1';
/** Version 2 adds the 2022 edition's timed salt window after the two SIP004 filters. */
const REPLAY_STATE_MAGIC_2 = 'LRS2';

/**
 * SIP023: the users of one identity PSK on this port. One AES block decryption and one Map
 * lookup find the user of a connection, whatever the group's size.
 */
export interface IdentityGroup {
  readonly method: Aead2022Method;
  readonly identityKey: Buffer;
  readonly table: IdentityTable<Key2022Entry>;
  /** salt + identity header + sealed fixed header. */
  readonly probeLength: number;
}

function buildIdentityGroups(entries: Iterable<AnyKeyEntry>): IdentityGroup[] {
  const groups = new Map<string, IdentityGroup>();
  for (const e of entries) {
    if (e.edition !== 2022 || !e.identityKey) continue;
    const id = `${e.method.name}/${e.identityKey.toString('hex')}`;
    let g = groups.get(id);
    if (!g) {
      g = {
        method: e.method,
        identityKey: e.identityKey,
        table: new IdentityTable<Key2022Entry>(e.method, e.identityKey),
        probeLength: e.probeLength,
      };
      groups.set(id, g);
    }
    g.table.set(e.userKey, e);
  }
  return [...groups.values()];
}

function serializeSaltWindow(w: SaltWindow, nowMs: number): Buffer {
  const entries = w.export(nowMs);
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt32BE(entries.length, 0);
  parts.push(head);
  for (const [hex, exp] of entries) {
    const salt = Buffer.from(hex, 'hex');
    const e = Buffer.allocUnsafe(1 + salt.length + 8);
    e[0] = salt.length;
    salt.copy(e, 1);
    e.writeDoubleBE(exp, 1 + salt.length);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

function deserializeSaltWindow(data: Buffer, nowMs: number): SaltWindow {
  if (data.length < 4) throw new Error('truncated 2022 salt window');
  const count = data.readUInt32BE(0);
  const entries: Array<[string, number]> = [];
  let o = 4;
  for (let i = 0; i < count; i++) {
    const len = data[o];
    if (len === undefined || len === 0 || o + 1 + len + 8 > data.length)
      throw new Error('truncated 2022 salt window');
    entries.push([data.toString('hex', o + 1, o + 1 + len), data.readDoubleBE(o + 1 + len)]);
    o += 1 + len + 8;
  }
  if (o !== data.length) throw new Error('trailing bytes after 2022 salt window');
  const w = new SaltWindow();
  w.import(entries, nowMs);
  return w;
}

export interface ServerTimeouts {
  /**
   * Close a connection after this long without a byte in either direction. Also the only way a
   * failed (probe) connection is closed by us, so keep it long (D6: not under ~5 minutes) in
   * production; tests shorten it.
   */
  idleMs?: number;
  /** Budget for resolving and connecting to a destination. */
  connectMs?: number;
}

export interface ServerOptions {
  keys?: readonly RuntimeKey[];
  usage?: UsageSink;
  logger?: Logger;
  clock?: Clock;
  timeouts?: ServerTimeouts;
  /** Allow destinations on loopback/private/link-local networks (default false). */
  allowPrivateDestinations?: boolean;
  /** Salts per replay-filter generation; memory holds at most twice this many (default 20,000). */
  replayCapacity?: number;
  hooks?: ServerHooks;
  /** How often accumulated byte counts go to the UsageSink (default 5 s; also flushed on close). */
  usageFlushMs?: number;
  /**
   * Keep both salt filters in this file across restarts (loaded by listen(), saved every
   * `replaySaveMs` and by close()), so a replay of a connection from before a restart is still
   * refused. Without it, a restart forgets every salt (SIP004 has no timestamps).
   */
  replayStateFile?: string;
  /** How often the replay state is saved when it changed (default 60 s). */
  replaySaveMs?: number;
  /** Name resolution override (tests). */
  lookup?: (host: string) => Promise<{ address: string; family: number }[]>;
  /**
   * Relay UDP too (both editions), on a UDP socket with the TCP port's number. Off by default,
   * like ss-server without -u. `true` or options (NAT idle expiry, table size).
   */
  udp?: boolean | UdpRelayOptions;
}

type Phase = 'auth' | 'address' | 'connecting' | 'relay' | 'drain' | 'done';

const FAILURE_CODES = new Set<string>(CONNECTION_STATUSES);

function statusOf(err: unknown, fallback: ConnectionStatus): ConnectionStatus {
  if (isProtocolError(err) && FAILURE_CODES.has(err.code)) return err.code as ConnectionStatus;
  return fallback;
}

/**
 * Shadowsocks AEAD (SIP004) TCP server: many keys on one port found by trial decryption,
 * exact salt replay filters, one uniform reaction to every pre-authentication failure.
 * See docs/probing-defenses.md for what each behaviour defeats.
 */
export class ShadowsocksServer implements ServerControl {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #usage: UsageSink | undefined;
  readonly #hooks: ServerHooks;
  readonly idleMs: number;
  readonly connectMs: number;
  readonly allowPrivateDestinations: boolean;
  readonly #usageFlushMs: number;
  readonly #lookup: ServerOptions['lookup'];

  #keys = new Map<string, AnyKeyEntry>();
  /** SIP004 keys, tried by trial decryption. */
  #keyList: KeyEntry[] = [];
  /** 2022 single-user keys (no identity header), tried directly. */
  #single2022: Key2022Entry[] = [];
  #groups: IdentityGroup[] = [];
  #rejected: readonly RejectedKey[] = [];
  readonly #recent = new RecentKeys();
  /** Salts of authenticated client connections. */
  clientSalts: SaltFilter;
  /** Salts this server used for its own response streams. */
  serverSalts: SaltFilter;
  /** 2022 edition: request salts of the last 60 s (exact, timed; SIP022 §3.1.5). */
  salts2022 = new SaltWindow();
  #salts2022Changes = 0;
  readonly #replayCapacity: number;
  readonly #replayStateFile: string | undefined;
  readonly #replaySaveMs: number;
  #replaySaveTimer: Timer | undefined;
  #replaySavedAt = -1;
  #saving: Promise<void> = Promise.resolve();

  readonly #conns = new Set<Connection>();
  readonly #byKey = new Map<string, Set<Connection>>();
  readonly #pendingUsage = new Map<string, { up: number; down: number }>();
  #usageTimer: Timer | undefined;
  #server: net.Server | undefined;
  readonly #udpOptions: UdpRelayOptions | undefined;
  #udp: UdpRelay | undefined;

  constructor(opts: ServerOptions = {}) {
    this.#log = opts.logger ?? silentLogger;
    this.#clock = opts.clock ?? systemClock;
    this.#usage = opts.usage;
    this.#hooks = opts.hooks ?? {};
    this.idleMs = opts.timeouts?.idleMs ?? DEFAULT_IDLE_MS;
    this.connectMs = opts.timeouts?.connectMs ?? DEFAULT_CONNECT_MS;
    this.allowPrivateDestinations = opts.allowPrivateDestinations ?? false;
    this.#usageFlushMs = opts.usageFlushMs ?? DEFAULT_USAGE_FLUSH_MS;
    this.#lookup = opts.lookup;
    const capacity = opts.replayCapacity ?? DEFAULT_REPLAY_CAPACITY;
    this.#replayCapacity = capacity;
    this.clientSalts = new SaltFilter(capacity);
    this.serverSalts = new SaltFilter(capacity);
    this.#replayStateFile = opts.replayStateFile;
    this.#replaySaveMs = opts.replaySaveMs ?? DEFAULT_REPLAY_SAVE_MS;
    this.#udpOptions = opts.udp === true ? {} : opts.udp === false ? undefined : opts.udp;
    if (!(this.idleMs > 0) || !(this.connectMs > 0)) throw new RangeError('timeouts must be positive');
    if (opts.keys) this.setKeys(opts.keys);
  }

  // ---- ServerControl ----

  /**
   * Replace the key set. Keys this server cannot serve (e.g. a refused method) are skipped,
   * logged at warn (id and reason only) and listed in `rejectedKeys`; the rest take effect.
   */
  setKeys(keys: readonly RuntimeKey[]): void {
    const { entries: next, rejected } = buildKeyEntries(keys, this.#keys);
    this.#rejected = rejected;
    for (const r of rejected) this.#log.warn({ keyId: r.id, reason: r.reason }, 'key skipped');
    this.#keys = next;
    const all = [...next.values()];
    this.#keyList = all.filter((k): k is KeyEntry => k.edition === 2017);
    this.#single2022 = all.filter((k): k is Key2022Entry => k.edition === 2022 && !k.identityKey);
    this.#groups = buildIdentityGroups(all);
    let closed = 0;
    for (const [id, conns] of this.#byKey) {
      for (const c of conns) {
        if (next.get(id) !== c.key) {
          c.abort('ERR_CLOSED');
          closed++;
        }
      }
    }
    this.#udp?.pruneKeys();
    this.#log.info({ keys: next.size, closedConnections: closed }, 'keys updated');
  }

  /** Keys the last setKeys() skipped, with the reason. */
  get rejectedKeys(): readonly RejectedKey[] {
    return this.#rejected;
  }

  closeKeyConnections(id: string): number {
    const conns = this.#byKey.get(id);
    if (!conns) return 0;
    const list = [...conns];
    for (const c of list) c.abort('ERR_CLOSED');
    return list.length;
  }

  /** Every accepted connection not yet closed, authenticated or not (probes included). */
  get connectionCount(): number {
    return this.#conns.size;
  }

  openConnections(): ReadonlyMap<string, number> {
    const out = new Map<string, number>();
    for (const [id, conns] of this.#byKey) if (conns.size > 0) out.set(id, conns.size);
    return out;
  }

  // ---- lifecycle ----

  /** Start accepting. Resolves with the bound address (use port 0 for an ephemeral port). */
  async listen(opts: { port: number; host?: string | undefined }): Promise<AddressInfo> {
    if (this.#server) throw new Error('server already listening');
    await this.#loadReplayState();
    const addr = await this.#listen(opts);
    if (this.#udpOptions) {
      const udp = new UdpRelay(this, this.#udpOptions);
      try {
        await udp.listen(addr.port, opts.host);
      } catch (err) {
        await this.close();
        throw new Error(`cannot bind UDP port ${addr.port}: ${(err as Error).message}`, { cause: err });
      }
      this.#udp = udp;
    }
    return addr;
  }

  /** The UDP relay, when enabled and listening. */
  get udp(): UdpRelay | undefined {
    return this.#udp;
  }

  #listen(opts: { port: number; host?: string | undefined }): Promise<AddressInfo> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.#accept(s));
    this.#server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.#server = undefined;
        reject(err);
      };
      server.once('error', onError);
      const done = (): void => {
        server.off('error', onError);
        server.on('error', (err) => this.#log.error({ err: err.message }, 'listener error'));
        this.#armUsageFlush();
        this.#armReplaySave();
        const addr = server.address() as AddressInfo;
        this.#log.info({ port: addr.port, keys: this.#keys.size }, 'listening');
        resolve(addr);
      };
      if (opts.host === undefined) server.listen(opts.port, done);
      else server.listen(opts.port, opts.host, done);
    });
  }

  address(): AddressInfo | undefined {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** Stop accepting, close every connection, flush usage. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (this.#usageTimer) this.#clock.clearTimeout(this.#usageTimer);
    this.#usageTimer = undefined;
    if (this.#replaySaveTimer) this.#clock.clearTimeout(this.#replaySaveTimer);
    this.#replaySaveTimer = undefined;
    for (const c of [...this.#conns]) c.abort('ERR_CLOSED');
    const udp = this.#udp;
    this.#udp = undefined;
    if (udp) await udp.close();
    this.flushUsage();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.flushUsage(); // bytes counted while the aborted connections finished closing
    if (server) await this.saveReplayState();
  }

  // ---- replay state across restarts ----

  async #loadReplayState(): Promise<void> {
    const file = this.#replayStateFile;
    if (!file) return;
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#log.warn(
          { code: (err as NodeJS.ErrnoException).code },
          'cannot read replay state; starting empty',
        );
      }
      return;
    }
    try {
      const magic = data.length < 8 ? '' : data.toString('latin1', 0, 4);
      if (magic !== REPLAY_STATE_MAGIC && magic !== REPLAY_STATE_MAGIC_2) throw new Error('bad magic');
      const clientLen = data.readUInt32BE(4);
      if (8 + clientLen > data.length) throw new Error('truncated');
      let serverEnd = data.length;
      let window: SaltWindow | undefined;
      if (magic === REPLAY_STATE_MAGIC_2) {
        const o = 8 + clientLen;
        if (o + 4 > data.length) throw new Error('truncated');
        const serverLen = data.readUInt32BE(o);
        serverEnd = o + 4 + serverLen;
        if (serverEnd > data.length) throw new Error('truncated');
        window = deserializeSaltWindow(data.subarray(serverEnd), this.#clock.now());
        this.clientSalts = SaltFilter.deserialize(data.subarray(8, 8 + clientLen), this.#replayCapacity);
        this.serverSalts = SaltFilter.deserialize(data.subarray(o + 4, serverEnd), this.#replayCapacity);
      } else {
        this.clientSalts = SaltFilter.deserialize(data.subarray(8, 8 + clientLen), this.#replayCapacity);
        this.serverSalts = SaltFilter.deserialize(data.subarray(8 + clientLen), this.#replayCapacity);
      }
      if (window) this.salts2022 = window;
      this.#replaySavedAt = this.#replayStamp();
      this.#log.info(
        {
          clientSalts: this.clientSalts.size,
          serverSalts: this.serverSalts.size,
          salts2022: this.salts2022.size,
        },
        'replay state loaded',
      );
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'replay state file is malformed; starting empty');
    }
  }

  /** Write both salt filters to the replay state file now (atomically: temp file + rename). */
  saveReplayState(): Promise<void> {
    // One save at a time: a periodic save and the one in close() must not share the temp file.
    this.#saving = this.#saving.then(() => this.#saveReplayState());
    return this.#saving;
  }

  async #saveReplayState(): Promise<void> {
    const file = this.#replayStateFile;
    if (!file) return;
    const stamp = this.#replayStamp();
    if (stamp === this.#replaySavedAt) return;
    const client = this.clientSalts.serialize();
    const server = this.serverSalts.serialize();
    const window = serializeSaltWindow(this.salts2022, this.#clock.now());
    // LRS2: magic | u32 clientLen | client | u32 serverLen | server | 2022 window
    const head = Buffer.alloc(8);
    head.write(REPLAY_STATE_MAGIC_2, 0, 'latin1');
    head.writeUInt32BE(client.length, 4);
    const serverLen = Buffer.alloc(4);
    serverLen.writeUInt32BE(server.length, 0);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, Buffer.concat([head, client, serverLen, server, window]), { mode: 0o600 });
      await rename(tmp, file);
      this.#replaySavedAt = stamp;
    } catch (err) {
      this.#log.warn({ code: (err as NodeJS.ErrnoException).code }, 'cannot save replay state');
    }
  }

  #replayStamp(): number {
    return this.clientSalts.changes + this.serverSalts.changes + this.#salts2022Changes;
  }

  #armReplaySave(): void {
    if (!this.#replayStateFile) return;
    this.#replaySaveTimer = this.#clock.setTimeout(() => {
      void this.saveReplayState().then(() => {
        if (this.#server) this.#armReplaySave();
      });
    }, this.#replaySaveMs);
    this.#replaySaveTimer.unref?.();
  }

  /** Hand accumulated byte counts to the UsageSink now. */
  flushUsage(): void {
    for (const c of this.#conns) c.collectUsage();
    if (!this.#usage) {
      this.#pendingUsage.clear();
      return;
    }
    for (const [id, u] of this.#pendingUsage) {
      if (u.up > 0 || u.down > 0) {
        try {
          this.#usage.addBytes(id, u.up, u.down);
        } catch (err) {
          this.#log.warn({ err: (err as Error).message }, 'usage sink failed');
        }
      }
    }
    this.#pendingUsage.clear();
  }

  #armUsageFlush(): void {
    if (!this.#usage) return;
    this.#usageTimer = this.#clock.setTimeout(() => {
      this.flushUsage();
      if (this.#server) this.#armUsageFlush();
    }, this.#usageFlushMs);
    this.#usageTimer.unref?.();
  }

  /**
   * Serve a connection accepted elsewhere (socket activation, tests, the authentication
   * benchmark): exactly what the listener does with each accepted socket. Once relaying, the
   * buffers the socket emits as 'data' are decrypted in place, so it must hand out buffers
   * nobody else reads afterwards (as net.Socket does).
   */
  handleConnection(socket: Socket): void {
    this.#accept(socket);
  }

  // ---- internals used by Connection ----

  #accept(socket: Socket): void {
    const c = new Connection(this, socket);
    this.#conns.add(c);
    try {
      this.#hooks.onConnectionOpened?.();
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'onConnectionOpened hook threw');
    }
    if (openedChannel.hasSubscribers) openedChannel.publish({});
  }

  /** @internal */ get clock(): Clock {
    return this.#clock;
  }
  /** @internal */ get log(): Logger {
    return this.#log;
  }
  /** @internal */ get lookup(): ServerOptions['lookup'] {
    return this.#lookup;
  }

  /** @internal SIP023 identity groups on this port. */
  get identityGroups(): readonly IdentityGroup[] {
    return this.#groups;
  }

  /** @internal SIP004 keys (trial order of the key list). */
  get sip004Keys(): readonly KeyEntry[] {
    return this.#keyList;
  }

  /** @internal The current entry of a key id. */
  keyById(id: string): AnyKeyEntry | undefined {
    return this.#keys.get(id);
  }

  /** @internal 2022 single-user keys. */
  get single2022Keys(): readonly Key2022Entry[] {
    return this.#single2022;
  }

  /** @internal A 2022 request salt was remembered (the replay state changed). */
  noteSalt2022(): void {
    this.#salts2022Changes++;
  }

  /** @internal Keys in trial order for this client IP: recently used from it first. */
  candidates(ip: string): { keys: KeyEntry[]; recent: number } {
    const recentIds = this.#recent.get(ip);
    if (recentIds.length === 0) return { keys: this.#keyList, recent: 0 };
    const first: KeyEntry[] = [];
    for (const id of recentIds) {
      const k = this.#keys.get(id);
      if (k && k.edition === 2017) first.push(k);
    }
    if (first.length === 0) return { keys: this.#keyList, recent: 0 };
    const rest = this.#keyList.filter((k) => !first.includes(k));
    return { keys: [...first, ...rest], recent: first.length };
  }

  /** @internal */ authenticated(c: Connection, ip: string, e: AuthEvent): void {
    if (e.edition !== 2022) this.#recent.use(ip, e.keyId);
    let set = this.#byKey.get(e.keyId);
    if (!set) this.#byKey.set(e.keyId, (set = new Set()));
    set.add(c);
    try {
      this.#hooks.onAuthenticated?.(e);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'onAuthenticated hook threw');
    }
    if (authChannel.hasSubscribers) authChannel.publish(e);
  }

  /** @internal */ addUsage(keyId: string, up: number, down: number): void {
    const u = this.#pendingUsage.get(keyId);
    if (u) {
      u.up += up;
      u.down += down;
    } else this.#pendingUsage.set(keyId, { up, down });
  }

  /** @internal */ closed(c: Connection, e: ConnectionClosedEvent): void {
    this.#conns.delete(c);
    if (e.keyId !== undefined) {
      const set = this.#byKey.get(e.keyId);
      set?.delete(c);
      if (set && set.size === 0) this.#byKey.delete(e.keyId);
    }
    this.#log.debug({ status: e.status, keyId: e.keyId, durationMs: e.durationMs }, 'connection closed');
    try {
      this.#hooks.onConnectionClosed?.(e);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'onConnectionClosed hook threw');
    }
    if (closedChannel.hasSubscribers) closedChannel.publish(e);
  }
}

/** One accepted client connection, from the first byte to close. */
class Connection {
  readonly #srv: ShadowsocksServer;
  readonly #socket: Socket;
  readonly #ip: string;
  readonly #acceptedAt: number;
  #phase: Phase = 'auth';
  #status: ConnectionStatus | undefined;
  key: AnyKeyEntry | undefined;
  #authAt: number | undefined;
  #decoder: AeadDecoder | undefined;
  #decoder2022: Aead2022RequestDecoder<Key2022Entry> | undefined;
  #head: Buffer[] = [];
  #headLen = 0;
  /** Keys and identity groups already tried (each once, when enough bytes have arrived). */
  readonly #tried = new Set<object>();
  #plain: Buffer[] = [];
  #bytesUp = 0;
  #bytesDown = 0;
  #reportedUp = 0;
  #reportedDown = 0;
  #lastActivity: number;
  #timer: Timer | undefined;
  #target: Socket | undefined;
  #relay: RelayHandle | undefined;
  #finalized = false;

  constructor(srv: ShadowsocksServer, socket: Socket) {
    this.#srv = srv;
    this.#socket = socket;
    this.#ip = socket.remoteAddress ?? '';
    this.#acceptedAt = srv.clock.now();
    this.#lastActivity = this.#acceptedAt;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#finalize());
    this.#armIdle();
  }

  // ---- pre-relay phases: auth, address, drain ----

  readonly #onData = (chunk: Buffer): void => {
    this.#bytesUp += chunk.length;
    this.#lastActivity = this.#srv.clock.now();
    switch (this.#phase) {
      case 'auth':
        this.#head.push(chunk);
        this.#headLen += chunk.length;
        this.#tryKeys();
        return;
      case 'address':
        this.#pushPayload(chunk);
        return;
      default:
        return; // drain: read and discard
    }
  };

  /** The peer sent FIN before we started relaying: answer with FIN (everything was read). */
  readonly #onEnd = (): void => {
    if (this.#phase === 'auth') this.#status ??= 'ERR_SHORT_HEADER';
    if (this.#phase === 'address') this.#status ??= 'ERR_ADDRESS';
    this.#phase = 'done';
    this.#clearTimer();
    this.#socket.end();
  };

  #armIdle(): void {
    const clock = this.#srv.clock;
    const due = this.#lastActivity + this.#srv.idleMs - clock.now();
    this.#timer = clock.setTimeout(
      () => {
        this.#timer = undefined;
        if (this.#phase !== 'auth' && this.#phase !== 'address' && this.#phase !== 'drain') return;
        if (clock.now() - this.#lastActivity >= this.#srv.idleMs) this.#idleOut();
        else this.#armIdle();
      },
      Math.max(1, due),
    );
    this.#timer.unref?.();
  }

  #clearTimer(): void {
    if (this.#timer) this.#srv.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Idle timeout before relaying: close with FIN (we have read everything the peer sent). */
  #idleOut(): void {
    if (this.#phase === 'auth') this.#status ??= 'ERR_SHORT_HEADER';
    if (this.#phase === 'address') this.#status ??= 'ERR_ADDRESS';
    this.#phase = 'done';
    const s = this.#socket;
    s.end(() => s.destroy());
  }

  /**
   * The uniform reaction to every failure before relaying: remember why (for counting), then
   * keep reading and discarding. No bytes are sent and nothing closes until the peer closes or
   * the ordinary idle timeout passes.
   */
  #fail(status: ConnectionStatus): void {
    this.#status ??= status;
    this.#phase = 'drain';
    this.#head = [];
    this.#headLen = 0;
    this.#plain = [];
    this.#decoder = undefined;
    this.#decoder2022 = undefined;
  }

  /**
   * Find the key of this connection. Each candidate is tested exactly once, on exactly the bytes
   * its edition needs (SIP004: salt + sealed length; SIP022 §3.1.4: salt, identity header and
   * sealed fixed header), as soon as that many bytes have arrived; nothing is decided on fewer.
   * Order: SIP023 identity groups (O(1) each), 2022 single-user keys, then SIP004 keys by
   * trial decryption, recently used from this IP first.
   */
  #tryKeys(): void {
    const buf = this.#head.length === 1 ? this.#head[0]! : Buffer.concat(this.#head, this.#headLen);
    this.#head = [buf];
    const srv = this.#srv;
    let waiting = false;
    let index = 0;
    for (const g of srv.identityGroups) {
      index++;
      if (this.#tried.has(g)) continue;
      if (g.probeLength > buf.length) {
        waiting = true;
        continue;
      }
      this.#tried.add(g);
      const dec = new Aead2022RequestDecoder<Key2022Entry>(g.method, {
        identity: g.table,
        salts: srv.salts2022,
      });
      if (this.#try2022(dec, g.probeLength, buf, index)) return;
    }
    for (const k of srv.single2022Keys) {
      index++;
      if (this.#tried.has(k)) continue;
      if (k.probeLength > buf.length) {
        waiting = true;
        continue;
      }
      this.#tried.add(k);
      const dec = new Aead2022RequestDecoder<Key2022Entry>(k.method, {
        key: k.userKey,
        salts: srv.salts2022,
      });
      if (this.#try2022(dec, k.probeLength, buf, index, k)) return;
    }
    const base = index;
    const { keys, recent } = srv.candidates(this.#ip);
    index = 0;
    for (const k of keys) {
      index++;
      if (this.#tried.has(k)) continue;
      if (k.probeLength > buf.length) {
        waiting = true;
        continue;
      }
      this.#tried.add(k);
      // A cheap test first (native: no decoder, no exception per wrong key); the decoder only
      // for the key that matches, or for every key without the addon.
      if (sip004HeadMatches(k.method, k.masterKey, buf.subarray(0, k.probeLength)) === false) continue;
      const dec = new AeadDecoder(k.method, k.masterKey);
      let badLength = false;
      try {
        dec.push(buf.subarray(0, k.probeLength));
      } catch (err) {
        if (!isProtocolError(err) || err.code !== 'ERR_PAYLOAD_SIZE') continue; // wrong key
        badLength = true; // the tag verified, so this is the key, but the length is invalid
      }
      this.#onKey(k, dec, buf, index <= recent, badLength, base + index);
      return;
    }
    if (!waiting) this.#fail('ERR_CIPHER');
  }

  /**
   * Test one 2022 candidate on the first `prefix` bytes. False when its tag (or identity) does not
   * match, so the next candidate is tried; true when the candidate decided the connection:
   * authenticated, or authenticated and then refused (type, timestamp, replay) with the uniform
   * reaction.
   */
  #try2022(
    dec: Aead2022RequestDecoder<Key2022Entry>,
    prefix: number,
    buf: Buffer,
    tried: number,
    single?: Key2022Entry,
  ): boolean {
    const srv = this.#srv;
    const now = srv.clock.now();
    try {
      dec.push(buf.subarray(0, prefix), now);
    } catch (err) {
      if (!isProtocolError(err) || err.code === 'ERR_CIPHER' || err.code === 'ERR_SHORT_HEADER') return false;
      // The fixed header authenticated: this is the key, but the request is refused.
      this.#fail(
        err.code === 'ERR_REPLAY'
          ? 'ERR_REPLAY_CLIENT'
          : err.code === 'ERR_TIMESTAMP'
            ? 'ERR_TIMESTAMP'
            : 'ERR_HEADER',
      );
      return true;
    }
    if (!dec.authenticated) return false;
    srv.noteSalt2022();
    const k = single ?? dec.user;
    if (!k) return false;
    this.key = k;
    this.#authAt = now;
    srv.authenticated(this, this.#ip, {
      keyId: k.id,
      timeToAuthMs: this.#authAt - this.#acceptedAt,
      keysTried: tried,
      recent: false,
      edition: 2022,
    });
    this.#head = [];
    this.#headLen = 0;
    this.#decoder2022 = dec;
    this.#phase = 'address';
    this.#pushPayload(buf.subarray(prefix));
    return true;
  }

  #onKey(
    k: KeyEntry,
    dec: AeadDecoder,
    buf: Buffer,
    recent: boolean,
    badLength: boolean,
    tried: number,
  ): void {
    const salt = buf.subarray(0, k.method.saltSize);
    const srv = this.#srv;
    if (srv.serverSalts.has(salt)) return this.#fail('ERR_REPLAY_SERVER');
    if (!srv.clientSalts.checkAndAdd(salt)) return this.#fail('ERR_REPLAY_CLIENT');
    this.key = k;
    this.#authAt = srv.clock.now();
    srv.authenticated(this, this.#ip, {
      keyId: k.id,
      timeToAuthMs: this.#authAt - this.#acceptedAt,
      keysTried: tried,
      recent,
      edition: 2017,
    });
    if (badLength) return this.#fail('ERR_PAYLOAD_SIZE');
    this.#head = [];
    this.#headLen = 0;
    this.#decoder = dec;
    this.#phase = 'address';
    this.#pushPayload(buf.subarray(k.probeLength));
  }

  #pushPayload(chunk: Buffer): void {
    if (this.#decoder2022) return this.#pushPayload2022(this.#decoder2022, chunk);
    let payloads: Buffer[];
    try {
      payloads = this.#decoder!.push(chunk);
    } catch (err) {
      return this.#fail(statusOf(err, 'ERR_CIPHER'));
    }
    if (payloads.length === 0) return;
    this.#plain.push(...payloads);
    const plain = this.#plain.length === 1 ? this.#plain[0]! : Buffer.concat(this.#plain);
    this.#plain = [plain];
    let decoded: { address: SocksAddress; length: number } | undefined;
    try {
      decoded = decodeAddress(plain);
    } catch {
      return this.#fail('ERR_ADDRESS');
    }
    if (!decoded) return; // address continues in the next chunk
    this.#plain = [];
    void this.#connect(decoded.address, plain.subarray(decoded.length));
  }

  /** 2022: the variable header carries the target and the initial payload (or padding). */
  #pushPayload2022(dec: Aead2022RequestDecoder<Key2022Entry>, chunk: Buffer): void {
    let payloads: Buffer[];
    try {
      payloads = dec.push(chunk, this.#srv.clock.now());
    } catch (err) {
      const code = isProtocolError(err) ? err.code : '';
      return this.#fail(code === 'ERR_HEADER' || code === 'ERR_ADDRESS' ? 'ERR_ADDRESS' : 'ERR_CIPHER');
    }
    if (payloads.length > 0) this.#plain.push(...payloads);
    const header = dec.header;
    if (!header) return;
    const initial = this.#plain.length === 1 ? this.#plain[0]! : Buffer.concat(this.#plain);
    this.#plain = [];
    void this.#connect(header.target, initial);
  }

  // ---- connect and relay ----

  async #connect(address: SocksAddress, initial: Buffer): Promise<void> {
    this.#phase = 'connecting';
    this.#clearTimer();
    this.#socket.pause();
    let target: Socket;
    try {
      target = await dialDestination(address, {
        allowPrivate: this.#srv.allowPrivateDestinations,
        timeoutMs: this.#srv.connectMs,
        clock: this.#srv.clock,
        ...(this.#srv.lookup ? { lookup: this.#srv.lookup } : {}),
      });
    } catch (err) {
      if (this.#finalized || this.#phase !== 'connecting') return;
      // Authenticated client, so no probing concern: tell it promptly with a FIN, reading
      // whatever it still sends so the close is not a RST.
      this.#status ??= err instanceof DialError ? err.status : 'ERR_CONNECT';
      this.#phase = 'done';
      const s = this.#socket;
      s.resume();
      s.end(() => s.destroy());
      return;
    }
    if (this.#finalized || this.#phase !== 'connecting') {
      target.destroy();
      return;
    }
    this.#startRelay(target, initial);
  }

  #startRelay(target: Socket, initial: Buffer): void {
    const k = this.key!;
    const srv = this.#srv;
    this.#phase = 'relay';
    this.#target = target;
    const client = this.#socket;
    client.off('data', this.#onData);
    client.off('end', this.#onEnd);
    target.on('error', () => target.destroy());
    let decode: (chunk: Buffer) => Buffer[];
    let encode: (chunk: Buffer) => Buffer;
    if (k.edition === 2022) {
      const dec = this.#decoder2022!;
      const encoder = new Aead2022ResponseEncoder(k.method, k.userKey, dec.salt!);
      let first = true;
      // Socket reads are ours once read: payloads are opened in place (no output allocation).
      decode = (chunk) => dec.pushInPlace(chunk, srv.clock.now());
      encode = (chunk) => {
        if (!first) return encoder.encode(chunk);
        first = false;
        return encoder.encodeHeader(chunk, srv.clock.now());
      };
    } else {
      const dec = this.#decoder!;
      const encoder = new AeadEncoder(k.method, k.masterKey);
      srv.serverSalts.add(encoder.salt);
      decode = (chunk) => dec.pushInPlace(chunk);
      encode = (chunk) => encoder.encode(chunk);
    }
    if (initial.length > 0) target.write(initial);
    this.#relay = relay(client, target, {
      idleTimeoutMs: srv.idleMs,
      clock: srv.clock,
      aToB: (chunk) => {
        try {
          return decode(chunk);
        } catch (err) {
          this.#status ??= statusOf(err, 'ERR_CIPHER');
          throw err;
        }
      },
      bToA: (chunk) => {
        const out = encode(chunk);
        this.#bytesDown += out.length;
        return out;
      },
      onBytes: (fromClient) => {
        this.#bytesUp += fromClient;
      },
      onClose: (reason) => {
        if (reason === 'error') this.#status ??= 'ERR_RELAY';
      },
    });
    client.resume();
  }

  /** Close now (operator action: revoked key, shutdown). */
  abort(status: ConnectionStatus): void {
    this.#status ??= status;
    this.#phase = 'done';
    this.#clearTimer();
    if (this.#relay) this.#relay.close('aborted');
    this.#target?.destroy();
    this.#socket.destroy();
  }

  /** Move byte counts not yet reported into the server's pending usage. */
  collectUsage(): void {
    if (!this.key) return;
    const up = this.#bytesUp - this.#reportedUp;
    const down = this.#bytesDown - this.#reportedDown;
    if (up === 0 && down === 0) return;
    this.#reportedUp = this.#bytesUp;
    this.#reportedDown = this.#bytesDown;
    this.#srv.addUsage(this.key.id, up, down);
  }

  #finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    this.#clearTimer();
    this.#target?.destroy();
    let status = this.#status;
    if (status === undefined) {
      if (this.#phase === 'relay' || (this.#phase === 'done' && this.#relay)) status = 'OK';
      else if (this.key) status = 'ERR_ADDRESS';
      else status = 'ERR_SHORT_HEADER';
    }
    this.#phase = 'done';
    this.collectUsage();
    const now = this.#srv.clock.now();
    this.#srv.closed(this, {
      status,
      keyId: this.key?.id,
      probe: this.key === undefined,
      timeToAuthMs: this.#authAt === undefined ? undefined : this.#authAt - this.#acceptedAt,
      durationMs: now - this.#acceptedAt,
      bytesUp: this.#bytesUp,
      bytesDown: this.#bytesDown,
    });
  }
}
