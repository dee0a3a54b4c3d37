export { METRICS, METRIC_PREFIX, type Direction } from './definitions.js';
export {
  createMetrics,
  type LadderMetrics,
  type ConnectionOutcome,
  type MetricsOptions,
} from './registry.js';
export { startMetricsServer, type MetricsServer } from './server.js';
