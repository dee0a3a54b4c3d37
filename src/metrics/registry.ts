import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UsageSink } from '../shared/control.js';
import { METRICS, type FleetNodeSample, type SpeedLimitSample } from './definitions.js';

/** Outcome of one data-plane connection, as the server reports it when the connection ends. */
export interface ConnectionOutcome {
  /** "OK" when a key authenticated and the relay ran; otherwise a stable error code. */
  status: string;
  keyId?: string | undefined;
  /** True when no key authenticated (the connection was treated as a probe). */
  probe?: boolean;
}

/** The hooks the data plane and the management plane report into. One instance per process. */
export interface LadderMetrics extends UsageSink {
  readonly registry: Registry;
  connectionOpened(): void;
  connectionClosed(outcome: ConnectionOutcome): void;
  /** A data-plane worker stopped unexpectedly; its open connections went with it. */
  workerCrashed(lostConnections: number): void;
  /** A connection found its key after `seconds`. */
  authenticated(seconds: number): void;
  /** A connection failed to authenticate (bad cipher, replay, timeout...). */
  authFailed(status: string): void;
  /** Replace the per-state key counts. */
  setKeyStates(counts: Readonly<Record<string, number>>): void;
  /** Forget the byte series of a deleted key. */
  removeKey(keyId: string): void;
  /** Replace the fleet gauges (per-node state, heartbeat age, keys version; the store's version). */
  setFleet(nodes: readonly FleetNodeSample[], storeKeysVersion: number): void;
  /**
   * Read the device-limit counts at each scrape (per key id: addresses counting now, refusals
   * since the start; the data plane's table, server/device-limits.ts processDeviceCounts).
   */
  watchDevices(read: () => DeviceSample): void;
  /** Prometheus text exposition. */
  render(): Promise<string>;
}

/** Device-limit counts per key id, without any address. */
export interface DeviceSample {
  readonly inUse: ReadonlyMap<string, number>;
  readonly refused: ReadonlyMap<string, number>;
}

export interface MetricsOptions {
  /** Also export Node process metrics (prom-client's process_* and nodejs_*, prefixed ladder_). Default true. */
  processMetrics?: boolean;
  /** The speed limits' counters, read at each scrape (server/workers/shared-buckets.ts speedLimitStats). */
  speedStats?: () => readonly SpeedLimitSample[];
}

