export * from './types.js';
export { parseStoreLocation, createDialect, SQLITE_FILE_NAME, type StoreLocation } from './dialect.js';
export { KyselyStore, openStore, HOUR_MS, type StoreOptions } from './kysely-store.js';
export * from './policy.js';
export { KeyEnforcer, type EnforcerOptions } from './enforcer.js';
export { generateSecret } from './secrets.js';
export { createAccessKeys, type KeyRequest } from './new-keys.js';
export {
  describeLimits,
  limitProblem,
  MAX_DEVICE_LIMIT,
  MAX_SPEED_LIMIT,
  MIN_SPEED_LIMIT,
  type LimitField,
} from './key-limits.js';
export { ensureFirstKey, type FirstKeyHooks } from './first-key.js';
export {
  checkBeforeServing,
  checkNotLost,
  checkSqliteFile,
  markerPath,
  readMarker,
  writeMarker,
  type StoreMarker,
} from './integrity.js';
export { backupStore, checkStore, restoreStore, storeInUse } from './backup.js';
export { isStoreUnavailable, StoreHealth } from './health.js';
export { DEFAULT_POOL_SIZE, isTooManyClients, type PoolStats } from './pg-pool.js';
export type { UsageWriterTesting } from './usage-writer.js';
export { KEY_CACHE_FILE, loadKeyCache, saveKeyCache, type CachedKey, type KeyCache } from './key-cache.js';
export {
  checkNodeName,
  DEFAULT_REPORT_POLICY,
  DOWN_AFTER_MS,
  HEARTBEAT_MS,
  keyAddresses,
  listedNodes,
  NODE_STATES,
  keyNodes,
  keysFallbackNote,
  NodeError,
  NodeRegistry,
  type NodeInfo,
  type NodeRecord,
  type NodeState,
  type NodeTransport,
  type ReportOutcome,
  type ReportPolicy,
  type WebFront,
  type ShadowTlsFront,
} from './nodes.js';
