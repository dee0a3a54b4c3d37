import net from 'node:net';
import { DEFAULT_CONNECT_SECONDS, DEFAULT_IDLE_SECONDS } from '../config/defaults.js';
import { listen } from '../shared/listen.js';
import type { AddressInfo, ListenOptions, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SaltWindow } from '../protocol/shadowsocks/replay.js';
import type { SaltFilter } from '../protocol/shadowsocks/replay.js';
import { systemClock, type Clock } from '../shared/clock.js';
import type { RuntimeKey, ServerControl } from '../shared/control.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { Connection, type ConnectionContext, type ServedConnection, type StreamInfo } from './connection.js';
import { serverNameCache } from './names.js';
import type { AuthEvent, ConnectionClosedEvent, ServerHooks } from './events.js';
import { KeyRing, type KeyDelta, type RejectedKey } from './keys.js';
import { acceptTrialFromEnv, AcceptTrialKeys } from './accept-trial.js';
import {
  leanChecks,
  leanDeviceRefused,
  leanPathFromEnv,
  leanFirst,
  nativeChecksFromEnv,
} from './lean-path.js';
import { nativeRelayFromEnv } from '../transport/native-handoff.js';
import {
  listenNative,
  nativeAccept,
  nativeAcceptFromEnv,
  nativeHandshakeFromEnv,
  type AcceptedTrial,
  type NativeListener,
  type NativeStream,
  type NativeStreamOwner,
} from '../transport/native-stream.js';
import {
  connectAtOnceFromEnv,
  lazyIdleFromEnv,
  leanEndFromEnv,
  nativeEncoderFromEnv,
  nativeSaltFromEnv,
  nativeTrialFromEnv,
  serverNativeRelay,
  type NativeRelay,
} from './native-relay.js';
import { PendingConnections, pendingLimitsFor } from './pending-limits.js';
import { RefusalLog } from './refusal-log.js';
import { ReplayState, replayStateFile } from './replay-state.js';
import { UdpRelay, type AdoptedUdpSocket, type UdpRelayContext, type UdpRelayOptions } from './udp-relay.js';
import { UsageMeter } from './usage-meter.js';
import { SpeedLimits } from './speed-limits.js';
import { DeviceLimits } from './device-limits.js';
import type { ServerOptions } from './server-options.js';

export { DEFAULT_REPLAY_CAPACITY, DEFAULT_REPLAY_SAVE_MS } from './replay-state.js';
export { DEFAULT_USAGE_FLUSH_MS } from './usage-meter.js';
export { DEFAULT_REFUSAL_REPEAT_MS, DEFAULT_UNAUTHENTICATED_REPORT_MS } from './refusal-log.js';
export const DEFAULT_IDLE_MS = DEFAULT_IDLE_SECONDS * 1000;
export const DEFAULT_CONNECT_MS = DEFAULT_CONNECT_SECONDS * 1000;
export type { ServerOptions, ServerTimeouts } from './server-options.js';

/**
 * Shadowsocks server (SIP004 and SIP022/SIP023) on one port: many keys found by trial
 * decryption or identity header, exact salt replay filters, one uniform reaction to every
 * pre-authentication failure. Composes the key ring, the replay state, the usage meter, the
 * per-connection state machine (connection.ts, over any byte stream) and the UDP relay.
 * See docs/probing-defenses.md for what each behaviour defeats.
 */
export class ShadowsocksServer implements ServerControl {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #hooks: ServerHooks;
  readonly idleMs: number;
  readonly connectMs: number;
  readonly allowPrivateDestinations: boolean;
  readonly #keys = new KeyRing();
  readonly #replay: ReplayState;
  readonly #usage: UsageMeter;
  /** Per-key device limits (device-limits.ts): a place per admitted connection of a limited key. */
  readonly #devices: DeviceLimits;
  readonly #refusals: RefusalLog | undefined;
  /** What each Connection may see and call of this server. */
  readonly #ctx: ConnectionContext;

