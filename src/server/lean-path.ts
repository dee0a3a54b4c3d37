/**
 * The lean path of a natively accepted SIP004 connection (issue 15, session 14): when the addon's
 * key trial at the accept (accept-trial.ts) found the key and the first read's plaintext holds an
 * IPv4 or IPv6 target that the private rule allows and whose salts pass the replay filters, the
 * server starts the addon's dial and relay (relayConnect) from that first call with no
 * NativeStream, no Connection and no decoder objects: one small object per connection, which
 * the server tracks as it tracks a Connection (usage, per-key close, connectionCount, hooks).
 * A name target (a browser's socks5h request) is dialled as connection.ts dials it with the
 * server's name cache (names.ts dialName: the cache, the lookup gate and timeouts, the private
 * rule on every address, the per-address budget): at once when the cache has the name, after
 * the lookup otherwise; unless it is a UDP-over-TCP or Mux.Cool name, or the server has no name
 * cache (LADDER_NAME_DIAL=0), which connection.ts serves.
 *
 * Every decision is the one connection.ts makes on the same bytes, in the same order: the key
 * (the addon's trial, whose counts come from the same KeyRing walk), the server-salt and then
 * the client-salt filter (the same shared filters), the authenticated hooks, the private rule,
 * the dial in the addon. Anything else (a header the first read does not hold,
 * a replayed or reflected salt, a private or port-0 target, EOF or an error with the first
 * bytes, a failed key) is left to connection.ts with nothing changed, so its reaction is
 * today's. A dial refused at once or failing later gets connection.ts's reaction for a failed
 * dial (a FIN, reading on, then close) on a NativeStream made then.
 *
 * On by default with the native accept, trial, dial, encoder and the session 12 trims;
 * LADDER_LEAN_PATH=0 turns it off (read once per server).
 *
 * With the port's replay filters shared (SharedArrayBuffers: the data-plane workers'), the addon
 * makes the target, private-rule and salt checks itself, in this order, before the first call
 * (native/tcp_accept.cc, shared_salts.h): `checked` 1 says they passed and the client salt is in
 * the filter now, 2 that one refused (connection.ts decides, as when this path refuses), 0 or
 * none that it did not check (a filter's lock was busy: the addon never waits) and they run
 * here; 3 the same as 1 for a name target (the special names above are 2; the private rule is
 * dialName's, on the name's addresses). LADDER_NATIVE_CHECKS=0 turns that off.
 */
import { DialError, isPrivateAddress } from './destination.js';
import { uotVersion } from '../protocol/uot.js';
import { decodeAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { envSwitch } from '../shared/env.js';
import { NATIVE_RELAY_REASON } from '../transport/native-sockets.js';
import {
  NativeStream,
  type LeanChecks,
  type LeanFirst,
  type NativeAccept,
} from '../transport/native-stream.js';
import { leanTrialUsed } from './accept-trial.js';
import type { ServedConnection } from './connection-status.js';
import type { ConnectionContext } from './connection.js';
import type { ConnectionStatus } from './events.js';
import type { KeyEntry } from './keys.js';
import { isMuxCoolTarget } from './inner-mux.js';
import { dialName, type NameCache, type NameDial, type NameDialOwner } from './names.js';
import { connectFailed, nativeCloseStatus, startRelay, type NativeRelay } from './native-relay.js';

/** The lean path is on unless LADDER_LEAN_PATH=0. */
export function leanPathFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_LEAN_PATH', env);
}

/** The addon makes the lean path's checks (with shared filters) unless LADDER_NATIVE_CHECKS=0. */
export function nativeChecksFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_CHECKS', env);
}

/** The addon's checks for a server's lean path: with shared filters only (ReplayState.sip004Bytes). */
export function leanChecks(ctx: ConnectionContext, wanted: boolean): LeanChecks | undefined {
  const bytes = wanted ? ctx.replay.sip004Bytes : undefined;
  if (!bytes) return undefined;
  const names = ctx.names !== undefined;
  return { clientSalts: bytes[0], serverSalts: bytes[1], allowPrivate: ctx.allowPrivateDestinations, names };
}

