export { ShadowsocksServer, DEFAULT_IDLE_MS, DEFAULT_CONNECT_MS, DEFAULT_REPLAY_CAPACITY } from './server.js';
export type { ServerOptions, ServerTimeouts } from './server.js';
export { startDataPlane } from './data-plane.js';
export type { DataPlane, DataPlaneOptions, KeySource } from './data-plane.js';
export { CONNECTION_STATUSES, authChannel, closedChannel, openedChannel } from './events.js';
export type { AuthEvent, ConnectionClosedEvent, ConnectionStatus, ServerHooks } from './events.js';
export { isPrivateAddress } from './destination.js';
export type { RejectedKey } from './keys.js';