  readonly #conns = new Set<ServedConnection>();
  /** StreamInfo.onAuthenticated of connections not yet authenticated. */
  readonly #onAuth = new WeakMap<ServedConnection, () => void>();
  readonly #byKey = new Map<string, Set<ServedConnection>>();
  /** Only Connections are ever pending (a lean-path connection is authenticated when tracked). */
  readonly #pending: PendingConnections<Connection> | undefined;
  #server: net.Server | undefined;
  /** Whether listen() accepts natively, and the listener when it does (#server then closed). */
  readonly #wantNativeAccept: boolean;
  readonly #nativeHandshake: boolean;
  readonly #lazyIdle: boolean;
  readonly #acceptTrial: boolean;
  readonly #leanPath: boolean;
  /** The addon makes the lean path's checks (lean-path.ts nativeChecksFromEnv). */
  readonly #nativeChecks: boolean;
  #accept: { listener: NativeListener; address: AddressInfo } | undefined;
  /** The keys the addon tries at the accept, when it does. */
  #trialKeys: AcceptTrialKeys | undefined;
  readonly #udpOptions: UdpRelayOptions | undefined;
  #udp: UdpRelay | undefined;

  constructor(opts: ServerOptions = {}) {
    const log = (this.#log = opts.logger ?? silentLogger);
    const clock = (this.#clock = opts.clock ?? systemClock);
    this.#hooks = opts.hooks ?? {};
    this.idleMs = opts.timeouts?.idleMs ?? DEFAULT_IDLE_MS;
    this.connectMs = opts.timeouts?.connectMs ?? DEFAULT_CONNECT_MS;
    this.allowPrivateDestinations = opts.allowPrivateDestinations ?? false;
    this.#usage = new UsageMeter({
      sink: opts.usage,
      clock,
      log,
      ...(opts.usageFlushMs !== undefined ? { flushMs: opts.usageFlushMs } : {}),
      collect: () => {
        for (const c of this.#conns) c.collectUsage();
      },
      busy: () => this.#conns.size > 0,
    });
    const store =
      opts.replayStore ?? (opts.replayStateFile ? replayStateFile(opts.replayStateFile) : undefined);
    this.#replay = new ReplayState({
      clock,
      log,
      store,
      ...(opts.replayCapacity !== undefined ? { capacity: opts.replayCapacity } : {}),
      ...(opts.replaySaveMs !== undefined ? { saveMs: opts.replaySaveMs } : {}),
      filters: opts.replayFilters,
    });
    if (opts.refusalLog !== false) this.#refusals = new RefusalLog({ log, clock, ...opts.refusalLog });
    this.#devices = new DeviceLimits({ keys: this.#keys, clock, log, table: opts.devices });
    this.#udpOptions = opts.udp === true ? {} : opts.udp === false ? undefined : opts.udp;
    if (!(this.idleMs > 0) || !(this.connectMs > 0)) throw new RangeError('timeouts must be positive');
    this.#nativeHandshake = opts.nativeHandshake ?? nativeHandshakeFromEnv();
    this.#lazyIdle = opts.lazyIdle ?? lazyIdleFromEnv();
    this.#acceptTrial =
      (opts.acceptTrial ?? acceptTrialFromEnv()) && (opts.nativeTrial ?? nativeTrialFromEnv());
    this.#ctx = {
      clock,
      idleMs: this.idleMs,
      connectMs: this.connectMs,
      allowPrivateDestinations: this.allowPrivateDestinations,
      lookup: opts.lookup,
      names: serverNameCache(opts, clock),
      udpOverTcp: opts.udpOverTcp ?? (opts.udp !== undefined && opts.udp !== false),
      keys: this.#keys,
      replay: this.#replay,
      nativeRelay: serverNativeRelay(clock === systemClock && (opts.nativeRelay ?? nativeRelayFromEnv())),
      nativeDial: this.#nativeHandshake,
      speed: new SpeedLimits(this.#keys),
      nativeTrial: opts.nativeTrial ?? nativeTrialFromEnv(),
      connectAtOnce: opts.connectAtOnce ?? connectAtOnceFromEnv(),
      nativeEncoder: opts.nativeEncoder ?? nativeEncoderFromEnv(),
      nativeSalt: opts.nativeSalt ?? nativeSaltFromEnv(),
      leanEnd: opts.leanEnd ?? leanEndFromEnv(),
      authenticated: (c, ip, e) => this.#authenticated(c, ip, e),
      admitDevice: (c, keyId, ip) => this.#devices.admit(c, keyId, ip),
      refusedAfterKey: (c) => this.#settled(c),
      addUsage: (keyId, up, down) => this.#usage.add(keyId, up, down),
      closed: (c, e) => this.#closed(c, e),
    };
    const limits = pendingLimitsFor(opts.pending);
    if (limits) this.#pending = new PendingConnections<Connection>(limits, (c) => c.idleOut());
    this.#wantNativeAccept =
      this.#ctx.nativeRelay !== undefined && (opts.nativeAccept ?? nativeAcceptFromEnv());
    // The lean path is the default path's shortcut: only with every part it replaces on.
    const c = this.#ctx;
    this.#leanPath =
      (opts.leanPath ?? leanPathFromEnv()) &&
      this.#acceptTrial &&
      this.#nativeHandshake &&
      this.#lazyIdle &&
      c.connectAtOnce === true &&
      c.nativeEncoder === true &&
      c.leanEnd === true &&
      c.nativeRelay?.relayConnect !== undefined;
    this.#nativeChecks = opts.nativeChecks ?? nativeChecksFromEnv();
    if (opts.keys) this.setKeys(opts.keys);
  }

  // ---- ServerControl ----

  /**
   * Replace the key set. Keys this server cannot serve (e.g. a refused method) are skipped,
   * logged at warn (id and reason only) and listed in `rejectedKeys`; the rest take effect.
   */
  setKeys(keys: readonly RuntimeKey[]): void {
    const ring = this.#keys;
    const speed = this.#ctx.speed!;
    ring.set(keys);
    const gaining = this.#gainingLimits();
    speed.sync(new Set([...speed.known(), ...keys.map((k) => k.id)]));
    this.#trialKeys?.changed();
    for (const r of ring.rejected) this.#log.warn({ keyId: r.id, reason: r.reason }, 'key skipped');
    let closed = 0;
    for (const [id, conns] of this.#byKey) {
      for (const c of conns) {
        if (ring.get(id) !== c.key || gaining.includes(id)) {
          c.abort('ERR_CLOSED');
          closed++;
        }
      }
    }
    this.#udp?.pruneKeys(gaining);
    // debug: a managed server runs several servers (key ports, the web front) and logs the total once.
    this.#log.debug({ keys: ring.size, closedConnections: closed }, 'keys set');
  }

  /**
   * Change only the keys `delta` names (work proportional to the delta): connections of removed
   * or replaced keys are closed, skipped keys logged at warn as by setKeys().
   */
  applyKeyDelta(delta: KeyDelta): void {
    const gone = this.#keys.apply(delta);
    const gaining = this.#gainingLimits();
    this.#ctx.speed!.sync([...delta.remove, ...delta.upsert.map((k) => k.id)]);
    this.#trialKeys?.changed();
    for (const r of this.#keys.rejected) this.#log.warn({ keyId: r.id, reason: r.reason }, 'key skipped');
    let closed = 0;
    for (const id of gone) closed += this.closeKeyConnections(id);
    for (const id of gaining) closed += this.closeKeyConnections(id);
    if (gone.length > 0 || gaining.length > 0) this.#udp?.pruneKeys(gaining);
    this.#log.debug({ keys: this.#keys.size, closedConnections: closed }, 'keys changed');
  }

  /**
   * Keys the ring kept (same method and secret) that had no speed or device limit and now have
   * one (KeyRing.gained compares the old entry's limits with the new). Their open connections
   * are closed (the client opens new ones at once): a connection opened before the limit runs on
   * the fast paths, which neither throttle nor hold a device's place (docs/limits.md). A key
   * whose secret changed is not here: its connections are closed once, as the key's are.
   */
  #gainingLimits(): string[] {
    const out: string[] = [];
    for (const g of this.#keys.gained) if (g.speed || (g.device && this.#devices.enabled)) out.push(g.id);
    return out;
  }

  /** Keys the last setKeys() skipped, with the reason. */
  get rejectedKeys(): readonly RejectedKey[] {
    return this.#keys.rejected;
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
    return this.#conns.size + (this.#accept?.listener.pending() ?? 0);
  }

  openConnections(): ReadonlyMap<string, number> {
    const out = new Map<string, number>();
    for (const [id, conns] of this.#byKey) if (conns.size > 0) out.set(id, conns.size);
    return out;
  }

  /** Per limited key id: client addresses counting against its device limit in this process. */
  devicesInUse(): ReadonlyMap<string, number> {
    return this.#devices.inUse();
  }

  // ---- replay state ----

  /** The replay filters (and their store) of this port. */
  get replayState(): ReplayState {
    return this.#replay;
  }

  /** Salts of authenticated client connections. */
  get clientSalts(): SaltFilter {
    return this.#replay.clientSalts;
  }

  /** Salts this server used for its own response streams. */
  get serverSalts(): SaltFilter {
    return this.#replay.serverSalts;
  }

  /** 2022 edition: request salts of the last 60 s (exact, timed; SIP022 §3.1.5). */
  get salts2022(): SaltWindow {
    return this.#replay.salts2022;
  }

  /** Write the salt filters to the replay state store now (a file: temp file + rename). */
  saveReplayState(): Promise<void> {
    return this.#replay.save();
  }

  // ---- lifecycle ----

  /**
   * Start accepting. Resolves with the bound address (use port 0 for an ephemeral port). With
   * `fd`, accept on that already listening socket instead (a worker's SO_REUSEPORT socket); UDP
   * then binds `port`, or adopts `udpFd` (a UDP socket bound before this server existed).
   */
  async listen(opts: {
    port: number;
    host?: string | undefined;
    fd?: number;
    udpFd?: AdoptedUdpSocket | undefined;
  }): Promise<AddressInfo> {
    if (this.#server) throw new Error('server already listening');
    await this.#replay.load();
    const addr = await this.#listen(opts);
    if (this.#udpOptions) {
      // Inside the try: bad UDP options throw in the constructor, and the TCP listener is closed too.
      let udp: UdpRelay;
      try {
        udp = new UdpRelay(this.udpContext, this.#udpOptions);
        await udp.listen(addr.port, opts.host, opts.udpFd);
      } catch (err) {
        await this.close();
        throw new Error(`cannot start UDP on port ${addr.port}: ${(err as Error).message}`, { cause: err });
      }
      this.#udp = udp;
    }
    return addr;
  }

  /**
   * What a UDP relay of this server needs: its current keys, policy and usage accounting. The
   * UDP relay on the port uses it, and so does UDP over WebSocket (web/ws-udp.ts).
   */
  get udpContext(): UdpRelayContext {
    return {
      clock: this.#clock,
      log: this.#log,
      allowPrivateDestinations: this.allowPrivateDestinations,
      lookup: this.#ctx.lookup,
      names: this.#ctx.names,
      keys: this.#keys,
      addUsage: this.#ctx.addUsage,
      speed: this.#ctx.speed,
      devices: this.#devices,
    };
  }

  /**
   * Start the periodic work (usage flushing, replay-state saving) of a server that has no
   * listener of its own and takes streams only through handleStream (the web front's server in
   * managed mode, which serves the keys of every port). listen() does this itself.
   */
  async startWithoutListener(): Promise<void> {
    await this.#replay.load();
    this.#usage.start();
    this.#replay.start();
  }

  /** The UDP relay, when enabled and listening. */
  get udp(): UdpRelay | undefined {
    return this.#udp;
  }

  async #listen(opts: { port: number; host?: string | undefined; fd?: number }): Promise<AddressInfo> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.handleConnection(s));
    this.#server = server;
    let addr: AddressInfo;
    try {
      addr = await listen(
        server,
        opts.fd !== undefined
          ? ({ fd: opts.fd } as ListenOptions) // net's handle form: { fd } of a listening socket
          : opts.host === undefined
            ? { port: opts.port }
            : { port: opts.port, host: opts.host },
      );
    } catch (err) {
      this.#server = undefined;
      throw err;
    }
    server.on('error', (err) => this.#log.error({ err: err.message }, 'listener error'));
    this.#acceptNatively(server, addr);
    this.#usage.start();
    this.#replay.start();
    this.#log.info(
      { port: addr.port, keys: this.#keys.size, ...(this.#accept ? { accept: 'native' } : {}) },
      'listening',
    );
    return addr;
  }

  /**
   * With the native accept: the addon polls a duplicate of the listening socket Node made (so
   * binding, its errors and the address stay Node's), and Node's server closes its own.
   */
  #acceptNatively(server: net.Server, addr: AddressInfo): void {
    const fns = this.#wantNativeAccept ? nativeAccept() : undefined;
    const fd = (server as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
    if (!fns || typeof fd !== 'number' || fd < 0) return;
    const lazy = this.#lazyIdle;
    // The caps count a connection still pending after its first delivery (which authenticates the
    // common one synchronously): one shared owner, told right after the onStream that set `last`.
    let last: Connection | undefined;
    let lastAddress = '';
    const afterFirst = {
      delivered: (): void => {
        const c = last!;
        last = undefined;
        if (lazy) c.delivered();
        if (c.key === undefined && this.#conns.has(c)) this.#pending?.add(c, lastAddress);
      },
    };
    const onStream = (s: NativeStream, first?: Buffer, t?: AcceptedTrial): NativeStreamOwner | undefined => {
      const trial = this.#trialKeys?.resolve(t, first);
      const info = { remoteAddress: s.remoteAddress, tcp: true, idleAfterFirst: lazy, trial };
      if (leanDeviceRefused(s.id)) Object.assign(info, { deviceRefused: true });
      const c = this.#serve(s, info, this.#pending !== undefined);
      if (!this.#pending) return lazy ? c : undefined;
      last = c;
      lastAddress = s.remoteAddress;
      return afterFirst;
    };
    try {
      const waitMs = this.#nativeHandshake ? this.idleMs : 0;
      const lean = this.#leanPath
        ? leanFirst(
            this.#ctx,
            fns as typeof fns & NativeRelay, // one addon's exports: the accept's and the relay's
            (i) => this.#trialKeys?.keyAt(i),
            (c) => this.#track(c),
          )
        : undefined;
      // Silent connections the addon holds come to JS (and its caps) beyond one cap's worth.
      const p = this.#pending?.limits;
      const checks = lean && leanChecks(this.#ctx, this.#nativeChecks);
      const listener = listenNative(fns, fd, onStream, waitMs, lean, p ? p.perAddress || p.total : 0, checks);
      this.#accept = { listener, address: addr };
      if (this.#acceptTrial && listener.keys)
        this.#trialKeys = new AcceptTrialKeys(this.#keys, listener.keys);
    } catch (err) {
      // No descriptor to spare, say: Node's listener carries on.
      this.#log.warn({ err: (err as Error).message }, 'native accept unavailable; accepting in Node');
      return;
    }
    server.close();
  }

  address(): AddressInfo | undefined {
    if (this.#accept) return this.#accept.address;
    const a = this.#server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** Stop accepting, close every connection, flush usage. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    const accept = this.#accept;
    this.#accept = undefined;
    this.#trialKeys?.close();
    accept?.listener.close();
    this.#usage.stop();
    this.#replay.stop();
    this.#devices.close();
    for (const c of [...this.#conns]) c.abort('ERR_CLOSED');
    const udp = this.#udp;
    this.#udp = undefined;
    if (udp) await udp.close();
    this.flushUsage();
    if (server && !accept) await new Promise<void>((resolve) => server.close(() => resolve()));
    // Natively accepted connections (or the net.Sockets some became) report their close a tick
    // or a loop turn later: wait for them as net.Server.close() would, up to ~1 s.
    for (let i = 0; accept && this.#conns.size > 0 && i < 110; i++) {
      await new Promise<void>((resolve) => (i < 10 ? setImmediate(resolve) : setTimeout(resolve, 10)));
    }
    this.flushUsage(); // bytes counted while the aborted connections finished closing
    this.#refusals?.close();
    if (server) await this.saveReplayState();
  }

  /** Hand accumulated byte counts to the UsageSink now. */
  flushUsage(): void {
    this.#usage.flush();
  }

  // ---- accepting streams ----

  /**
   * Serve a TCP connection accepted elsewhere (socket activation, tests, the authentication
   * benchmark): exactly what the listener does with each accepted socket.
   */
  handleConnection(socket: Socket): void {
    this.handleStream(socket, { remoteAddress: socket.remoteAddress, tcp: true });
  }

  /**
   * Serve one Shadowsocks connection over any byte stream: a TCP socket, a WebSocket or TLS
   * stream, a multiplexed sub-stream. `info.remoteAddress` (e.g. a trusted X-Forwarded-For
   * address) only orders trial decryption. Failures get the same reaction as on the TCP port.
   * Once relaying, the buffers the stream emits as 'data' are decrypted in place, so it must
   * hand out buffers nobody else reads afterwards (as net.Socket does). The stream should allow
   * half-open (end() after the peer's end, as the listener's sockets do) and emit 'close'.
   */
  handleStream(stream: Duplex | NativeStream, info: StreamInfo = {}): void {
    this.#serve(stream, info);
  }

  /** `later`: the caller counts the connection as pending itself if it still is. */
  #serve(stream: Duplex | NativeStream, info: StreamInfo, later = false): Connection {
    const c = new Connection(this.#ctx, stream, info);
    if (!later && info.tcp === true) this.#pending?.add(c, info.remoteAddress);
    if (info.onAuthenticated) this.#onAuth.set(c, info.onAuthenticated);
    this.#track(c);
    return c;
  }

  /** A new connection: counted until it closes, and the opened hook. */
  #track(c: ServedConnection): void {
    this.#conns.add(c);
    this.#usage.wake();
    try {
      this.#hooks.onConnectionOpened?.();
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'onConnectionOpened hook threw');
    }
  }

  // ---- what connections report ----

  /** `c` is no longer authenticating (a key verified): StreamInfo.onAuthenticated, once. */
  #settled(c: ServedConnection): void {
    const onAuth = this.#onAuth.get(c);
    if (onAuth) {
      this.#onAuth.delete(c);
      onAuth();
    }
  }

  #authenticated(c: ServedConnection, ip: string, e: AuthEvent): void {
    this.#settled(c);
    if (c instanceof Connection) this.#pending?.remove(c);
    if (e.edition !== 2022) this.#keys.used(ip, e.keyId);
    let set = this.#byKey.get(e.keyId);
    if (!set) this.#byKey.set(e.keyId, (set = new Set()));
    set.add(c);
    try {
      this.#hooks.onAuthenticated?.(e);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'onAuthenticated hook threw');
    }
  }

  #closed(c: ServedConnection, e: ConnectionClosedEvent): void {
    this.#conns.delete(c);
    this.#devices.release(c);
    if (c instanceof Connection) this.#pending?.remove(c);
    if (e.keyId !== undefined) {
      const set = this.#byKey.get(e.keyId);
      set?.delete(c);
      if (set && set.size === 0) this.#byKey.delete(e.keyId);
    }
    // Guarded: every connection ends here, and the object would be built for nothing.
    if (this.#log.isLevelEnabled('debug'))
      this.#log.debug({ status: e.status, keyId: e.keyId, durationMs: e.durationMs }, 'connection closed');
    this.#refusals?.closed(e);
    try {
      this.#hooks.onConnectionClosed?.(e);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'onConnectionClosed hook threw');
    }
  }
}
