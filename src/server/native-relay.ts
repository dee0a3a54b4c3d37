/**
 * The server's use of the addon's native TCP relay (native/relay_pair.cc): once a raw TCP
 * connection has a key, a checked salt, a parsed header and a connected destination (all decided
 * in JS, by connection.ts), its bytes can move in C++ on this thread's loop, with no net.Socket
 * events, streams or timers per read. Node's sockets let go of their descriptors (the relay holds
 * duplicates) and the connection reports once, when the relay ends.
 *
 * On by default; LADDER_NATIVE_RELAY=0 turns it off. Read once per server (each data-plane
 * worker makes one at start). Only SIP004 (2017) keys, only sockets from the TCP listener, only
 * on the system clock (the relay's idle timer is libuv's); everything else keeps relay.ts.
 * A connection the addon accepted (transport/native-stream.ts) hands its descriptor over as it
 * is; a net.Socket's is duplicated and the socket destroyed.
 */
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { AeadEncoder, type AeadDecoder } from '../protocol/shadowsocks/aead.js';
import { poolRandomBytes } from '../protocol/shadowsocks/random-pool.js';
import type { SaltFilter } from '../protocol/shadowsocks/replay.js';
import type { Clock } from '../shared/clock.js';
import { detach, socketFd, takeBuffered } from '../transport/native-handoff.js';
import { nativeRelay, NATIVE_RELAY_REASON, type NativeRelay } from '../transport/native-sockets.js';
import { NativeStream } from '../transport/native-stream.js';
import { failureStatus } from './connection-status.js';
import { DialError, type ConnectOnce } from './destination.js';
import type { ConnectionStatus } from './events.js';
import type { KeyEntry } from './keys.js';
import { envSwitch } from '../shared/env.js';

export type { NativeRelay } from '../transport/native-sockets.js';

/** The addon's relay when `wanted` and available here (Linux, addon loaded and enabled). */
export function serverNativeRelay(wanted: boolean): NativeRelay | undefined {
  return wanted ? nativeRelay() : undefined;
}

/** What relayConnect reads of the connection's context (connection.ts ConnectionContext). */
export interface RelayConnectOptions {
  readonly idleMs: number;
  readonly replay: {
    serverSalts: SaltFilter;
    readonly sip004Bytes?: readonly [client: Uint8Array, server: Uint8Array] | undefined;
  };
  /** Relay at once when connect(2) returned connected (connectAtOnceFromEnv). */
  readonly connectAtOnce?: boolean;
  /** The relay derives its encoder from the master key and salt (nativeEncoderFromEnv). */
  readonly nativeEncoder?: boolean;
  /** At the relay's end the client stream goes without a 'close' tick (leanEndFromEnv). */
  readonly leanEnd?: boolean;
  /** With nativeEncoder and shared filters, the addon draws and files the response salt (nativeSaltFromEnv). */
  readonly nativeSalt?: boolean;
}

/**
 * relayConnect starts the relay inside its call when connect(2) returned connected (loopback:
 * no wake-up for the connect's completion) unless LADDER_CONNECT_AT_ONCE=0.
 */
export function connectAtOnceFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_CONNECT_AT_ONCE', env);
}

/**
 * relayConnect hands the addon the master key and the response salt, and the relay derives and
 * owns its encoder (no JS codec object, no finalizer) unless LADDER_NATIVE_ENCODER=0.
 */
export function nativeEncoderFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_ENCODER', env);
}

/**
 * With the relay's own encoder (nativeEncoderFromEnv) and the port's SIP004 filters shared (the
 * data-plane workers'), the addon draws the response salt and adds it to the server-salt filter
 * itself (relayConnect's serverSalts: no salt Buffer and no filter code in JS per connection)
 * unless LADDER_NATIVE_SALT=0.
 */
export function nativeSaltFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_SALT', env);
}

/**
 * At a native relay's end the NativeStream is closed without emitting 'close' (its owner hears of
 * the end from onClose: no process.nextTick and tick-queue run per connection) unless
 * LADDER_LEAN_END=0.
 */
export function leanEndFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_LEAN_END', env);
}

/**
 * A natively accepted connection's pre-relay idle timer is armed after its first delivery, and
 * only when it is still needed (most connections are dialling by then: no setTimeout and
 * clearTimeout each) unless LADDER_LAZY_IDLE=0.
 */
export function lazyIdleFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_LAZY_IDLE', env);
}

/** The SIP004 key trial and decoder in one addon call (aead.ts sip004Open) unless LADDER_NATIVE_TRIAL=0. */
export function nativeTrialFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_TRIAL', env);
}

