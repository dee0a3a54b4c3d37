// size: Mux.Cool's connection and its sessions are one state machine over shared fields (each session reads and writes through its connection's private state); split, each half would import the other
import { Duplex } from 'node:stream';
import {
  encodeMuxFrame,
  encodeMuxMessage,
  MUX_OPTION_ERROR,
  MuxCoolDecoder,
  MuxNetwork,
  MuxStatus,
  type MuxFrame,
  type MuxTarget,
} from '../protocol/muxcool.js';
import { MuxCover, type MuxCoverOptions } from './mux-cover.js';

/** Data per frame we send: small enough that sessions interleave, big enough to cost little. */
const FRAME_DATA = 32 * 1024;

/**
 * How long a session's closing End frame may wait to ride with the carrier's next write (ms):
 * `LADDER_MUX_END_DELAY_MS` (read once), default 2; 0 sends every End at once, as before.
 */
export function muxEndDelayMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.LADDER_MUX_END_DELAY_MS;
  if (v === undefined || v === '') return DEFAULT_END_DELAY_MS;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.min(n, 50) : DEFAULT_END_DELAY_MS;
}
const DEFAULT_END_DELAY_MS = 2;
/**
 * The most bytes written without a callback (Ends, refusals, cover frames) that may wait in a full
 * carrier before reading stops until it drains (#onData): an honest peer's Ends between two drains
 * are a few KiB (1024 sessions at most, 6 bytes each); a peer that makes us answer without reading
 * the answers is held at this plus one read's answers.
 */
const UNPACED_LIMIT = 32 * 1024;

/**
 * The target a client puts in New frames. A v2ray-plugin server ignores it (its outbound is
 * fixed), and so do we; Clash sends the same.
 */
export const MUX_PLACEHOLDER_TARGET: MuxTarget = { network: MuxNetwork.Tcp, host: '127.0.0.1', port: 0 };

export interface MuxConnectionOptions {
  /** 'server' accepts New frames; 'client' opens sessions with open(). */
  role: 'server' | 'client';
  /** Server: each new TCP session, with the target its New frame named. */
  onSession?: (session: MuxSession, target: MuxTarget) => void;
  /**
   * Bytes one session may hold unread before the whole carrier is paused (Mux.Cool has no
   * per-session flow control). Default 1 MiB.
   */
  sessionBuffer?: number;
  /**
   * How long one session may keep the carrier paused by not reading; then it is destroyed so the
   * others go on (default 30 s).
   */
  stallMs?: number;
  /** Server: most concurrent sessions; a New beyond it is answered with End (default 1024). */
  maxSessions?: number;
  /**
   * Server: most sessions at once that the owner has not yet called authenticated() for (a
   * Shadowsocks stream whose first chunk did not decrypt yet, or never will); a New beyond it is
   * answered with End and the error bit, as a refused session. Default: no bound of its own.
   */
  maxUnauthenticated?: number | undefined;
  /** Called once when the carrier is gone. */
  onClose?: () => void;
  /** Destroy the carrier after this long with no session and no byte from the peer. */
  idleMs?: number;
  /** D14 cover: pad the first writes and optionally send idle KeepAlives (mux-cover.ts); default none. */
  cover?: MuxCoverOptions | undefined;
  /**
   * D14 cover that starts only once the peer sent a KeepAlive frame with data (its own padding):
   * proof that it parses KeepAlive data. Some clients do not (Clash/mihomo's v2ray-plugin mux
   * reads a KeepAlive as a bare header and would take the padding for the next frame), so a
   * server pads only peers that pad.
   */
  mirrorCover?: MuxCoverOptions | undefined;
  /**
   * A session's End (a clean close of our side) waits up to this long (ms) and leaves with the
   * carrier's next write (another session's New or Keep: one carrier write, one TLS record and
   * one read at the peer instead of two), so the tail of a finished session never delays the
   * next session's bytes, which go first in that write. 0 or unset: every End at once.
   */
  endDelayMs?: number | undefined;
  /** Called once per session when it has moved MUX_BULK_BYTES (both directions together). */
  onBulk?: (() => void) | undefined;
}

