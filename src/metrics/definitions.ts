/**
 * Every Prometheus metric Ladder exports, with its labels, in one place. Status labels are the
 * stable error codes of the layer that produced them (e.g. ProtocolError codes such as ERR_CIPHER),
 * so a log line, an error and a metric series name the same thing.
 *
 * Privacy: the only per-user label is the access key id. No addresses, destinations or secrets.
 */
export const METRIC_PREFIX = 'ladder_';

export const METRICS = {
  dataBytes: {
    name: 'ladder_data_bytes_total',
    help: 'Bytes on the client side of the tunnel per access key, TCP and UDP, Shadowsocks framing included (a little more than the payload; the figure the API and quotas use); dir="up" is client to server, dir="down" server to client',
    labels: ['access_key', 'dir'],
  },
  openConnections: {
    name: 'ladder_tcp_open_connections',
    help: 'TCP connections currently open on the data plane (authenticated or not)',
    labels: [],
  },
  connectionsClosed: {
    name: 'ladder_tcp_connections_closed_total',
    help: 'Closed TCP connections by outcome status ("OK" or an error code)',
    labels: ['status'],
  },
  authFailures: {
    name: 'ladder_tcp_auth_failures_total',
    help: 'Connections that never authenticated (probe-like), by status code',
    labels: ['status'],
  },
  timeToAuth: {
    name: 'ladder_time_to_auth_seconds',
    help: 'Time from accept to finding the key (trial decryption), seconds',
    labels: [],
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  },
  devicesInUse: {
    name: 'ladder_key_devices_in_use',
    help: 'Client addresses (an IPv6 address by its /64) counting against the device limit of each access key with one, on this server',
    labels: ['access_key'],
  },
  deviceRefusals: {
    name: 'ladder_key_device_refusals_total',
    help: "Connections and UDP sessions refused because their access key's device limit was reached (another address)",
    labels: ['access_key'],
  },
  workerCrashes: {
    name: 'ladder_data_plane_worker_crashes_total',
    help: 'Data-plane worker threads that stopped unexpectedly (each is restarted, within a budget per minute)',
    labels: [],
  },
  speedLimited: {
    name: 'ladder_key_speed_limited_seconds_total',
    help: 'Time a speed-limited access key\'s connections were held back by its limit (the sum over its connections), seconds; dir="up" client to server, dir="down" server to client',
    labels: ['access_key', 'dir'],
  },
  speedDropped: {
    name: 'ladder_key_speed_dropped_datagrams_total',
    help: 'UDP datagrams of a speed-limited access key dropped because they were over its rate (both directions)',
    labels: ['access_key'],
  },
  accessKeys: {
    name: 'ladder_access_keys',
    help: 'Access keys in the store by state (active, disabled, expired, over_limit)',
    labels: ['state'],
  },
  fleetNodeState: {
    name: 'ladder_fleet_node_state',
    help: "Fleet nodes (--node, PostgreSQL store): 1 for each node's current state (active, draining, blocked, suspected, down)",
    labels: ['node', 'state'],
  },
  fleetHeartbeatAge: {
    name: 'ladder_fleet_node_heartbeat_age_seconds',
    help: "Seconds since each fleet node's last heartbeat (database clock); -1 for a node that stopped cleanly",
    labels: ['node'],
  },
  fleetNodeKeysVersion: {
    name: 'ladder_fleet_node_keys_version',
    help: 'The keys version each fleet node reported as applied at its last heartbeat',
    labels: ['node'],
  },
  fleetKeysVersion: {
    name: 'ladder_fleet_keys_version',
    help: 'The keys version in the store (advanced by every key change)',
    labels: [],
  },
} as const;

/** One node as the fleet gauges show it (src/store/nodes.ts NodeRecord, reduced). */
export interface FleetNodeSample {
  name: string;
  /** The stored state, or 'down' when its heartbeat is stale. */
  state: string;
  heartbeatAgeSeconds: number;
  keysVersion: number;
}

export type Direction = 'up' | 'down';

/** One speed-limited key's counters since the process started (the data plane's shared table). */
export interface SpeedLimitSample {
  readonly keyId: string;
  readonly heldSeconds: readonly [up: number, down: number];
  readonly droppedDatagrams: number;
}
