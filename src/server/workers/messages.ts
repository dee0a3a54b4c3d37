/**
 * What the main thread and the data-plane workers say to each other (structured clones over the
 * worker's port). Everything is plain data: keys in, byte counts, events and connection counts
 * out, the same seam as ServerControl / UsageSink in src/shared/control.ts.
 */
import type { PendingCaps } from '../pending-limits.js';
import type { RuntimeKey } from '../../shared/control.js';
import type { AuthEvent, ConnectionClosedEvent } from '../events.js';
import type { KeyDelta } from '../keys.js';
import type { AdoptedUdpSocket, UdpRelayOptions } from '../udp-relay.js';
import type { PackedEvents } from './event-batch.js';
import type { SharedReplayBuffers } from './shared-salts.js';
import type { SharedDevicesBuffers } from './shared-devices.js';

/** The worker's start-up data (`workerData`). */
export interface WorkerInit {
  readonly index: number;
  /** A listening SO_REUSEPORT socket to accept on; undefined: listen on port/host itself. */
  readonly fd: number | undefined;
  readonly port: number;
  readonly host: string | undefined;
  /** Relay UDP too (one worker only: its NAT sessions and UDP salts are not shared). */
  readonly udp: boolean | UdpRelayOptions;
  /** A UDP socket bound on the main thread to adopt (workers started on demand), else UDP binds `port`. */
  readonly udpFd?: AdoptedUdpSocket | undefined;
  readonly keys: readonly RuntimeKey[];
  /** The shared replay filters; undefined gives the worker filters of its own (a test control). */
  readonly replay: SharedReplayBuffers | undefined;
  readonly replayCapacity: number | undefined;
  /** The process's device-limit table (shared-devices.ts), one for every thread. */
  readonly devices: SharedDevicesBuffers;
  /** The process's name-lookup counters (name-lookups.ts), one for every thread. */
  readonly lookupGate: SharedArrayBuffer;
  /** The process's speed-limit buckets (shared-buckets.ts), one table for every thread. */
  readonly speedBuckets: SharedArrayBuffer;
  /** This worker's row in them. */
  readonly lookupRow: number;
  readonly pending: PendingCaps | false | undefined;
  readonly idleMs: number | undefined;
  readonly connectMs: number | undefined;
  readonly allowPrivateDestinations: boolean;
  readonly udpOverTcp: boolean;
  readonly usageFlushMs: number | undefined;
  /** How often events and open-connection counts are posted (ms). */
  readonly reportMs: number;
  readonly logLevel: string;
  /** The native addon on (false: LADDER_NATIVE=0 in the main thread). */
  readonly native: boolean;
  /** Tests only: obey 'crash' (throw an uncaught error). */
  readonly testHooks: boolean;
}

export type ToWorker =
  | { readonly t: 'delta'; readonly delta: KeyDelta; readonly seq: number }
  | { readonly t: 'closeKey'; readonly id: string }
  /** Start measuring (first call) or report and reset what was measured since the last call. */
  | { readonly t: 'loopStats' }
  | { readonly t: 'close' }
  /** Tests only (WorkerInit.testHooks): throw an uncaught error, as a bug would. */
  | { readonly t: 'crash' };

export type FromWorker =
  | {
      readonly t: 'ready';
      readonly port: number;
      readonly address: string;
      readonly family: string;
      /** Linux: this thread's id. */
      readonly tid: number | undefined;
    }
  | { readonly t: 'failed'; readonly code: string | undefined; readonly message: string }
  | { readonly t: 'usage'; readonly counts: readonly (readonly [id: string, up: number, down: number])[] }
  | {
      readonly t: 'events';
      readonly opened: number;
      readonly authenticated: readonly AuthEvent[];
      readonly closed: readonly ConnectionClosedEvent[];
      /** More events, packed (event-batch.ts; then authenticated and closed are empty). */
      readonly packed?: PackedEvents;
      /** Open connections per key id, when they changed since the last report. */
      readonly open: readonly (readonly [id: string, n: number])[] | undefined;
    }
  /** Every message up to this key delta is applied. */
  | { readonly t: 'applied'; readonly seq: number }
  | { readonly t: 'loopStats'; readonly stats: LoopStats }
  | { readonly t: 'closed' };

/**
 * What stalled a thread's event loop since the last report (diagnostics: the soak bench asks for
 * them). All times in ms; zeros on the first call, which starts the measurement.
 */
export interface LoopStats {
  /** Event-loop delay (perf_hooks.monitorEventLoopDelay, 10 ms resolution). */
  readonly delayP50: number;
  readonly delayP99: number;
  readonly delayMax: number;
  /** Garbage collections of this thread's heap: count, the longest pause, the sum of pauses. */
  readonly gcs: number;
  readonly gcMax: number;
  /** The longest pause's kind: minor (scavenge), major (mark-compact), incremental, weak callbacks. */
  readonly gcMaxKind: string;
  readonly gcTotal: number;
  /** Key deltas applied, and the longest one (from receiving it to having applied it). */
  readonly deltas: number;
  readonly deltaMax: number;
  /** Event-loop utilization over the interval (0..1). */
  readonly utilization: number;
}
