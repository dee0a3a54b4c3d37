/**
 * The end of a command's start-up (listening, banner printed). bin/ladder.js holds V8's optimizer
 * and young-generation growth back while a process starts, so start-up code that runs once does
 * not leave the optimizing compiler and a grown heap resident in an idle process; this tells it
 * start-up is over (it also gives up waiting after a few seconds), and runs what was deferred to
 * then with whenStarted() (the relay's malloc tuning, which would otherwise keep start-up's freed
 * memory). The bin/ladder.js part is a no-op when not started through it (tests, tsx).
 */
const HOOK = Symbol.for('ladder.startupDone');
let deferred: (() => void)[] | undefined = [];

/** Run `fn` once start-up is over (at once if it already is). */
export function whenStarted(fn: () => void): void {
  if (deferred) deferred.push(fn);
  else fn();
}

export function startupDone(): void {
  const fns = deferred;
  deferred = undefined;
  for (const fn of fns ?? []) fn();
  const hook = (globalThis as Record<symbol, unknown>)[HOOK];
  if (typeof hook === 'function') (hook as () => void)();
}