/**
 * A session that has moved this much (both directions) is bulk: its carrier's buffers hold its
 * data for a while, and a short exchange opened on the same carrier waits behind them (MuxPool
 * opens new sessions on another carrier meanwhile).
 */
export const MUX_BULK_BYTES = 1024 * 1024;

/**
 * Mux.Cool over one byte stream (the carrier, e.g. a WsStream): sessions are Duplex sub-streams.
 * Frames from the peer: New opens a session (server), Keep carries data, End ends the peer's
 * direction of a session (with the error bit: the session is destroyed), KeepAlive is ignored,
 * frames for unknown sessions are answered with End and dropped (as v2ray does). What we send:
 * New (client, with the first data), Keep for data, End when a session's writable side ends, End
 * with the error bit when it is destroyed first.
 *
 * A malformed frame ends all sessions and makes the connection inert: it reads and drops
 * whatever else comes and sends nothing, until the peer closes or `destroy()` (the server's
 * uniform reaction to garbage).
 */
export class MuxConnection {
  readonly carrier: Duplex;
  readonly #opts: MuxConnectionOptions;
  readonly #decoder = new MuxCoolDecoder();
  readonly #sessions = new Map<number, MuxSession>();
  readonly #sessionBuffer: number;
  readonly #stallMs: number;
  readonly #maxSessions: number;
  /** Server sessions not yet authenticated (only counted with maxUnauthenticated). */
  readonly #unauthenticated = new Set<MuxSession>();
  #nextId = 1;
  #failed = false;
  #closed = false;
  #drainWaiters: Array<() => void> = [];
  /** Sessions whose unread bytes paused the carrier. */
  readonly #stalled = new Set<MuxSession>();
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #lastActive = Date.now();
  #lastData = Date.now();
  #cover: MuxCover | undefined;
  /** Keep data read but not yet delivered, all for `#pendingTo` (see #queue). */
  #pending: Buffer[] = [];
  #pendingTo: MuxSession | undefined;
  /** End frames waiting for the next carrier write (endDelayMs), and the timer that sends them alone. */
  #tail: Buffer[] = [];
  #tailTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #endDelayMs: number;
  readonly #created = Date.now();
  /** Server: some session authenticated (authenticated() was called). */
  #everAuthenticated = false;
  /** Reading stopped until 'drain': our answers to the peer's frames pile up unread (#onData). */
  #heldForDrain = false;
  /** Bytes written with no callback (Ends, refusals, cover) since the carrier last had room. */
  #unpaced = 0;

