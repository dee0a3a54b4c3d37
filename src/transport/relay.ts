import type { Duplex } from 'node:stream';
import type { Clock } from '../shared/clock.js';
import { systemClock } from '../shared/clock.js';

/**
 * Turns bytes read on one side into bytes to write on the other (encrypt, decrypt, or identity).
 * It owns `chunk` (a fresh socket read) and may overwrite it: the Shadowsocks decoders open
 * payloads in place and return views of it. Nothing may read `chunk` after the call.
 */
export type Transform = (chunk: Buffer) => Buffer | Buffer[] | undefined;

export interface RelayOptions {
  /** Close both sides after this long with no bytes in either direction. */
  idleTimeoutMs: number;
  /** a -> b transform (default identity). */
  aToB?: Transform;
  /** b -> a transform (default identity). */
  bToA?: Transform;
  /** Called with the raw byte counts read from each side (for accounting). */
  onBytes?: (fromA: number, fromB: number) => void;
  /** Called once when both directions are done or the relay was torn down. */
  onClose?: (reason: RelayCloseReason) => void;
  clock?: Clock;
  /** A rate limit (server/speed-limits.ts): each chunk read is charged to it. */
  throttle?: RelayThrottle | undefined;
}

/**
 * Charged with each chunk a relay reads (`fromA`: read from side a). True: the bucket is empty,
 * so the relay holds that chunk's output and reads nothing more from that side until `resume`.
 */
export interface RelayThrottle {
  charge(fromA: boolean, n: number, resume: () => void): boolean;
  /**
   * The most bytes one write should carry (what the rate pays for in a fraction of a second):
   * larger output leaves in pieces of this size, each charged its share of the bytes read, so
   * a low rate delivers steadily instead of one chunk per long wait. Undefined: whole chunks.
   */
  readonly piece?: number | undefined;
}

/** `out` cut into buffers of at most `size` bytes (views, nothing copied). */
function pieces(out: Buffer | Buffer[], size: number): Buffer[] {
  const parts: Buffer[] = [];
  for (const b of Array.isArray(out) ? out : [out])
    for (let at = 0; at < b.length; at += size) parts.push(b.subarray(at, Math.min(b.length, at + size)));
  return parts;
}

function byteLength(out: Buffer | Buffer[]): number {
  if (!Array.isArray(out)) return out.length;
  let n = 0;
  for (const b of out) n += b.length;
  return n;
}

export type RelayCloseReason = 'done' | 'idle' | 'error' | 'aborted';

export interface RelayHandle {
  /** Tear both sockets down now. */
  close(reason?: RelayCloseReason): void;
  /**
   * Stop relaying and leave both sockets as they are, for another relay to take over (the
   * native relay, client/native-tunnel.ts): this relay's listeners and timer go, `onClose` is
   * not called. The caller then owns the sockets, their buffered bytes and their errors.
   */
  release(): void;
  readonly closed: boolean;
}

/**
 * Pump bytes between two sockets in both directions with back-pressure (pause the reader while
 * the writer's buffer is full), half-close (a FIN on one side becomes end() on the other after
 * the pending bytes flush) and an idle timeout shared by both directions.
 * A transform that throws tears the relay down (the caller maps the error).
 */
