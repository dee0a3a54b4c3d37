/** What managed mode's data planes report to: the metrics (hooks) and, with them, the store (usage). */
import type { LadderMetrics } from '../metrics/index.js';
import type { ServerHooks } from '../server/index.js';
import type { UsageSink } from '../shared/control.js';

export function hooksFor(metrics: LadderMetrics): ServerHooks {
  return {
    onConnectionOpened: () => metrics.connectionOpened(),
    onAuthenticated: (e) => metrics.authenticated(e.timeToAuthMs / 1000),
    onConnectionClosed: (e) => {
      metrics.connectionClosed({ status: e.status, keyId: e.keyId, probe: e.probe });
      if (e.probe) metrics.authFailed(e.status);
    },
    onWorkerCrashed: (e) => metrics.workerCrashed(e.lostConnections),
  };
}

export function tee(...sinks: UsageSink[]): UsageSink {
  return {
    addBytes(id, up, down) {
      for (const s of sinks) s.addBytes(id, up, down);
    },
  };
}
