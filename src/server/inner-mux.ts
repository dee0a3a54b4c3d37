import { Duplex } from 'node:stream';
import type { SocksAddress } from '../protocol/socks5/address.js';
import { toSocksAddress } from '../protocol/socks5/address.js';
import type { MuxTarget } from '../protocol/muxcool.js';
import { MuxConnection } from '../transport/mux.js';
import { relay } from '../transport/relay.js';
import type { Clock } from '../shared/clock.js';
import { DialError, dialDestination, dialOptions, type Lookup } from './destination.js';
import type { UotAssociation, UotStream } from './uot.js';
import type { SpeedLimits } from './speed-limits.js';

/**
 * The name v2ray and Xray put in the proxy request when their outbound's `mux` is on: the
 * stream then carries Mux.Cool frames, each session naming its own destination (v2ray-core's
 * mux client dials `v1.mux.cool:9527` through the outbound; its inbound side recognises the name).
 */
export const MUX_COOL_NAME = 'v1.mux.cool';

/** Sessions one stream may have at once (v2ray's client opens up to its `concurrency`, 8 by default). */
const MAX_SESSIONS = 128;
/** Unread bytes one session may hold before the stream is paused. */
const SESSION_BUFFER = 256 * 1024;

/** Is `target` v2ray's Mux.Cool name (the stream is multiplexed, not one destination)? */
export function isMuxCoolTarget(target: SocksAddress): boolean {
  // toLowerCase() folds U+212A (Kelvin) to 'k' where the addon's strncasecmp does not: the same
  // answer only while the name has no 'k' (native/tcp_accept.cc SpecialName).
  return target.type === 'domain' && target.host.toLowerCase() === MUX_COOL_NAME;
}

export interface InnerMuxContext {
  readonly clock: Clock;
  readonly idleMs: number;
  readonly connectMs: number;
  readonly allowPrivateDestinations: boolean;
  readonly lookup: Lookup | undefined;
  /** The keys' speed limits: a limited key's sessions are throttled (speed-limits.ts). */
  readonly speed?: SpeedLimits | undefined;
}

/**
 * The authenticated stream's plaintext as a Duplex: what the client sends, opened; what is
 * written, sealed and sent. Back-pressure both ways (the client's stream pauses while the
 * plaintext is not read; a write completes when the client's stream takes it).
 */
class PlainCarrier extends Duplex {
  readonly #io: UotStream;

  constructor(io: UotStream) {
    super({ allowHalfOpen: true });
    this.#io = io;
  }

  override _read(): void {
    this.#io.stream.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const out = this.#io.encode(chunk);
    this.#io.count(0, out.length);
    if (this.#io.stream.write(out)) cb();
    else this.#io.stream.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#io.stream.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#io.stream.destroy();
    cb(err);
  }
}

/**
 * v2ray/Xray's Mux.Cool inside a Shadowsocks stream (the client's `mux` switch, e.g. v2rayNG's
 * "Mux" setting): every TCP session is dialled to the destination its New frame names, under the
 * same policy as a plain stream (private destinations refused unless allowed, the connect
 * budget), and relayed with half-close; a session whose dial fails is ended with the error bit.
 * UDP sessions are refused (End with the error bit; the client then sends that traffic without
 * mux or not at all). Usage is the outer stream's bytes, counted as for any stream. A malformed
 * frame makes the connection inert (mux.ts), the server's reaction to garbage.
 */
export function startInnerMux(initial: Buffer, io: UotStream, ctx: InnerMuxContext): UotAssociation {
  const { stream } = io;
  const carrier = new PlainCarrier(io);
  carrier.on('error', () => {});
  const onData = (chunk: Buffer): void => {
    io.count(chunk.length, 0);
    let plain: Buffer[];
    try {
      plain = io.decode(chunk);
    } catch {
      carrier.destroy();
      return;
    }
    for (const p of plain) if (!carrier.push(p)) stream.pause();
  };
  stream.on('data', onData);
  stream.once('end', () => carrier.push(null));
  stream.once('close', () => carrier.destroy());
  if (initial.length > 0) carrier.push(initial);

  const dialOpts = dialOptions(ctx, io.who);
  const onSession = (session: Duplex, target: MuxTarget): void => {
    session.on('error', () => {});
    session.pause();
    let dest: SocksAddress;
    try {
      dest = toSocksAddress(target.host, target.port);
    } catch {
      session.destroy();
      return;
    }
    dialDestination(dest, dialOpts).then(
      (socket) => {
        if (session.destroyed) {
          socket.destroy();
          return;
        }
        socket.on('error', () => socket.destroy());
        const throttle = io.who === undefined ? undefined : ctx.speed?.for(io.who);
        relay(session, socket, { idleTimeoutMs: ctx.idleMs, clock: ctx.clock, throttle });
        session.resume();
      },
      (err: unknown) => {
        io.refused(err instanceof DialError ? err.status : 'ERR_CONNECT'); // the first one is kept
        session.destroy();
      },
    );
  };
  // One client stream may not hold more than MAX_SESSIONS dials and SESSION_BUFFER unread bytes
  // each (the transport's defaults, 1024 x 1 MiB, are for a carrier of whole Shadowsocks streams).
  const mux = new MuxConnection(carrier, {
    role: 'server',
    onSession,
    idleMs: ctx.idleMs,
    maxSessions: MAX_SESSIONS,
    sessionBuffer: SESSION_BUFFER,
  });
  stream.resume();
  return {
    close() {
      mux.destroy();
      carrier.destroy();
    },
  };
}