/** The status a native relay's end gives the connection (undefined: closed normally). */
export function nativeCloseStatus(reason: number): ConnectionStatus | undefined {
  switch (NATIVE_RELAY_REASON[reason]) {
    case 'error':
      return 'ERR_RELAY';
    case 'cipher':
      return 'ERR_CIPHER';
    case 'payload-size':
      return 'ERR_PAYLOAD_SIZE';
    default:
      return undefined; // done, idle; aborted has its status already
  }
}

/** A libuv errno (negative) as its name (ECONNREFUSED...); EIO for anything unnamed. */
function errnoName(errno: unknown): string {
  if (typeof errno !== 'number' || errno >= 0) return 'EIO';
  try {
    return getSystemErrorName(errno);
  } catch {
    return 'EIO';
  }
}

/** The DialError of a connect the addon saw fail with `errno`. */
export function connectFailed(errno: unknown): DialError {
  const code = errnoName(errno);
  return new DialError('ERR_CONNECT', `connect failed: ${code}`, code);
}

/**
 * dialWith's connect for the native relay: a non-blocking connect in the addon that yields the
 * bare descriptor (never a net.Socket), with connectOnce's time budget and DialErrors.
 */
export function nativeConnect(fns: NativeRelay): ConnectOnce<number> {
  return (ip: string, port: number, deadline: number, clock: Clock) =>
    new Promise<number>((resolve, reject) => {
      let handle: object | undefined;
      const timer = clock.setTimeout(
        () => {
          if (handle) fns.tcpConnectCancel(handle);
          reject(new DialError('ERR_CONNECT', 'connect timed out', 'ETIMEDOUT'));
        },
        Math.max(1, deadline - clock.now()),
      );
      timer.unref?.();
      const failed = (errno: unknown): void => {
        clock.clearTimeout(timer);
        reject(connectFailed(errno));
      };
      try {
        handle = fns.tcpConnect(ip, port, (fd, errno) => {
          if (fd < 0) return failed(errno);
          clock.clearTimeout(timer);
          resolve(fd);
        });
      } catch (err) {
        failed((err as { errno?: unknown }).errno);
      }
    });
}

/**
 * The dial and relay start of an authenticated SIP004 connection the addon accepted (`client`,
 * paused), for an IP destination: start(ip, port, budgetMs) has the addon connect and then start
 * the relay itself (relayConnect), so the connect's completion needs no JS; it returns the relay
 * handle at once. Undefined in an older build. A connect refused at once throws a DialError as
 * nativeConnect's rejection does; one that fails or runs out of time later comes to onClose with
 * its DialError (the client is the caller's again); otherwise onClose(reason, up, down) when the
 * relay ends (the client stream destroyed).
 */
export function relayConnect(
  fns: NativeRelay,
  client: NativeStream,
  k: KeyEntry,
  dec: AeadDecoder,
  initial: Buffer,
  ctx: RelayConnectOptions,
  onClose: (reason: number, up: number, down: number, failed?: DialError) => void,
): RelayStart | undefined {
  if (!fns.relayConnect) return undefined;
  return (ip: string, port: number, budgetMs: number) => {
    try {
      return startRelay(
        fns,
        client.id,
        ip,
        port,
        budgetMs,
        dec.nativeCodec!,
        k,
        initial,
        ctx,
        (reason, up, down, errno) => {
          if (NATIVE_RELAY_REASON[reason] === 'connect') return onClose(reason, 0, 0, connectFailed(errno));
          // Its descriptor went to the relay (or the id is closed now): only 'close', or nothing
          // when the owner learns of the end from onClose alone.
          if (ctx.leanEnd === true) client.destroySilently();
          else client.destroy();
          onClose(reason, up, down);
        },
      );
    } catch (err) {
      throw connectFailed((err as { errno?: unknown }).errno);
    }
  };
}

/**
 * The addon's relayConnect call for the authenticated SIP004 connection `id` the addon accepted
 * (paused), its decoder `codec` having read past the header, `initial` the plaintext after it:
 * the dial of ip:port within `budgetMs` and the relay's start (relayConnect's start above, and
 * the lean path's, lean-path.ts). The response salt comes from the shared pool and the relay
 * derives its encoder from the master key and that salt (no JS codec) unless
 * LADDER_NATIVE_ENCODER=0; it goes into the server-salt filter once the connect was not refused
 * at once: in the addon, which also draws it, with shared filters (nativeSaltFromEnv; here only
 * when the addon found the filter's lock busy), else here once the call returned. Throws the
 * addon's error as it is (a connect refused at once: its errno).
 */
