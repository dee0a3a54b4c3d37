import { getPriority, setPriority } from 'node:os';
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
