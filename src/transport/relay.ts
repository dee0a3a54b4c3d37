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
}

export type RelayCloseReason = 'done' | 'idle' | 'error' | 'aborted';

export interface RelayHandle {
  /** Tear both sockets down now. */
  close(reason?: RelayCloseReason): void;
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

  const pump = (src: Duplex, dst: Duplex, tf: Transform | undefined, fromA: boolean): void => {
    src.on('data', (chunk: Buffer) => {
      lastActivity = clock.now();
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
        dst.once('drain', () => src.resume());
      }
    });
    src.once('end', () => {
      dst.end();
      if (++ended === 2) finish('done');
    });
  };

  pump(a, b, opts.aToB, true);
  pump(b, a, opts.bToA, false);
  // Permanent handlers: a socket can emit more than one 'error', and an unhandled one crashes.
  a.on('error', () => finish('error'));
  b.on('error', () => finish('error'));
  a.once('close', () => {
    if (!closed && !b.writableEnded) finish('aborted');
    else if (!closed && b.writableFinished && ended === 2) finish('done');
  });
  b.once('close', () => {
    if (!closed && !a.writableEnded) finish('aborted');
    else if (!closed && ended === 2) finish('done');
  });

  return {
    close: (reason = 'aborted') => finish(reason),
    get closed() {
      return closed;
    },
  };
}
