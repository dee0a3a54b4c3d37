/** Waiting for a condition that another party (a socket, a process, a timer) makes true. */

export interface WaitForOptions {
  /** Give up after this many ms (default 5000). */
  timeoutMs?: number;
  /** Check this often, in ms (default 20). */
  intervalMs?: number;
  /** What was awaited, for the timeout error (a function is called only then, e.g. for output). */
  message?: string | (() => string);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Resolve with the first truthy value of `predicate` (checked at once, then every `intervalMs`);
 * reject once `timeoutMs` has passed without one. The predicate may be async; an exception from
 * it rejects at once.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  opts: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const intervalMs = opts.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await predicate();
    if (v) return v as NonNullable<T>;
    if (Date.now() >= deadline)
      throw new Error(`waitFor: ${describe(opts.message)} not met within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

function describe(message: WaitForOptions['message']): string {
  return typeof message === 'function' ? message() : (message ?? 'condition');
}
