/**
 * The lean path of a natively accepted SIP004 connection (issue 15, session 14): when the addon's
 * key trial at the accept (accept-trial.ts) found the key and the first read's plaintext holds an
 * IPv4 or IPv6 target that the private rule allows and whose salts pass the replay filters, the
 * server starts the addon's dial and relay (relayConnect) from that first call with no
 * NativeStream, no Connection and no decoder objects: one small object per connection, which
 * the server tracks as it tracks a Connection (usage, per-key close, connectionCount, hooks).
 *
 * Every decision is the one connection.ts makes on the same bytes, in the same order: the key
 * (the addon's trial, whose counts come from the same KeyRing walk), the server-salt and then
 * the client-salt filter (the same shared filters), the authenticated hooks, the private rule,
 * the dial in the addon. Anything else (a domain target, a header the first read does not hold,
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
 * here. LADDER_NATIVE_CHECKS=0 turns that off.
 */
import type { DialError } from './destination.js';
import { isPrivateAddress } from './destination.js';
import { decodeAddress } from '../protocol/socks5/address.js';
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
  return bytes
    ? { clientSalts: bytes[0], serverSalts: bytes[1], allowPrivate: ctx.allowPrivateDestinations }
    : undefined;
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

const PASSED = 1;
const REFUSED = 2;

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
export class LeanConnection implements ServedConnection {
  readonly key: KeyEntry;
  readonly #ctx: ConnectionContext;
  readonly #fns: NativeRelay & NativeAccept;
  readonly #id: number;
  readonly #acceptedAt: number;
  #authAt = 0;
  /** Wire bytes read before the relay (the first read), then the relay's counts on top. */
  readonly #base: number;
  #relay: object | undefined;
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
    const ctx = this.#ctx;
    if (this.#status !== undefined) {
      // Aborted by a hook of its authentication (a key closed in it): no dial.
      this.#fns.connClose(this.#id);
      return this.#finalize();
    }
    this.#fns.connRead(this.#id, false); // paused while dialling (NativeStream.pause)
    try {
      this.#relay = startRelay(
        this.#fns,
        this.#id,
        ip,
        port,
        ctx.connectMs,
        codec,
        this.key,
        initial,
        ctx,
        this.#onClose,
      );
    } catch (err) {
      this.#dialFailed(connectFailed((err as { errno?: unknown }).errno));
    }
  }

  readonly #onClose = (reason: number, up: number, down: number, errno?: number): void => {
    if (NATIVE_RELAY_REASON[reason] === 'connect') {
      this.#relay = undefined;
      return this.#dialFailed(connectFailed(errno));
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
    if (this.#relay) this.#fns.relayClose(this.#relay); // its onClose finalizes
    this.#stream?.destroy();
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
    if (!key) return false;
    // The target: an IP literal whose whole address the first chunks hold (IPv4 read here, as
    // decodeAddress reads it, with no Buffer or address objects).
    let ip: string, port: number, length: number;
    if (after[0] === 1) {
      if (after.length < 7) return false;
      ip = `${after[1]}.${after[2]}.${after[3]}.${after[4]}`;
      port = (after[5]! << 8) | after[6]!;
      length = 7;
    } else {
      const target = after[0] === 4 ? decodeAddress(after) : undefined;
      if (!target) return false;
      ({ host: ip, port } = target.address);
      length = target.length;
    }
    if (checked === PASSED) checkedNatively++;
    else {
      if (port === 0 || (!ctx.allowPrivateDestinations && isPrivateAddress(ip))) return false;
      // The replay filters, as key-trial.ts onSip004Key (a refusal is left to it: it refuses the same).
      const salt = first.subarray(0, key.method.saltSize);
      if (ctx.replay.serverSalts.has(salt) || !ctx.replay.clientSalts.checkAndAdd(salt)) return false;
    }
    leanTrialUsed();
    served++;
    const c = new LeanConnection(ctx, fns, id, key, ageMs, first.length);
    track(c);
    c.authenticated(peer);
    c.start(codec, ip, port, after.subarray(length));
    return true;
  };
}
