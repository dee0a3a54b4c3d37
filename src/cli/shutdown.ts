import type { Logger } from '../shared/logger.js';
import { startupDone } from '../shared/startup.js';

export interface ShutdownOptions {
  /** Closes everything; called once, on the first SIGINT or SIGTERM. */
  close: () => Promise<void>;
  /** Logged at info with the signal, e.g. "server stopping". */
  message: string;
  log: Pick<Logger, 'info'>;
  /** Where a second signal goes when the graceful stop takes too long (default: exit 130). */
  force?: () => void;
  /** Waiting here ends start-up (default true); false when the handlers go in before the start. */
  startupOver?: boolean;
  /** Aborted: the command gave up before any signal (its start failed); the handlers go, it resolves. */
  cancel?: AbortSignal;
}

/** A start stopped by a signal (or stopForFatal) before it finished; what had started is closed. */
export class StartAborted extends Error {
  override readonly name = 'StartAborted';
  constructor() {
    super('start-up stopped');
  }
}

/** `p`, or StartAborted as soon as `signal` aborts (p itself goes on; the caller closes it). */
export function unlessAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new StartAborted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new StartAborted());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** The stop of the command waiting in untilSignal, if one is. */
let active: ((cause: string) => void) | undefined;

/**
 * Stop the command waiting in untilSignal as a signal would, and exit with status 1: for a
 * condition it cannot run on with (data-plane workers that keep crashing; the caller logged why).
 * False when no command is waiting (a program embedding the server decides for itself).
 */
export function stopForFatal(): boolean {
  if (active === undefined) return false;
  process.exitCode = 1;
  active('fatal');
  return true;
}

/**
 * Run until SIGINT or SIGTERM: the first signal logs `message` and closes things once (the
 * returned promise settles when `close` has); a second signal gives up on the graceful stop.
 * The signal handlers are removed once closed. Install it before printing a banner: whoever
 * reads the banner may signal at once.
 */
export function untilSignal(opts: ShutdownOptions): Promise<void> {
  // Every long-running command waits here once it has started: start-up is over.
  if (opts.startupOver !== false) setImmediate(startupDone);
  return new Promise<void>((resolve, reject) => {
    let stopping = false;
    opts.cancel?.addEventListener(
      'abort',
      () => {
        if (stopping) return;
        stopping = true;
        if (active === stop) active = undefined;
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      },
      { once: true },
    );
    const stop = (signal: string): void => {
      if (stopping) {
        if (opts.force) opts.force();
        else process.exit(130); // second signal: give up on a graceful stop
        return;
      }
      stopping = true;
      active = undefined;
      opts.log.info({ signal }, opts.message);
      opts.close().then(
        () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        },
        (err: unknown) => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          reject(err as Error);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    active = stop;
  });
}