/** Connections the lean path took on this thread (tests: the path is taken). */
let served = 0;
export function leanPathServed(): number {
  return served;
}
/** Of those, the ones the addon checked (tests). */
let checkedNatively = 0;
export function leanPathChecked(): number {
  return checkedNatively;
}

/**
 * The connection the lean path last refused for its key's device limit: the server's onStream,
 * called for it right after, makes its Connection react as to a key that is not usable (its
 * salt is in the filter by then, so its own trial would call it a replay).
 */
let deviceRefusedId = -1;
export function leanDeviceRefused(id: number): boolean {
  if (deviceRefusedId !== id) return false;
  deviceRefusedId = -1;
  return true;
}

/** `checked` (native/tcp_accept.cc): 1 passed, 2 refused, 0 or none not checked, 3 a name passed. */
const PASSED = 1;
const REFUSED = 2;
const NAME_PASSED = 3;

/** relayCounts' output (collectUsage reads it at once). */
const COUNTS = new Float64Array(2);

/** The walk's visitor (no closure per connection): the position of `target` in the trial order. */
let target: KeyEntry | undefined;
let recentHit = false;
const VISIT = (c: object, position: number, recent: boolean): number | undefined => {
  if (c !== target) return undefined;
  recentHit = recent;
  return position;
};

/** One connection on the lean path, from its relay's start to its end. */
export class LeanConnection implements ServedConnection, NameDialOwner {
  readonly key: KeyEntry;
  readonly #ctx: ConnectionContext;
  readonly #fns: NativeRelay & NativeAccept;
  readonly #id: number;
  readonly #acceptedAt: number;
  #authAt = 0;
  /** Wire bytes read before the relay (the first read), then the relay's counts on top. */
  readonly #base: number;
  #relay: object | undefined;
  /** A name's dial (names.ts); undefined for an IP. */
  #names: NameDial | undefined;
  /** After a failed dial: the client stream, read until it closes (connection.ts #dialFailed). */
  #stream: NativeStream | undefined;
  #status: ConnectionStatus | undefined;
  #errno: string | undefined;
  #up: number;
  #down = 0;
  #reportedUp = 0;
  #reportedDown = 0;
  #finalized = false;

  constructor(
    ctx: ConnectionContext,
    fns: NativeRelay & NativeAccept,
    id: number,
    key: KeyEntry,
    ageMs: number,
    up: number,
  ) {
    this.#ctx = ctx;
    this.#fns = fns;
    this.#id = id;
    this.key = key;
    this.#acceptedAt = ctx.clock.now() - ageMs;
    this.#base = this.#up = up;
  }

  /** The key authenticated the connection: the server's bookkeeping and hooks, as connection.ts #tryKeys. */
  authenticated(ip: string): void {
    const ctx = this.#ctx;
    target = this.key;
    recentHit = false;
    const tried = ctx.keys.walk(ctx.keys.recentFor(ip), VISIT) ?? 0;
    target = undefined;
    this.#authAt = ctx.clock.now();
    ctx.authenticated(this, ip, {
      keyId: this.key.id,
      timeToAuthMs: this.#authAt - this.#acceptedAt,
      keysTried: tried,
      recent: recentHit,
      edition: 2017,
    });
  }