export function startRelay(
  fns: NativeRelay,
  id: number,
  ip: string,
  port: number,
  budgetMs: number,
  codec: object,
  k: KeyEntry,
  initial: Buffer,
  ctx: RelayConnectOptions,
  onClose: (reason: number, up: number, down: number, errno?: number) => void,
): object {
  const encoder = ctx.nativeEncoder === true ? undefined : new AeadEncoder(k.method, k.masterKey);
  const filter = !encoder && ctx.nativeSalt === true ? ctx.replay.sip004Bytes?.[1] : undefined;
  const pending: [Uint8Array | undefined, undefined, Uint8Array | undefined] = [
    encoder ? encoder.salt : filter ? undefined : poolRandomBytes(k.method.saltSize),
    undefined,
    initial.length > 0 ? initial : undefined,
  ];
  const relay = fns.relayConnect!(
    id,
    ip,
    port,
    Math.max(1, Math.ceil(budgetMs)),
    codec,
    encoder ? encoder.nativeCodec! : k.masterKey,
    pending,
    Math.max(1, Math.ceil(ctx.idleMs)),
    onClose,
    ctx.connectAtOnce === true,
    filter,
  );
  // With the filter: the salt the addon could not add (its lock was busy), else nothing.
  if (pending[0]) ctx.replay.serverSalts.add(pending[0]);
  return relay;
}

/** relayConnect's start: the relay handle, or a DialError thrown when the connect is refused at once. */
export type RelayStart = (ip: string, port: number, budgetMs: number) => object;

/** A RelayStart as dialWith's connect (the path with LADDER_CONNECT_AT_ONCE=0). */
export function relayConnectOnce(start: RelayStart): ConnectOnce<object> {
  return (ip, port, deadline, clock) => {
    try {
      return Promise.resolve(start(ip, port, deadline - clock.now()));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  };
}

/** What handOff did: the relay (undefined: it did not start), wire bytes read in the hand-off. */
export interface HandOff {
  relay: object | undefined;
  early: number;
  status?: ConnectionStatus;
}

/**
 * Start the native relay of an authenticated SIP004 connection whose destination is connected
 * (`targetFd`, which it takes over): `dec` holds the client's stream state, `initial` the
 * plaintext already decoded past the header. The caller has removed its 'data' and 'end'
 * listeners. When the relay does not start, both sockets are closed (a net.Socket destroyed, a
 * NativeStream destroyed too: its 'close' still comes) and `status` says why.
 */
export function handOff(
  fns: NativeRelay,
  client: Socket | NativeStream,
  targetFd: number,
  k: KeyEntry,
  dec: AeadDecoder,
  initial: Buffer,
  ctx: RelayConnectOptions,
  onClose: (reason: number, up: number, down: number) => void,
): HandOff {
  const { idleMs, replay } = ctx;
  const encoder = new AeadEncoder(k.method, k.masterKey); // its salt comes from the shared pool (random-pool.ts)
  replay.serverSalts.add(encoder.salt);
  // Bytes Node read from a net.Socket (still wire bytes) before the hand-off; a NativeStream
  // reads nothing while paused, so it has none.
  let toDest = initial;
  const early = client instanceof NativeStream ? undefined : takeBuffered(client);
  try {
    if (early) {
      const plain = dec.pushInPlace(early);
      if (plain.length > 0) toDest = Buffer.concat([initial, ...plain]);
    }
  } catch (err) {
    fns.fdClose(targetFd);
    client.destroy();
    return { relay: undefined, early: early!.length, status: failureStatus(err, 'stream') };
  }
  const native = client instanceof NativeStream;
  let relay: object;
  try {
    relay = fns.relayPair(
      native ? client.takeFd() : socketFd(client)!,
      targetFd,
      dec.nativeCodec!,
      encoder.nativeCodec!,
      [encoder.salt, undefined, toDest.length > 0 ? toDest : undefined],
      Math.max(1, Math.ceil(idleMs)), // relayPair takes whole milliseconds only
      onClose,
      native ? 3 : 1, // the destination's descriptor always, the client's when natively accepted
    );
  } catch {
    client.destroy(); // no descriptor to spare, say (the relay closed what it owned)
    return { relay: undefined, early: early?.length ?? 0, status: 'ERR_RELAY' };
  }
  if (!native) detach(client);
  return { relay, early: early?.length ?? 0 };
}
