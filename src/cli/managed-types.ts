/** What `startManaged` returns and the knobs tests give it (types only, kept apart from managed.ts). */
import type { RunningApi } from '../api/index.js';
import type { MetricsServer } from '../metrics/index.js';
import type { KeyEnforcer, KyselyStore, StoreOptions } from '../store/index.js';
import type { Plane, PortPool } from './port-pool.js';
import type { RunningWeb } from './web.js';

export interface ManagedServer {
  store: KyselyStore;
  /** The primary data plane (the port for new keys). */
  plane: Plane;
  /** Data-plane worker threads of the primary port (0: on the main thread, for the web front). */
  workers: number;
  pool: PortPool;
  api: RunningApi | undefined;
  metricsServer: MetricsServer | undefined;
  enforcer: KeyEnforcer;
  /** The web front (WebSocket endpoints, decoy), when --web-port was given. */
  web: RunningWeb | undefined;
  /** http://host:port of the plain-HTTP dynamic-key listener, when --dynamic-listen was given. */
  dynamicAddress: string | undefined;
  /** The full start-up text, secrets included (access config line, key URL, QR code). */
  banner: string;
  /** The same without the QR code, for a first start whose output is not a terminal (a fleet
   *  node's without the key when another node made it: only the node's own access config). */
  logBanner: string;
  /** The same without secrets, for a restart whose output goes to a log (journald, docker). */
  publicBanner: string;
  /** True when this start created the store and its first key. */
  firstStart: boolean;
  close(): Promise<void>;
}

/** Knobs for tests (not command-line flags). */
export interface ManagedTuning {
  usageFlushMs?: number;
  enforceIntervalMs?: number;
  /** Draw the QR code into `banner` (default true); false when it will not go to a terminal,
   *  so the QR drawer is never loaded (idle memory). */
  drawQr?: boolean;
  /** How often data-plane workers post events and connection counts (ms). */
  reportMs?: number;
  /** Store options for tests (fault-injection seams, retry pace). */
  storeOptions?: Pick<StoreOptions, 'testing' | 'retryMs' | 'usageCacheTtlMs' | 'writerId'>;
  /** Lower this thread's scheduling priority once workers relay (the `ladder server` command
   *  does; a program embedding startManaged, such as a test, keeps its own priority). */
  lowerPriority?: boolean;
  /** The built dashboard to serve (default the package's web/dist; the dashboard tests build their own). */
  dashboardDir?: string;
  /** Stops a start waiting for its store: what started is closed, startManaged throws StartAborted. */
  signal?: AbortSignal;
  /** Runs right after this start made its API certificate or the store's first key (a test
   *  kills the process there: the next start must still be the first). */
  made?: (what: 'certificate' | 'key') => void | Promise<void>;
}