  constructor(carrier: Duplex, opts: MuxConnectionOptions) {
    this.carrier = carrier;
    this.#opts = opts;
    if (opts.cover) {
      this.#cover = new MuxCover(opts.cover);
      this.#cover.start((b) => this.sendFrame(b));
    }
    this.#sessionBuffer = opts.sessionBuffer ?? 1024 * 1024;
    this.#stallMs = opts.stallMs ?? 30_000;
    this.#maxSessions = opts.maxSessions ?? 1024;
    this.#endDelayMs = opts.endDelayMs ?? 0;
    carrier.on('data', (chunk: Buffer) => this.#onData(chunk));
    carrier.on('drain', () => {
      if (this.#heldForDrain) {
        this.#heldForDrain = false;
        if (this.#stalled.size === 0 && !this.carrier.destroyed) this.carrier.resume();
      }
      this.#wakeWriters();
    });
    carrier.once('end', () => {
      // The peer sends nothing more: sessions it had not ended are cut off; the carrier ends
      // once the sessions still sending are done.
      for (const s of [...this.#sessions.values()])
        if (!s.remoteEnded) s.destroy(new Error('mux carrier ended'));
      this.end();
    });
    carrier.on('error', () => this.#teardown());
    carrier.once('close', () => {
      this.#teardown();
      opts.onClose?.();
    });
    if (opts.idleMs !== undefined) this.#armIdle(opts.idleMs);
  }

  /** Without sessions and without a byte from the peer for `idleMs`, destroy the carrier. */
  #armIdle(idleMs: number): void {
    const check = (): void => {
      if (this.carrier.destroyed) return;
      // A server carrier none of whose sessions ever authenticated has one deadline, from its
      // start, whatever comes (as the server's pre-relay deadline): KeepAlive frames or a new
      // garbage session now and then would otherwise hold it, and its socket, for ever.
      const probing = this.#opts.maxUnauthenticated !== undefined && !this.#everAuthenticated;
      const due =
        (probing ? this.#created : Math.max(this.#lastActive, this.#lastData)) + idleMs - Date.now();
      if ((this.#sessions.size === 0 || probing) && due <= 0) {
        // Like the server's idle close of an unauthenticated connection: our end, then gone.
        this.#closed = true;
        this.#flushTail();
        this.carrier.end(() => this.carrier.destroy());
        return;
      }
      this.#idleTimer = setTimeout(check, Math.max(due, idleMs / 4));
      this.#idleTimer.unref();
    };
    this.#idleTimer = setTimeout(check, idleMs);
    this.#idleTimer.unref();
  }

  #wakeWriters(): void {
    const w = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const f of w) f();
  }

  /** Sessions open now. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Some session open now has moved MUX_BULK_BYTES or more. */
  get bulk(): boolean {
    for (const x of this.#sessions.values()) if (x.moved >= MUX_BULK_BYTES) return true;
    return false;
  }

  /** MuxSession: one of ours just became bulk. */
  becameBulk(): void {
    this.#opts.onBulk?.();
  }

  /** Whether open() may still be used (carrier alive and not failed). */
  get usable(): boolean {
    return !this.#closed && !this.#failed && !this.carrier.destroyed && !this.carrier.writableEnded;
  }

  /** When a session last opened or closed (ms since the epoch), for pools that close idle carriers. */
  get lastActive(): number {
    return this.#lastActive;
  }

  /** Client: a new session; its New frame leaves with its first write. */
  open(target: MuxTarget = MUX_PLACEHOLDER_TARGET): MuxSession {
    if (!this.usable) throw new Error('mux connection is closed');
    if (this.#sessions.size >= 0xffff) throw new Error('no free mux session id');
    let id = this.#nextId;
    while (this.#sessions.has(id)) id = id >= 0xffff ? 1 : id + 1;
    this.#nextId = id >= 0xffff ? 1 : id + 1;
    const s = new MuxSession(this, id, target);
    this.#add(s);
    return s;
  }

  /** Close the carrier now; sessions are destroyed. */
  destroy(): void {
    this.carrier.destroy();
    this.#teardown();
  }

  /** End the carrier once every session has finished (no new sessions after this). */
  end(): void {
    this.#closed = true;
    if (this.#sessions.size === 0 && !this.carrier.writableEnded) this.#endCarrier();
  }

  /** End the carrier after any End frames still waiting. */
  #endCarrier(): void {
    this.#flushTail();
    this.carrier.end();
  }

  #add(s: MuxSession): void {
    this.#sessions.set(s.id, s);
    this.#lastActive = Date.now();
  }

  #teardown(): void {
    this.#cover?.stop();
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    if (this.#tailTimer) clearTimeout(this.#tailTimer);
    this.#stallTimer = this.#idleTimer = this.#tailTimer = undefined;
    this.#tail = [];
    this.#closed = true;
    for (const s of [...this.#sessions.values()]) s.destroy(new Error('mux carrier closed'));
    this.#wakeWriters();
  }

  #onData(chunk: Buffer): void {
    this.#lastData = Date.now();
    if (this.#failed) return;
    let frames: MuxFrame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch {
      this.#fail();
      return;
    }
    for (const f of frames) this.#onFrame(f);
    this.#flush();
    // What we write in answer to the peer's frames (End for an unknown or refused session, the
    // End of a session it opened and closed) waits for no drain: a peer that sends such frames
    // without reading our answers would have them pile up without end (900 MB from 32 MiB of
    // Keep frames). So reading stops while the carrier is full and more than UNPACED_LIMIT of
    // such writes wait in it - not merely because it is full: a session's data always waits for
    // drain, and an honest peer may read our answers only once we have read its uploads (an
    // application that sends its request before reading), which a stop would hold for ever.
    if (this.carrier.writableNeedDrain && this.#unpaced > UNPACED_LIMIT && !this.carrier.destroyed) {
      this.#heldForDrain = true;
      this.carrier.pause();
    }
  }

  /**
   * Data of consecutive Keep frames of one session in one carrier read, delivered together: a
   * 64 KiB write arrives as 2-3 frames (8 KiB ones from v2ray), and each delivery is a decrypt
   * and a write to the destination (a syscall each) on the other side of the session.
   */
  #queue(s: MuxSession, data: Buffer): void {
    if (this.#pendingTo !== s) this.#flush();
    this.#pendingTo = s;
    this.#pending.push(data);
  }

  #flush(): void {
    const s = this.#pendingTo;
    if (!s) return;
    const parts = this.#pending;
    this.#pendingTo = undefined;
    this.#pending = [];
    s.deliver(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }

  /** Malformed input: end every session, then read and drop everything, send nothing. */
  #fail(): void {
    this.#failed = true;
    for (const s of [...this.#sessions.values()]) {
      s.silent = true;
      s.destroy();
    }
    this.#stalled.clear();
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    if (!this.#heldForDrain) this.carrier.resume();
  }

  #onFrame(f: MuxFrame): void {
    // Only Keep data of the same session joins what is queued; anything else comes after it.
    if (this.#pendingTo && (f.status !== MuxStatus.Keep || f.sessionId !== this.#pendingTo.id)) this.#flush();
    if (f.status === MuxStatus.KeepAlive) {
      const mirror = this.#opts.mirrorCover;
      if (mirror && !this.#cover && f.data && f.data.length > 0) {
        this.#cover = new MuxCover(mirror);
        this.#cover.start((b) => this.sendFrame(b));
      }
      return;
    }
    let s = this.#sessions.get(f.sessionId);
    if (f.status === MuxStatus.New) {
      if (this.#opts.role !== 'server') return; // a server never opens sessions
      if (s) {
        s.silent = true; // an End for the old session would end the new one at the peer
        s.destroy(new Error('session id reused'));
      }
      const maxUnauth = this.#opts.maxUnauthenticated;
      if (
        f.target!.network !== MuxNetwork.Tcp ||
        this.#closed ||
        this.#sessions.size >= this.#maxSessions ||
        (maxUnauth !== undefined && this.#unauthenticated.size >= maxUnauth)
      ) {
        this.sendFrame(
          encodeMuxFrame({ sessionId: f.sessionId, status: MuxStatus.End, option: MUX_OPTION_ERROR }),
        );
        return;
      }
      s = new MuxSession(this, f.sessionId, undefined);
      this.#add(s);
      if (maxUnauth !== undefined) this.#unauthenticated.add(s);
      this.#opts.onSession?.(s, f.target!);
    }
    if (!s) {
      // Unknown (or already closed) session: tell the peer it is gone, drop the data.
      if (f.status === MuxStatus.Keep)
        this.sendFrame(encodeMuxFrame({ sessionId: f.sessionId, status: MuxStatus.End, option: 0 }));
      return;
    }
    if (f.status !== MuxStatus.End) {
      if (f.data && f.data.length > 0) this.#queue(s, f.data); // New or Keep
      return;
    }
    if (f.data && f.data.length > 0) s.deliver(f.data);
    if (f.status === MuxStatus.End) {
      if (f.option & MUX_OPTION_ERROR) {
        s.silent = true; // the peer already dropped it: no End back
        s.destroy(new Error('mux session ended with an error by the peer'));
      } else s.remoteEnd(this.#endDelayMs > 0);
    }
  }

  /**
   * Write frames to the carrier, with the End frames waiting (endDelayMs) after them, or before
   * them with `afterTail` (a frame that must follow one of them: a session's End with the error
   * bit after its clean End); `cb` when it can take more (after 'drain' if it was full).
   */
  sendFrame(frame: Buffer | Buffer[], cb?: () => void, afterTail = false): void {
    if (this.#failed || this.carrier.destroyed || this.carrier.writableEnded) {
      cb?.();
      return;
    }
    let frames = Array.isArray(frame) ? frame : [frame];
    if (this.#tail.length > 0) {
      frames = afterTail ? [...this.#tail, ...frames] : [...frames, ...this.#tail];
      this.#tail = [];
      clearTimeout(this.#tailTimer);
      this.#tailTimer = undefined;
    }
    if (frames.length === 0) {
      cb?.();
      return;
    }
    const out = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    const bytes = this.#cover ? this.#cover.shape(out) : out;
    if (!this.carrier.writableNeedDrain) this.#unpaced = 0; // the carrier has room: none wait
    if (!cb) this.#unpaced += bytes.length;
    const ok = this.carrier.write(bytes);
    if (!cb) return;
    if (ok) cb();
    else this.#drainWaiters.push(cb);
  }

  /** A session's clean End: with the next carrier write, or alone after endDelayMs. */
  sendEnd(frame: Buffer): void {
    if (this.#endDelayMs <= 0 || this.#closed) {
      this.sendFrame(frame);
      return;
    }
    this.#tail.push(frame);
    this.#tailTimer ??= setTimeout(() => {
      this.#tailTimer = undefined;
      this.#flushTail();
    }, this.#endDelayMs);
  }

  #flushTail(): void {
    if (this.#tail.length > 0) this.sendFrame([]);
  }

  /** A session's unread bytes crossed the limit: pause everyone (bounded by stallMs). */
  stall(s: MuxSession): void {
    this.#stalled.add(s);
    this.carrier.pause();
    if (!this.#stallTimer) {
      this.#stallTimer = setTimeout(() => {
        this.#stallTimer = undefined;
        for (const x of [...this.#stalled]) x.destroy(new Error('mux session stalled the carrier'));
        this.#stalled.clear();
        if (!this.carrier.destroyed && !this.#heldForDrain) this.carrier.resume();
      }, this.#stallMs);
      this.#stallTimer.unref();
    }
  }

  unstall(s: MuxSession): void {
    if (!this.#stalled.delete(s) || this.#stalled.size > 0) return;
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    this.carrier.resume();
  }

  get sessionBuffer(): number {
    return this.#sessionBuffer;
  }

  /** Server: session `s` authenticated; it no longer counts against maxUnauthenticated. */
  authenticated(s: MuxSession): void {
    this.#everAuthenticated = true;
    this.#unauthenticated.delete(s);
  }

  /** A session finished (both directions, or destroyed). */
  removed(s: MuxSession): void {
    if (this.#sessions.get(s.id) === s) this.#sessions.delete(s.id);
    this.#unauthenticated.delete(s);
    this.unstall(s);
    this.#lastActive = Date.now();
    if (this.#closed && this.#sessions.size === 0 && !this.carrier.writableEnded && !this.carrier.destroyed)
      this.#endCarrier();
  }
}

/**
 * One Mux.Cool session as a Duplex. allowHalfOpen: End from the peer ends the readable side and
 * writing goes on; end() sends our End.
 */
export class MuxSession extends Duplex {
  readonly id: number;
  readonly #mux: MuxConnection;
  /** Client: the target of the New frame still to send; undefined once sent (or on a server). */
  #newTarget: MuxTarget | undefined;
  remoteEnded = false;
  #localEnded = false;
  /** Send nothing more (the peer dropped the session, or the connection failed). */
  silent = false;
  #stalling = false;
  /** Payload bytes delivered and written so far (MUX_BULK_BYTES: bulk). */
  moved = 0;

  constructor(mux: MuxConnection, id: number, newTarget: MuxTarget | undefined) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024 });
    this.#mux = mux;
    this.id = id;
    this.#newTarget = newTarget;
  }

  #count(n: number): void {
    const before = this.moved;
    this.moved += n;
    if (before < MUX_BULK_BYTES && this.moved >= MUX_BULK_BYTES) this.#mux.becameBulk();
  }

  deliver(data: Buffer): void {
    if (this.remoteEnded || this.destroyed) return;
    this.#count(data.length);
    this.push(data);
    if (this.readableLength > this.#mux.sessionBuffer && !this.#stalling) {
      this.#stalling = true;
      this.#mux.stall(this);
    }
  }

  /**
   * The peer's End: nothing more comes. `later`: the end of the readable side (and the work it
   * starts: the relay ending the other socket) waits for the end of this event-loop turn, after
   * what the same carrier read brought for other sessions (a new session's first bytes).
   */
  remoteEnd(later = false): void {
    if (this.remoteEnded) return;
    this.remoteEnded = true;
    if (!later) this.push(null);
    else
      setImmediate(() => {
        if (!this.destroyed) this.push(null);
      });
  }

  override _read(): void {
    this.#maybeUnstall();
  }

  /**
   * Also after every read: Node's Readable calls _read before a read takes its chunk, and at most
   * once between two pushes, while no push comes while the carrier is paused for this session;
   * with the check in _read alone a session read to empty could leave the carrier paused until
   * stallMs dropped the session.
   */
  override read(n?: number): unknown {
    const chunk: unknown = super.read(n);
    this.#maybeUnstall();
    return chunk;
  }

  #maybeUnstall(): void {
    if (this.#stalling && this.readableLength <= this.#mux.sessionBuffer / 2) {
      this.#stalling = false;
      this.#mux.unstall(this);
    }
  }

  /** The frames of `data` (New first if not sent yet), and `trailer` after them, as one message. */
  #message(data: readonly Uint8Array[], trailer?: Buffer): Buffer {
    const t = this.#newTarget;
    this.#newTarget = undefined;
    const meta = t
      ? { sessionId: this.id, status: MuxStatus.New, option: 0, target: t }
      : { sessionId: this.id, status: MuxStatus.Keep, option: 0 };
    return encodeMuxMessage(meta, data, FRAME_DATA, trailer);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.silent) {
      cb(new Error('mux session is closed'));
      return;
    }
    this.#count(chunk.length);
    this.#mux.sendFrame(this.#message([chunk]), () => cb());
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    if (this.silent) {
      cb(new Error('mux session is closed'));
      return;
    }
    // The queued writes go into the frames directly (no concatenation first).
    for (const c of chunks) this.#count(c.chunk.length);
    this.#mux.sendFrame(this.#message(chunks.map((c) => c.chunk)), () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#localEnded = true;
    if (!this.silent) {
      const end = encodeMuxFrame({ sessionId: this.id, status: MuxStatus.End, option: 0 });
      // A session that never wrote still has to open before it ends (at once: its New is data).
      if (this.#newTarget) this.#mux.sendFrame(this.#message([], end));
      else this.#mux.sendEnd(end);
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const clean = this.#localEnded && this.remoteEnded;
    if (!clean && !this.silent && this.#newTarget === undefined)
      this.#mux.sendFrame(
        encodeMuxFrame({ sessionId: this.id, status: MuxStatus.End, option: MUX_OPTION_ERROR }),
        undefined,
        true,
      );
    this.#mux.removed(this);
    cb(err);
  }
}