export function relay(a: Duplex, b: Duplex, opts: RelayOptions): RelayHandle {
  const clock = opts.clock ?? systemClock;
  const throttle = opts.throttle;
  let closed = false;
  let ended = 0;
  let lastActivity = clock.now();
  let timer: ReturnType<Clock['setTimeout']> | undefined;

  const finish = (reason: RelayCloseReason): void => {
    if (closed) return;
    closed = true;
    if (timer) clock.clearTimeout(timer);
    if (reason === 'done') {
      // end() on an already-ended socket costs an error object; skip it.
      if (!a.writableEnded) a.end();
      if (!b.writableEnded) b.end();
    } else {
      a.destroy();
      b.destroy();
    }
    opts.onClose?.(reason);
  };

  const arm = (): void => {
    const due = lastActivity + opts.idleTimeoutMs - clock.now();
    timer = clock.setTimeout(
      () => {
        if (closed) return;
        if (clock.now() - lastActivity >= opts.idleTimeoutMs) finish('idle');
        else arm();
      },
      Math.max(1, due),
    );
    timer.unref?.();
  };
  arm();

  /** The 'drain' listener each side waits on while it is paused (for release()). */
  const drains: [(() => void) | undefined, (() => void) | undefined] = [undefined, undefined];
  const pump = (src: Duplex, dst: Duplex, tf: Transform | undefined, fromA: boolean): Listeners => {
    const onData = (chunk: Buffer): void => {
      lastActivity = clock.now();
      const n = chunk.length; // before the transform, which may reuse it
      if (opts.onBytes) {
        if (fromA) opts.onBytes(chunk.length, 0);
        else opts.onBytes(0, chunk.length);
      }
      let out: Buffer | Buffer[] | undefined;
      try {
        out = tf ? tf(chunk) : chunk;
      } catch {
        finish('error');
        return;
      }
      if (out === undefined || dst.destroyed) return;
      const piece = throttle?.piece;
      if (piece !== undefined && piece > 0) {
        const total = byteLength(out);
        if (total > piece) return paced(pieces(out, piece), n, total);
      }
      if (throttle?.charge(fromA, n, () => letGo(out)) === true) {
        // Over the rate: this output leaves when the bucket allows, and nothing more is read.
        src.pause();
        holding = true;
        return;
      }
      forward(out);
    };
    let holding = false;
    let endHeld = false;
    const letGo = (out: Buffer | Buffer[]): void => {
      holding = false;
      if (closed) return;
      lastActivity = clock.now();
      if (!forward(out)) src.resume();
      if (endHeld) onEnd();
    };
    /**
     * Throttled output larger than a piece: each part is charged its share of the `n` bytes read
     * and written when the bucket allows; while one waits, `src` is paused (nothing more read).
     */
    const paced = (parts: Buffer[], n: number, total: number, from = 0, charged = 0): void => {
      for (let i = from; i < parts.length; i++) {
        const part = parts[i]!;
        const c = i === parts.length - 1 ? n - charged : Math.round((n * part.length) / total);
        charged += c;
        const next = i + 1;
        const sent = charged;
        const held = throttle!.charge(fromA, c, () => {
          if (closed) return;
          lastActivity = clock.now();
          if (!dst.destroyed) dst.write(part);
          paced(parts, n, total, next, sent);
        });
        if (held) {
          if (!holding) src.pause();
          holding = true;
          return;
        }
        if (!dst.destroyed) dst.write(part);
      }
      const wasHolding = holding;
      holding = false;
      if (!forward([]) && wasHolding) src.resume();
      if (endHeld) onEnd();
    };
    /** Write `out`; true when the writer's buffer is full and `src` paused until 'drain'. */
    const forward = (out: Buffer | Buffer[]): boolean => {
      if (dst.destroyed) return false;
      if (Array.isArray(out)) {
        // Several decoded chunks from one read leave in one writev, not one syscall each.
        if (out.length > 1) dst.cork();
        for (const o of out) if (o.length > 0) dst.write(o);
        if (out.length > 1) dst.uncork();
      } else if (out.length > 0) dst.write(out);
      // Back-pressure from what is still unsent after the writes, not from write()'s answers:
      // while corked every write is held, so two decoded 16 KiB chunks made the second one say
      // false even when the kernel then took both at once, and the pause/'drain'/resume round
      // that followed (a tick each, on a socket an epoll_ctl) came once per read of a bulk
      // download. At or above the mark some write said false, so 'drain' follows.
      if (dst.writableLength >= dst.writableHighWaterMark) {
        src.pause();
        const i = fromA ? 0 : 1;
        const onDrain = (): void => {
          drains[i] = undefined;
          src.resume();
        };
        drains[i] = onDrain;
        dst.once('drain', onDrain);
        return true;
      }
      return false;
    };
    const onEnd = (): void => {
      if (holding) return void (endHeld = true); // after the held output
      endHeld = false;
      dst.end();
      if (++ended === 2) finish('done');
    };
    src.on('data', onData);
    src.once('end', onEnd);
    return [onData, onEnd];
  };

  const la = pump(a, b, opts.aToB, true);
  const lb = pump(b, a, opts.bToA, false);
  // Permanent handlers: a socket can emit more than one 'error', and an unhandled one crashes.
  const onError = (): void => finish('error');
  a.on('error', onError);
  b.on('error', onError);
  const onCloseA = (): void => {
    if (!closed && !b.writableEnded) finish('aborted');
    else if (!closed && b.writableFinished && ended === 2) finish('done');
  };
  const onCloseB = (): void => {
    if (!closed && !a.writableEnded) finish('aborted');
    else if (!closed && ended === 2) finish('done');
  };
  a.once('close', onCloseA);
  b.once('close', onCloseB);
  // A side whose FIN came before the relay (a request and its FIN in one read, read while the
  // destination was dialled) emits no more 'end': pass its FIN on now, after what was written.
  if (a.readableEnded) la[1]();
  if (b.readableEnded && !closed) lb[1]();

  const release = (): void => {
    if (closed) return;
    closed = true;
    if (timer) clock.clearTimeout(timer);
    for (const [s, [onData, onEnd], onClose, drain] of [
      [a, la, onCloseA, drains[1]],
      [b, lb, onCloseB, drains[0]],
    ] as const) {
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('error', onError);
      s.off('close', onClose);
      if (drain) s.off('drain', drain);
    }
  };

  return {
    close: (reason = 'aborted') => finish(reason),
    release,
    get closed() {
      return closed;
    },
  };
}

/** A pump's 'data' and 'end' listeners on its source. */
type Listeners = [onData: (chunk: Buffer) => void, onEnd: () => void];
