import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AeadDecoder } from '../protocol/shadowsocks/aead.js';
import type { Aead2022RequestDecoder } from '../protocol/shadowsocks/aead2022.js';
import { decodeAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { uotVersion, type UotVersion } from '../protocol/uot.js';
import type { Timer } from '../shared/clock.js';
import { socketFd } from '../transport/native-handoff.js';
import { NativeStream } from '../transport/native-stream.js';
import { relay, type RelayHandle } from '../transport/relay.js';
import { allowedAddresses, connectSocket, DialError, dialOptions, dialWith } from './destination.js';
import type { ConnectOnce, Lookup } from './destination.js';
import { isMuxCoolTarget, startInnerMux } from './inner-mux.js';
import type { AuthEvent, ConnectionClosedEvent, ConnectionStatus } from './events.js';
import {
  failureStatus,
  type ClientStream,
  type ServedConnection,
  type StreamInfo,
} from './connection-status.js';
import type { AnyKeyEntry, Key2022Entry, KeyEntry } from './keys.js';
import { handOff, nativeCloseStatus, nativeConnect, relayConnect, relayConnectOnce } from './native-relay.js';
import type { NativeRelay, RelayConnectOptions, RelayStart } from './native-relay.js';
import type { ReplayState } from './replay-state.js';
import { startUot, type UotAssociation } from './uot.js';
import { streamCodec, type StreamCodec } from './stream-codec.js';
import { dialName, type NameContext, type NameDial } from './names.js';
import { tryKeys, type KeyTrialContext } from './key-trial.js';
import { throttleStarted, type KeyLimit, type SpeedLimits } from './speed-limits.js';

export type { ClientStream, ServedConnection, StreamInfo } from './connection-status.js';

/** What a Connection needs from its server: policy, keys, replay filters, and where to report. */
export interface ConnectionContext extends RelayConnectOptions, NameContext, KeyTrialContext {
  /** Idle timeout; before relaying a deadline from the accept (bytes do not extend it). */
  readonly idleMs: number;
  /** Budget for resolving and connecting to a destination. */
  readonly connectMs: number;
  readonly allowPrivateDestinations: boolean;
  readonly lookup: Lookup | undefined;
  /** A target of sing's UDP-over-TCP magic names starts a UDP association (uot.ts), not a dial. */
  readonly udpOverTcp: boolean;
  /** The key trial's replay filters and the relays' (RelayConnectOptions: the server salts). */
  readonly replay: ReplayState;
  /** The addon's TCP relay, when the server uses it (native-relay.ts). */
  readonly nativeRelay?: NativeRelay | undefined;
  /** Dial IP destinations of natively accepted streams in the addon too (relayConnect). */
  readonly nativeDial?: boolean;
  /** The keys' speed limits: a limited key's connection takes the JS relay, throttled. */
  readonly speed?: SpeedLimits;
  /** A key was found (`ip` is the StreamInfo address, '' when unknown). */
  authenticated(c: ServedConnection, ip: string, e: AuthEvent): void;
  /**
   * A key verified: may this client address use it (its device limit, device-limits.ts)? False:
   * the connection is refused as if the key were not usable.
   */
  admitDevice?(c: ServedConnection, keyId: string, ip: string): boolean;
  /** A key verified but the request was refused (replay, 2022 header): no longer authenticating. */
  refusedAfterKey(c: Connection): void;
  addUsage(keyId: string, up: number, down: number): void;
  /** The stream closed; called exactly once. */
  closed(c: ServedConnection, e: ConnectionClosedEvent): void;
}

type Phase = 'auth' | 'address' | 'connecting' | 'relay' | 'drain' | 'done';

/** relayCounts' output (collectUsage reads it at once). */
const COUNTS = new Float64Array(2);

/**
 * One client connection over any byte stream (a TCP socket, a WebSocket or TLS stream, a
 * multiplexed sub-stream), from the first byte to close. Before relaying, every failure gets
 * the same reaction on every stream kind: nothing is written, reading goes on, and the stream
 * is ended when the peer ends it or, at the latest, one idle timeout after the accept.
 *
 * Once relaying, the buffers the stream emits as 'data' are decrypted in place, so it must hand
 * out buffers nobody else reads afterwards (as net.Socket does).
 */
export class Connection implements ServedConnection {
  readonly #ctx: ConnectionContext;
  /** A NativeStream becomes a net.Socket when a path needs a real stream (#duplex). */
  #socket: ClientStream;
  /** StreamInfo.remoteAddress ('' when unknown): orders trial decryption only. */
  readonly #ip: string;
  readonly #acceptedAt: number;
  readonly #tcp: boolean;
  readonly #connectOnce: ConnectOnce<Duplex> | undefined;
  readonly #trial: StreamInfo['trial'];
  readonly #deviceRefused: boolean;
  #phase: Phase = 'auth';
  #status: ConnectionStatus | undefined;
  /** With ERR_CONNECT: the system error code of the failed dial (never the destination). */
  #errno: string | undefined;
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
  #timer: Timer | undefined;
  #target: Duplex | undefined;
  #relay: RelayHandle | undefined;
  #uot: UotAssociation | undefined;
  /** The native relay running this connection, and the byte counts from before it started. */
  #native: object | undefined;
  #nativeBase: [up: number, down: number] = [0, 0];
  #finalized = false;
  #names: NameDial | undefined; // a name's dial in the addon (names.ts)
  #limit: KeyLimit | undefined; // the key's speed limit (speed-limits.ts), looked up once

  constructor(ctx: ConnectionContext, socket: ClientStream, info: StreamInfo) {
    this.#ctx = ctx;
    this.#socket = socket;
    this.#ip = info.remoteAddress ?? '';
    this.#tcp = info.tcp === true;
    [this.#connectOnce, this.#trial] = [info.connect, info.trial];
    this.#deviceRefused = info.deviceRefused === true;
    // A NativeStream may come after the addon waited for its first bytes: its age counts.
    this.#acceptedAt = ctx.clock.now() - (socket instanceof NativeStream ? socket.acceptedAgoMs : 0);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    this.#watch(socket);
    if (info.idleAfterFirst !== true) this.#armIdle();
  }

  /** The first delivery is done (StreamInfo.idleAfterFirst): arm the idle timer if still needed. */
  delivered(): void {
    const p = this.#phase;
    if (!this.#timer && !this.#finalized && (p === 'auth' || p === 'address' || p === 'drain'))
      this.#armIdle();
  }

  #watch(socket: ClientStream): void {
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#finalize());
  }

  /** The client as a Duplex (relay.ts, uot.ts): a NativeStream, paused, becomes a net.Socket. */
  #duplex(): Duplex {
    const s = this.#socket;
    if (!(s instanceof NativeStream)) return s as Duplex;
    const socket = s.toSocket();
    socket.pause();
    this.#socket = socket;
    this.#watch(socket);
    return socket;
  }

  // ---- pre-relay phases: auth, address, drain ----

  readonly #onData = (chunk: Buffer): void => {
    this.#bytesUp += chunk.length;
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

  /**
   * The peer sent FIN before we started relaying: answer with FIN (everything was read). While
   * connecting it is the request's own FIN (sent with it): the relay passes it on (relay.ts).
   */
  readonly #onEnd = (): void => {
    if (this.#phase === 'connecting') return;
    if (this.#phase === 'auth') this.#status ??= 'ERR_SHORT_HEADER';
    if (this.#phase === 'address') this.#status ??= 'ERR_ADDRESS';
    this.#phase = 'done';
    this.#clearTimer();
    this.#socket.end();
  };

  /** The pre-relay deadline: one idle timeout after the accept, whatever arrives meanwhile. */
  #armIdle(): void {
    const clock = this.#ctx.clock;
    const due = this.#acceptedAt + this.#ctx.idleMs - clock.now();
    this.#timer = clock.setTimeout(
      () => {
        this.#timer = undefined;
        if (this.#phase !== 'auth' && this.#phase !== 'address' && this.#phase !== 'drain') return;
        if (clock.now() - this.#acceptedAt >= this.#ctx.idleMs) this.idleOut();
        else this.#armIdle();
      },
      Math.max(1, due),
    );
    this.#timer.unref?.();
  }

  #clearTimer(): void {
    if (this.#timer) this.#ctx.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The pre-relay deadline passed (or a pending cap's eviction): FIN, everything read. */
  idleOut(): void {
    if (this.#phase === 'auth') this.#status ??= 'ERR_SHORT_HEADER';
    if (this.#phase === 'address') this.#status ??= 'ERR_ADDRESS';
    this.#phase = 'done';
    const s = this.#socket;
    s.end(() => s.destroy());
  }

  /**
   * The uniform reaction to every failure before relaying: remember why (for counting), then
   * keep reading and discarding. No bytes are sent and nothing closes until the peer closes or
   * the deadline of #armIdle (one idle timeout after the accept) passes. `keyed`: a key verified.
   */
  #fail(status: ConnectionStatus, keyed = false): void {
    if (keyed) this.#ctx.refusedAfterKey(this);
    this.#status ??= status;
    this.#phase = 'drain';
    this.#head = [];
    this.#headLen = 0;
    this.#plain = [];
    this.#decoder = undefined;
    this.#decoder2022 = undefined;
  }

  /** Find the key of this connection (key-trial.ts) once enough bytes have arrived for a candidate. */
  #tryKeys(): void {
    const buf = this.#head.length === 1 ? this.#head[0]! : Buffer.concat(this.#head, this.#headLen);
    this.#head = [buf];
    const r = tryKeys(this.#ctx, this.#ip, buf, this.#tried, this.#trial);
    if (r === undefined) return; // each untried candidate needs more bytes
    const k = r.key;
    // Over the key's device limit (here, or at the lean path, whose salt check came first): what
    // a key that is not usable gets, no key matched.
    if (this.#deviceRefused) return this.#fail('ERR_CIPHER', true);
    if (k === undefined) return this.#fail(r.status!, r.keyed);
    if (r.status === undefined && this.#ctx.admitDevice?.(this, k.id, this.#ip) === false)
      return this.#fail('ERR_CIPHER', true);
    this.key = k;
    this.#authAt = r.at;
    this.#ctx.authenticated(this, this.#ip, {
      keyId: k.id,
      timeToAuthMs: r.at - this.#acceptedAt,
      keysTried: r.tried,
      recent: r.recent,
      edition: k.edition,
    });
    if (r.status) return this.#fail(r.status);
    this.#head = [];
    this.#headLen = 0;
    [this.#decoder, this.#decoder2022] = [r.decoder, r.decoder2022];
    this.#phase = 'address';
    this.#pushPayload(buf.subarray(r.prefix));
  }

  #pushPayload(chunk: Buffer): void {
    if (this.#decoder2022) return this.#pushPayload2022(this.#decoder2022, chunk);
    let payloads: Buffer[];
    try {
      payloads = this.#decoder!.push(chunk);
    } catch (err) {
      return this.#fail(failureStatus(err, 'stream'));
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
    this.#connect(decoded.address, plain.subarray(decoded.length));
  }

  /** 2022: the variable header carries the target and the initial payload (or padding). */
  #pushPayload2022(dec: Aead2022RequestDecoder<Key2022Entry>, chunk: Buffer): void {
    let payloads: Buffer[];
    try {
      payloads = dec.push(chunk, this.#ctx.clock.now());
    } catch (err) {
      return this.#fail(failureStatus(err, 'request-header'));
    }
    if (payloads.length > 0) this.#plain.push(...payloads);
    const header = dec.header;
    if (!header) return;
    const initial = this.#plain.length === 1 ? this.#plain[0]! : Buffer.concat(this.#plain);
    this.#plain = [];
    this.#connect(header.target, initial);
  }

  // ---- connect and relay ----

  #connect(address: SocksAddress, initial: Buffer): void {
    const uot = this.#ctx.udpOverTcp ? uotVersion(address) : undefined;
    if (uot || isMuxCoolTarget(address)) return this.#startUot(uot, initial);
    this.#phase = 'connecting';
    this.#clearTimer();
    this.#socket.pause();
    this.#limit = this.#ctx.speed?.for(this.key!.id);
    const native = this.#limit ? undefined : this.#nativeEligible();
    const name = address.type === 'domain';
    const inAddon = native && (!name || this.#ctx.names) ? this.#relayConnect(native, initial) : undefined;
    if (inAddon && name) return this.#dialName(inAddon, address);
    // Synchronous for an IP the addon dials: no promise made for this connection.
    if (inAddon && this.#ctx.connectAtOnce === true) return this.#dialInAddon(inAddon, address);
    void this.#dial(address, initial, native, inAddon);
  }

  async #dial(
    address: SocksAddress,
    initial: Buffer,
    native?: NativeRelay,
    inAddon?: RelayStart,
  ): Promise<void> {
    let target: Duplex | number | object;
    try {
      const viaAddon = inAddon ? relayConnectOnce(inAddon) : native && nativeConnect(native);
      const connect = viaAddon || (this.#connectOnce ?? connectSocket);
      target = await dialWith<Duplex | number | object>(
        address,
        dialOptions(this.#ctx, this.key?.id),
        connect,
      );
    } catch (err) {
      return this.#dialFailed(err);
    }
    if (this.#finalized || this.#phase !== 'connecting') {
      if (inAddon) native!.relayClose(target as object);
      else if (typeof target === 'number') native!.fdClose(target);
      else (target as Duplex).destroy();
      return;
    }
    if (inAddon) [this.#native, this.#nativeBase] = [target as object, [this.#bytesUp, this.#bytesDown]];
    else if (typeof target === 'number') this.#startNativeRelay(native!, target, initial);
    else this.#startRelay(target as Duplex, initial);
  }

  /**
   * The dial failed. Authenticated client, so no probing concern: tell it promptly with a FIN,
   * reading whatever it still sends so the close is not a RST.
   */
  #dialFailed(err: unknown): void {
    if (this.#finalized || this.#phase !== 'connecting') return;
    const status = err instanceof DialError ? err.status : 'ERR_CONNECT';
    if (this.#status === undefined) [this.#status, this.#errno] = [status, (err as DialError).errno];
    this.#phase = 'done';
    const s = this.#socket;
    s.resume();
    s.end(() => s.destroy());
  }

  /** An IP the addon dials (relayConnect): no lookup and nothing to wait for, so no promise chain. */
  #dialInAddon(start: RelayStart, address: SocksAddress): void {
    try {
      const [ip] = allowedAddresses([address.host], this.#ctx.allowPrivateDestinations);
      this.#native = start(ip!, address.port, this.#ctx.connectMs);
    } catch (err) {
      return this.#dialFailed(err);
    }
    this.#nativeBase = [this.#bytesUp, this.#bytesDown];
  }

  /** A name dialled in the addon over its addresses (names.ts): no promise when it is cached. */
  #dialName(start: RelayStart, address: SocksAddress): void {
    this.#names = dialName(this.#ctx.names!, this.#ctx, address, start, {
      live: () => !this.#finalized && this.#phase === 'connecting',
      who: this.key?.id,
      started: (relay) =>
        void ((this.#native = relay), (this.#nativeBase = [this.#bytesUp, this.#bytesDown])),
      failed: (err) => this.#dialFailed(err),
    });
  }

  /** The dial and the relay start in the addon (native-relay.ts relayConnect): no JS at connect. */
  #relayConnect(fns: NativeRelay, initial: Buffer): RelayStart | undefined {
    const s = this.#socket;
    if (!(s instanceof NativeStream) || this.#ctx.nativeDial !== true) return undefined;
    return relayConnect(fns, s, this.key as KeyEntry, this.#decoder!, initial, this.#ctx, this.#onAddon);
  }

  /** relayConnect's end: the connect failed (`failed`), or the relay ended. */
  readonly #onAddon = (reason: number, up: number, down: number, failed?: DialError): void => {
    const err = failed && this.#names ? this.#names.retry(failed) : failed; // a name's next address
    if (err) return void ((this.#native = undefined), this.#dialFailed(err));
    if (failed) return;
    if (this.#phase === 'connecting') this.#phase = 'relay';
    this.#onNativeClose(reason, up, down);
  };

  /**
   * The native relay when it can carry this connection (native-relay.ts): the server uses it, the
   * stream is a socket from the TCP listener, the key is SIP004 and the decoder is the addon's.
   */
  #nativeEligible(): NativeRelay | undefined {
    const fns = this.#ctx.nativeRelay;
    if (!fns || !this.#tcp || this.key?.edition === 2022 || !this.#decoder?.nativeCodec) return undefined;
    const s = this.#socket;
    return s instanceof NativeStream || socketFd(s as Duplex) !== undefined ? fns : undefined;
  }

  /** Relay in the addon (native-relay.ts handOff), with the destination's descriptor. */
  #startNativeRelay(fns: NativeRelay, targetFd: number, initial: Buffer): void {
    this.#phase = 'relay';
    // A net.Socket's read() in the hand-off feeds 'data' listeners too: #onData would count twice.
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    const client = this.#socket as Socket | NativeStream;
    const [k, dec] = [this.key as KeyEntry, this.#decoder!];
    const r = handOff(fns, client, targetFd, k, dec, initial, this.#ctx, this.#onNativeClose);
    this.#bytesUp += r.early;
    if (r.status) this.#status ??= r.status;
    this.#nativeBase = [this.#bytesUp, this.#bytesDown];
    this.#native = r.relay;
  }

  readonly #onNativeClose = (reason: number, up: number, down: number): void => {
    this.#bytesUp = this.#nativeBase[0] + up;
    this.#bytesDown = this.#nativeBase[1] + down;
    const status = nativeCloseStatus(reason);
    if (status) this.#status ??= status;
    this.#finalize();
  };

  /** The stream's transforms once the key and request are known (stream-codec.ts). */
  #codec(): StreamCodec {
    const ctx = this.#ctx;
    const dec = this.key!.edition === 2022 ? this.#decoder2022! : this.#decoder!;
    return streamCodec(
      this.key!,
      dec,
      ctx.clock,
      ctx.replay.serverSalts,
      (status) => (this.#status ??= status),
    );
  }

  /** UDP-over-TCP (`version`), or without it v2ray's Mux.Cool inside the stream (inner-mux.ts). */
  #startUot(version: UotVersion | undefined, initial: Buffer): void {
    this.#phase = 'relay';
    this.#clearTimer();
    const client = this.#duplex();
    client.pause();
    client.off('data', this.#onData);
    client.off('end', this.#onEnd);
    const start = version ? startUot.bind(null, version) : startInnerMux;
    this.#uot = start(
      initial,
      {
        stream: client,
        who: this.key?.id,
        ...this.#codec(),
        count: (up, down) => {
          this.#bytesUp += up;
          this.#bytesDown += down;
        },
        refused: (status) => {
          this.#status ??= status;
        },
      },
      this.#ctx,
    );
  }

  #startRelay(target: Duplex, initial: Buffer): void {
    const ctx = this.#ctx;
    this.#phase = 'relay';
    this.#target = target;
    const client = this.#duplex();
    client.off('data', this.#onData);
    client.off('end', this.#onEnd);
    target.on('error', () => target.destroy());
    // The request's first bytes leave before the reply's codec is built: they are what the
    // destination waits for, and nothing it answers is read before the relay below listens.
    if (initial.length > 0) target.write(initial);
    this.#limit?.debit(true, initial.length);
    const { decode, encode } = this.#codec();
    this.#relay = relay(client, target, {
      idleTimeoutMs: ctx.idleMs,
      clock: ctx.clock,
      aToB: decode,
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
      throttle: this.#limit,
    });
    if (this.#limit) throttleStarted();
    client.resume();
  }

  /** Close now (operator action: revoked key, shutdown). */
  abort(status: ConnectionStatus): void {
    this.#status ??= status;
    this.#phase = 'done';
    this.#clearTimer();
    if (this.#relay) this.#relay.close('aborted');
    this.#uot?.close();
    if (this.#native) this.#ctx.nativeRelay!.relayClose(this.#native); // its callback finalizes
    this.#target?.destroy();
    this.#socket.destroy();
  }

  activity(): number {
    this.collectUsage();
    return this.#bytesUp + this.#bytesDown;
  }

  /** Move byte counts not yet reported into the server's pending usage. */
  collectUsage(): void {
    if (!this.key) return;
    if (this.#native && !this.#finalized) {
      this.#ctx.nativeRelay!.relayCounts(this.#native, COUNTS);
      this.#bytesUp = this.#nativeBase[0] + COUNTS[0]!;
      this.#bytesDown = this.#nativeBase[1] + COUNTS[1]!;
    }
    const up = this.#bytesUp - this.#reportedUp;
    const down = this.#bytesDown - this.#reportedDown;
    if (up === 0 && down === 0) return;
    this.#reportedUp = this.#bytesUp;
    this.#reportedDown = this.#bytesDown;
    this.#ctx.addUsage(this.key.id, up, down);
  }

  #finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    this.#clearTimer();
    this.#target?.destroy();
    this.#uot?.close();
    let status = this.#status;
    if (status === undefined) {
      if (this.#phase === 'relay' || (this.#phase === 'done' && this.#relay)) status = 'OK';
      else if (this.key) status = 'ERR_ADDRESS';
      else status = 'ERR_SHORT_HEADER';
    }
    this.#phase = 'done';
    this.collectUsage();
    const now = this.#ctx.clock.now();
    this.#ctx.closed(this, {
      status,
      keyId: this.key?.id,
      probe: this.key === undefined,
      timeToAuthMs: this.#authAt === undefined ? undefined : this.#authAt - this.#acceptedAt,
      durationMs: now - this.#acceptedAt,
      bytesUp: this.#bytesUp,
      bytesDown: this.#bytesDown,
      ...(this.#errno !== undefined ? { errno: this.#errno } : {}),
    });
  }
}
