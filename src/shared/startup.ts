/**
 * The end of a command's start-up (listening, banner printed). bin/ladder.js holds V8's optimizer
 * and young-generation growth back while a process starts, so start-up code that runs once does
 * not leave the optimizing compiler and a grown heap resident in an idle process; this tells it
 * start-up is over (it also gives up waiting after a few seconds). A no-op when not started
 * through bin/ladder.js (tests, tsx).
 */
const HOOK = Symbol.for('ladder.startupDone');

export function startupDone(): void {
  const hook = (globalThis as Record<symbol, unknown>)[HOOK];
  if (typeof hook === 'function') (hook as () => void)();
}
