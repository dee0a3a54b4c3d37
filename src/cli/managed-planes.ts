/**
 * Managed mode's data planes: the primary port's in worker threads (--workers, default one per
 * core), off the main thread's event loop, so API, store and enforcer load cannot stall its
 * tunnels; additional key ports (Outline's per-key ports, rare) on this thread; the PortPool that
 * keeps every port's keys.
 */
import {
  startDataPlane,
  startWorkerPlane,
  workersAtBootFromEnv,
  type DataPlaneOptions,
  type WorkerPlane,
} from '../server/index.js';
import { bindErrorCode, explainBindError } from '../shared/listen.js';
import type { Logger } from '../shared/logger.js';
import { UsageError } from './errors.js';
import { inProcessPlane, PortPool, type Plane } from './port-pool.js';
import { lowerThisThreadPriority } from './priority.js';
import { stopForFatal } from './shutdown.js';

/** The primary port's plane: in workers (with their shared replay filters) or on this thread. */
export type PrimaryPlane = Plane & { workers: number } & Partial<Pick<WorkerPlane, 'replayFilters'>>;

export interface PlaneSetup {
  /** What every port's plane shares (the web front's server too). */
  options: Omit<DataPlaneOptions, 'keys' | 'port'>;
  /**
   * The primary listener's replay-state file (additional key ports share its filters), so a
   * restart still refuses replays of traffic recorded before it (D5).
   */
  replayStateFile: string;
  workers: number | undefined;
  reportMs: number | undefined;
  /** Lower the main thread's priority once the workers run (the real server; not in tests). */
  lowerPriority: boolean;
  log: Logger;
  /** Where the pool's close goes (managed.ts closes them in reverse on stop or a failed start). */
  cleanups: (() => Promise<void>)[];
}

/** Start the primary port's plane on `port` and the pool around it. */
export async function startPool(
  port: number,
  s: PlaneSetup,
): Promise<{ plane: PrimaryPlane; pool: PortPool }> {
  const plane = await startPrimary(port, s).catch((err: NodeJS.ErrnoException) => {
    const code = bindErrorCode(err);
    if (code) throw new UsageError(`cannot listen on port ${port}: ${explainBindError(code, port)}`);
    throw err;
  });
  // Additional key ports check and record salts in the primary's shared filters, which the
  // primary saves to its replay-state file: a restart refuses replays on every port (D5).
  const shared = plane.replayFilters ? { replayFilters: plane.replayFilters } : {};
  const open = async (p: number): Promise<Plane> =>
    inProcessPlane(await startDataPlane({ ...s.options, ...shared, keys: [], port: p }));
  const pool = new PortPool(plane, open, s.log);
  s.cleanups.push(() => pool.close());
  return { plane, pool };
}

function startPrimary(port: number, s: PlaneSetup): Promise<PrimaryPlane> {
  return startWorkerPlane({
    ...s.options,
    replayStateFile: s.replayStateFile,
    logger: s.log,
    keys: [],
    port,
    ...(s.workers !== undefined ? { workers: s.workers } : {}),
    ...(s.reportMs !== undefined ? { reportMs: s.reportMs } : {}),
    startAtBoot: workersAtBootFromEnv(),
    // Once the workers run (at the first connection unless LADDER_EAGER_WORKERS=1).
    ...(s.lowerPriority ? { lowerPriority: () => lowerThisThreadPriority(s.log) } : {}),
    onGiveUp: () => void stopForFatal(), // the pool logged why
  });
}