  /** The dial and relay start in the addon (native-relay.ts startRelay). */
  start(codec: object, ip: string, port: number, initial: Buffer): void {
    if (!this.#dialling()) return;
    try {
      this.#relay = this.#startRelay(codec, ip, port, this.#ctx.connectMs, initial);
    } catch (err) {
      this.#dialFailed(connectFailed((err as { errno?: unknown }).errno));
    }
  }

  /** A name's dial over its addresses (names.ts dialName), each started as start() starts an IP. */
  startName(codec: object, names: NameCache, address: SocksAddress, initial: Buffer): void {
    if (!this.#dialling()) return;
    // dialName's start (native-relay.ts RelayStart): a DialError when the connect is refused at once.
    const start = (ip: string, port: number, budgetMs: number): object => {
      try {
        return this.#startRelay(codec, ip, port, budgetMs, initial);
      } catch (err) {
        throw connectFailed((err as { errno?: unknown }).errno);
      }
    };
    this.#names = dialName(names, this.#ctx, address, start, this);
  }

  /** Paused while dialling (NativeStream.pause); false when a hook of its authentication aborted it. */
  #dialling(): boolean {
    if (this.#status !== undefined) {
      // Aborted by a hook of its authentication (a key closed in it): no dial.
      this.#fns.connClose(this.#id);
      this.#finalize();
      return false;
    }
    this.#fns.connRead(this.#id, false);
    return true;
  }

  #startRelay(codec: object, ip: string, port: number, budgetMs: number, initial: Buffer): object {
    const [fns, ctx] = [this.#fns, this.#ctx];
    return startRelay(fns, this.#id, ip, port, budgetMs, codec, this.key, initial, ctx, this.#onClose);
  }

  // NameDialOwner (names.ts): the name's dial reports here.
  live(): boolean {
    return !this.#finalized && this.#stream === undefined;
  }
  get who(): string {
    return this.key.id;
  }
  started(relay: object): void {
    this.#relay = relay;
  }
  failed(err: unknown): void {
    // connection.ts #dialFailed's reading of anything else: ERR_CONNECT, no errno.
    this.#dialFailed(err instanceof DialError ? err : new DialError('ERR_CONNECT', 'connect failed'));
  }

  readonly #onClose = (reason: number, up: number, down: number, errno?: number): void => {
    if (NATIVE_RELAY_REASON[reason] === 'connect') {
      this.#relay = undefined;
      const failed = connectFailed(errno);
      const err = this.#names ? this.#names.retry(failed) : failed; // a name's next address
      return err ? this.#dialFailed(err) : undefined;
    }
    this.#relay = undefined;
    this.#fns.connClose(this.#id); // the client, if the relay never took it (a stale id: nothing)
    this.#up = this.#base + up;
    this.#down = down;
    this.#status ??= nativeCloseStatus(reason) ?? 'OK';
    this.#finalize();
  };

  /** connection.ts #dialFailed: a FIN to the authenticated client, reading on until it closes. */
  #dialFailed(err: DialError): void {
    if (this.#finalized || this.#stream) return;
    if (this.#status === undefined) [this.#status, this.#errno] = [err.status, err.errno];
    const s = (this.#stream = new NativeStream(this.#fns, this.#id, '', 0, true));
    NativeStream.register(s);
    s.on('data', (chunk) => void (this.#up += chunk.length));
    s.on('error', () => s.destroy());
    s.on('close', () => this.#finalize());
    s.resume();
    s.end(() => s.destroy());
  }

  /** Close now (operator action: revoked key, shutdown). */
  abort(status: ConnectionStatus): void {
    this.#status ??= status;
    if (this.#relay)
      this.#fns.relayClose(this.#relay); // its onClose finalizes
    else if (this.#stream) this.#stream.destroy();
    else if (this.#names && !this.#finalized) {
      // A name's lookup pending: the client goes now (its late answer finds the dial not live).
      this.#fns.connClose(this.#id);
      this.#finalize();
    }
  }

  activity(): number {
    this.collectUsage();
    return this.#up + this.#down;
  }

  /** Move byte counts not yet reported into the server's pending usage. */
  collectUsage(): void {
    if (this.#relay && !this.#finalized) {
      this.#fns.relayCounts(this.#relay, COUNTS);
      this.#up = this.#base + COUNTS[0]!;
      this.#down = COUNTS[1]!;
    }
    const up = this.#up - this.#reportedUp;
    const down = this.#down - this.#reportedDown;
    if (up === 0 && down === 0) return;
    this.#reportedUp = this.#up;
    this.#reportedDown = this.#down;
    this.#ctx.addUsage(this.key.id, up, down);
  }

  #finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    this.collectUsage();
    const now = this.#ctx.clock.now();
    this.#ctx.closed(this, {
      status: this.#status ?? 'ERR_CONNECT',
      keyId: this.key.id,
      probe: false,
      timeToAuthMs: this.#authAt - this.#acceptedAt,
      durationMs: now - this.#acceptedAt,
      bytesUp: this.#up,
      bytesDown: this.#down,
      ...(this.#errno !== undefined ? { errno: this.#errno } : {}),
    });
  }
}

/**
 * The lean path's first call (transport/native-stream.ts LeanFirst) for a server: `keyAt` names
 * the trial's key (accept-trial.ts), `track` adds a connection to the server's set with its
 * opened hook. Returns true when it took the connection.
 */
export function leanFirst(
  ctx: ConnectionContext,
  fns: NativeRelay & NativeAccept,
  keyAt: (index: number) => KeyEntry | undefined,
  track: (c: LeanConnection) => void,
): LeanFirst {
  return (id, first, code, peer, ageMs, index, codec, info, after, checked) => {
    if (checked === REFUSED) return false;
    if (code !== 0 || index < 0 || !first || !codec || !info || typeof after !== 'object') return false;
    const key = keyAt(index);
    // A speed-limited key's connection is throttled in connection.ts (the addon's checks carry over).
    if (!key || ctx.speed?.for(key.id)) return false;
    // The target, whole in the first chunks: an IPv4 address or a name read here as
    // decodeAddress reads them (no Buffer or result objects), an IPv6 address by decodeAddress.
    let ip: string, port: number, length: number;
    let name: SocksAddress | undefined;
    if (after[0] === 1) {
      if (after.length < 7) return false;
      ip = `${after[1]}.${after[2]}.${after[3]}.${after[4]}`;
      port = (after[5]! << 8) | after[6]!;
      length = 7;
    } else if (after[0] === 3) {
      const n = after.length > 1 ? after[1]! : 0;
      if (n === 0 || after.length < n + 4) return false; // empty (connection.ts refuses it) or cut
      // connection.ts's: a UDP-over-TCP or Mux.Cool name, or a server without the name cache.
      if (!ctx.names) return false;
      ip = after.toString('utf8', 2, 2 + n);
      port = (after[2 + n]! << 8) | after[3 + n]!;
      length = n + 4;
      name = { type: 'domain', host: ip, port };
      if (isMuxCoolTarget(name) || (ctx.udpOverTcp && uotVersion(name))) return false;
    } else {
      const target = after[0] === 4 ? decodeAddress(after) : undefined;
      if (!target) return false;
      ({ host: ip, port } = target.address);
      length = target.length;
    }
    if (checked === PASSED || checked === NAME_PASSED) checkedNatively++;
    else {
      if (port === 0 || (!name && !ctx.allowPrivateDestinations && isPrivateAddress(ip))) return false;
      // The replay filters, as key-trial.ts onSip004Key (a refusal is left to it: it refuses the same).
      const salt = first.subarray(0, key.method.saltSize);
      if (ctx.replay.serverSalts.has(salt) || !ctx.replay.clientSalts.checkAndAdd(salt)) return false;
    }
    const c = new LeanConnection(ctx, fns, id, key, ageMs, first.length);
    if (ctx.admitDevice?.(c, key.id, peer) === false) {
      deviceRefusedId = id;
      return false;
    }
    leanTrialUsed();
    served++;
    track(c);
    c.authenticated(peer);
    if (name) c.startName(codec, ctx.names!, name, after.subarray(length));
    else c.start(codec, ip, port, after.subarray(length));
    return true;
  };
}
