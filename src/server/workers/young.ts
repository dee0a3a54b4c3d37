/**
 * The young generation of a data-plane worker thread. V8 grows a thread's young generation (its
 * semi-spaces) from 1 MiB up to 16 MiB each as allocation goes on, and a grown one stays
 * committed: a worker that has set up a burst of connections keeps some 4 MiB more than it needs
 * to hold them idle (bench/run.ts's memory phase: ~4 KiB per idle connection of 1,000). The
 * relay's bytes move in the addon (or through Buffers outside V8's heap), so what a connection
 * allocates in JS is small and short-lived and a 1 MiB semi-space is enough for it
 * (docs/benchmarks.md, "Idle connections"). The main thread gets the same from bin/ladder.js
 * (it keeps V8's semi-space growth factor at 1 after start-up). LADDER_YOUNG=0 leaves V8's
 * defaults (read at each worker's start).
 */
import type { ResourceLimits } from 'node:worker_threads';

/** A young generation of 3 MiB: V8 makes it two 1 MiB semi-spaces and 1 MiB for large objects. */
export const WORKER_YOUNG_GENERATION_MB = 3;

/** The resourceLimits a data-plane worker starts with; undefined: V8's defaults. */
export function workerResourceLimits(env: NodeJS.ProcessEnv = process.env): ResourceLimits | undefined {
  if (env.LADDER_YOUNG === '0') return undefined;
  return { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB };
}
