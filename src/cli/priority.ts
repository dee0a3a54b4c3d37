import { getPriority, setPriority } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import type { Logger } from '../shared/logger.js';

/** How much lower (nice) the management plane's thread runs than the data-plane workers. */
const MANAGEMENT_NICE = 5;

/**
 * On Linux the nice value is per thread: once the workers exist (at the nice value they were
 * created with), the management plane's thread (this one) is lowered, so on a busy machine the
 * scheduler runs the relaying threads first. Raising one's own nice needs no privilege; failure
 * (another OS) is harmless.
 */
let priorityLowered = false;
export function lowerThisThreadPriority(log: Logger): void {
  if (process.platform !== 'linux' || priorityLowered) return;
  priorityLowered = true;
  try {
    setPriority(Math.min(19, getPriority() + MANAGEMENT_NICE));
  } catch (err) {
    log.debug({ err: (err as Error).message }, 'cannot lower the management thread priority');
  }
}

/**
 * Garbage collection on each thread alone: V8's helper threads (parallel scavenge, concurrent
 * marking and sweeping) are one pool per process, shared by every isolate, so with the
 * management plane's large heap collecting on them (an API burst: a 1 GB heap, seconds of GC), a
 * data-plane worker's collection of its small heap waited for them: 130-455 ms pauses in the
 * workers during issue 14's soak on a loaded 2-core machine, against ~30 ms with each isolate
 * collecting by itself (bench/soak.ts --inproc, docs/reliability.md). Set before the workers
 * start (their heaps read it when created); the management thread then collects its own heap by
 * itself too, at its lower priority, which is where that work belongs.
 */
let gcIsolated = false;
export function isolateGc(): void {
  if (gcIsolated) return;
  gcIsolated = true;
  setFlagsFromString('--single-threaded-gc');
}