export function createMetrics(opts: MetricsOptions = {}): LadderMetrics {
  const registry = new Registry();
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'ladder_' });
  const bytes = new Counter({
    name: METRICS.dataBytes.name,
    help: METRICS.dataBytes.help,
    labelNames: METRICS.dataBytes.labels,
    registers: [registry],
  });
  const open = new Gauge({
    name: METRICS.openConnections.name,
    help: METRICS.openConnections.help,
    registers: [registry],
  });
  const closed = new Counter({
    name: METRICS.connectionsClosed.name,
    help: METRICS.connectionsClosed.help,
    labelNames: METRICS.connectionsClosed.labels,
    registers: [registry],
  });
  const authFailures = new Counter({
    name: METRICS.authFailures.name,
    help: METRICS.authFailures.help,
    labelNames: METRICS.authFailures.labels,
    registers: [registry],
  });
  const timeToAuth = new Histogram({
    name: METRICS.timeToAuth.name,
    help: METRICS.timeToAuth.help,
    buckets: [...METRICS.timeToAuth.buckets],
    registers: [registry],
  });
  const crashes = new Counter({
    name: METRICS.workerCrashes.name,
    help: METRICS.workerCrashes.help,
    registers: [registry],
  });
  const keys = new Gauge({
    name: METRICS.accessKeys.name,
    help: METRICS.accessKeys.help,
    labelNames: METRICS.accessKeys.labels,
    registers: [registry],
  });

  if (opts.speedStats) speedCounters(registry, opts.speedStats);

  const gauge = (m: { name: string; help: string; labels: readonly string[] }): Gauge =>
    new Gauge({ name: m.name, help: m.help, labelNames: [...m.labels], registers: [registry] });
  // Made at the first setFleet: a server that is not a fleet node exports no fleet series.
  let fleet: { state: Gauge; age: Gauge; nodeVersion: Gauge; version: Gauge } | undefined;

  return {
    registry,
    setFleet(nodes, storeKeysVersion) {
      fleet ??= {
        state: gauge(METRICS.fleetNodeState),
        age: gauge(METRICS.fleetHeartbeatAge),
        nodeVersion: gauge(METRICS.fleetNodeKeysVersion),
        version: gauge(METRICS.fleetKeysVersion),
      };
      for (const g of [fleet.state, fleet.age, fleet.nodeVersion]) g.reset();
      for (const n of nodes) {
        fleet.state.set({ node: n.name, state: n.state }, 1);
        fleet.age.set({ node: n.name }, n.heartbeatAgeSeconds);
        fleet.nodeVersion.set({ node: n.name }, n.keysVersion);
      }
      fleet.version.set(storeKeysVersion);
    },
    addBytes(keyId, up, down) {
      if (up > 0) bytes.inc({ access_key: keyId, dir: 'up' }, up);
      if (down > 0) bytes.inc({ access_key: keyId, dir: 'down' }, down);
    },
    connectionOpened() {
      open.inc();
    },
    connectionClosed(outcome) {
      open.dec();
      closed.inc({ status: outcome.status });
    },
    workerCrashed(lostConnections) {
      crashes.inc();
      open.dec(lostConnections);
    },
    authenticated(seconds) {
      timeToAuth.observe(seconds);
    },
    authFailed(status) {
      authFailures.inc({ status });
    },
    setKeyStates(counts) {
      keys.reset();
      for (const [state, n] of Object.entries(counts)) keys.set({ state }, n);
    },
    watchDevices(read) {
      let sample: DeviceSample | undefined;
      // One read per scrape serves both series (the gauge is collected first).
      new Gauge({
        name: METRICS.devicesInUse.name,
        help: METRICS.devicesInUse.help,
        labelNames: [...METRICS.devicesInUse.labels],
        registers: [registry],
        collect() {
          sample = read();
          this.reset();
          for (const [id, n] of sample.inUse) this.set({ access_key: id }, n);
        },
      });
      new Counter({
        name: METRICS.deviceRefusals.name,
        help: METRICS.deviceRefusals.help,
        labelNames: [...METRICS.deviceRefusals.labels],
        registers: [registry],
        collect() {
          const s = sample ?? read();
          sample = undefined;
          this.reset();
          for (const [id, n] of s.refused) if (n > 0) this.inc({ access_key: id }, n);
        },
      });
    },
    removeKey(keyId) {
      bytes.remove({ access_key: keyId, dir: 'up' });
      bytes.remove({ access_key: keyId, dir: 'down' });
    },
    render() {
      return registry.metrics();
    },
  };
}

/** The speed limits' counters: totals kept by the data plane, set from them at each scrape. */
function speedCounters(registry: Registry, stats: () => readonly SpeedLimitSample[]): void {
  let last: readonly SpeedLimitSample[] = [];
  const read = (): readonly SpeedLimitSample[] => (last = stats());
  new Counter({
    name: METRICS.speedLimited.name,
    help: METRICS.speedLimited.help,
    labelNames: METRICS.speedLimited.labels,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of read()) {
        this.inc({ access_key: s.keyId, dir: 'up' }, s.heldSeconds[0]);
        this.inc({ access_key: s.keyId, dir: 'down' }, s.heldSeconds[1]);
      }
    },
  });
  new Counter({
    name: METRICS.speedDropped.name,
    help: METRICS.speedDropped.help,
    labelNames: METRICS.speedDropped.labels,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of last) this.inc({ access_key: s.keyId }, s.droppedDatagrams);
    },
  });
}
