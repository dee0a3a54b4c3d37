export { METRICS, METRIC_PREFIX, type Direction, type FleetNodeSample } from './definitions.js';
export {
  createMetrics,
  type LadderMetrics,
  type ConnectionOutcome,
  type MetricsOptions,
} from './registry.js';
export { startMetricsServer, type MetricsServer } from './server.js';
