// The management API as the dashboard uses it: same origin, paths relative to the page, which
// is served at `<apiUrl>/` (so `./access-keys` is `<apiUrl>/access-keys`). No server code is
// imported here (lint zone): these types mirror docs/api.md.

export type KeyState = 'active' | 'disabled' | 'expired' | 'over_limit';
export type LimitPeriod = 'rolling30d' | 'daily' | 'weekly' | 'monthly';
export const LIMIT_PERIODS: readonly LimitPeriod[] = ['rolling30d', 'daily', 'weekly', 'monthly'];

export interface AccessKey {
  id: string;
  name: string;
  password: string;
  port: number;
  method: string;
  accessUrl: string;
  enabled: boolean;
  createdTimestampMs?: number;
  dataLimit?: { bytes: number };
  dataLimitPeriod?: LimitPeriod;
  expiresAt?: string;
  state?: KeyState;
  dataUsed?: { bytes: number };
  dynamicAccessUrl?: string;
  subscriptionUrl?: string;
  lastTrafficSeenTimestampMs?: number;
  prefix?: string;
  /** Client addresses at once (docs/limits.md); absent: none. */
  deviceLimit?: { devices: number };
  /** A device-limited key's client addresses in use now, on the server that answered. */
  devicesInUse?: number;
  /** Bytes per second each way; absent: none. */
  speedLimit?: { bytesPerSecond: number };
}

/**
 * What the keys table shows of each key: GET /access-keys?fields=… (a Ladder extension) sends
 * only these, so the listing of 5,000 keys carries no passwords or URLs (a row's links are
 * fetched with the key when copied).
 */
export const ROW_FIELDS = [
  'name',
  'enabled',
  'state',
  'dataUsed',
  'dataLimit',
  'dataLimitPeriod',
  'expiresAt',
  'lastTrafficSeenTimestampMs',
  'createdTimestampMs',
  'prefix',
  'deviceLimit',
  'devicesInUse',
  'speedLimit',
] as const;
export type KeyRow = Pick<AccessKey, 'id' | (typeof ROW_FIELDS)[number]>;
export type BulkAction = 'enable' | 'disable' | 'delete' | 'extend';

export interface ServerInfo {
  name: string;
  serverId: string;
  version: string;
  portForNewAccessKeys: number;
  hostnameForAccessKeys: string;
  accessKeyDataLimit?: { bytes: number };
  dynamicKeyBaseUrl?: string;
}

export interface ServerStatus {
  startedTimestampMs: number;
  keys: Record<'total' | KeyState, number>;
  openConnections: number;
  transports: {
    kind: 'shadowsocks' | 'websocket';
    ports: number[];
    methods?: string[];
    tls?: boolean;
    udp?: boolean;
  }[];
  /** Present when the server is a node of a fleet (issue 16): the Nodes page is shown. */
  fleet?: { nodes: number };
}

export type NodeStatus = 'active' | 'draining' | 'blocked' | 'suspected' | 'down';

/** One fleet node as GET /nodes gives it (docs/fleet.md). */
export interface FleetNode {
  name: string;
  status: NodeStatus;
  state: Exclude<NodeStatus, 'down'>;
  down: boolean;
  stateReason?: string;
  addresses: string[];
  port: number;
  transports: {
    type: 'shadowsocks' | 'websocket' | 'shadowtls';
    port: number;
    tls?: boolean;
    udp?: boolean;
  }[];
  version: string;
  /** Absent when the node stopped cleanly (`stopped`). */
  heartbeatAgeMs?: number;
  stopped?: boolean;
  startedTimestampMs: number;
  keysVersion: number;
}

export interface Fleet {
  self: { name: string };
  keysVersion: number;
  /** The names keys list now. */
  listed: string[];
  /** Present when keys list no node: they give the store's hostname for keys instead. */
  keysFallback?: { hostnameForAccessKeys: string; warning: string };
  nodes: FleetNode[];
}

export interface UsageDay {
  startTimestampMs: number;
  up: number;
  down: number;
  bytes: number;
}

export interface KeyUsage {
  state: KeyState;
  dataLimitPeriod: LimitPeriod;
  nextResetTimestampMs: number | null;
  dataUsed: { bytes: number };
  dataLimit: { bytes: number } | null;
  trailing30Days: { up: number; down: number; bytes: number };
  openConnections: number;
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`./${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    cache: 'no-store',
  });
  if (!res.ok) {
    let message = `${res.status}`;
    try {
      message = ((await res.json()) as { message?: string }).message ?? message;
    } catch {
      // not JSON
    }
    throw new ApiFailure(res.status, message);
  }
  return (res.status === 204 ? undefined : await res.json()) as T;
}

export const get = <T>(path: string): Promise<T> => call<T>('GET', path);
const enc = encodeURIComponent;

export const api = {
  server: () => get<ServerInfo>('server'),
  status: () => get<ServerStatus>('server/status'),
  history: (keyId?: string) =>
    get<{ days: UsageDay[] }>(
      `server/usage-history?days=30${keyId === undefined ? '' : `&keyId=${enc(keyId)}`}`,
    ),
  keys: () =>
    get<{ accessKeys: KeyRow[] }>(`access-keys?fields=${ROW_FIELDS.join(',')}`).then((r) => r.accessKeys),
  key: (id: string) => get<AccessKey>(`access-keys/${enc(id)}`),
  usage: (id: string) => get<KeyUsage>(`access-keys/${enc(id)}/usage`),
  create: (body: Record<string, unknown>) => call<AccessKey>('POST', 'access-keys', body),
  createMany: (body: Record<string, unknown>) =>
    call<{ accessKeys: AccessKey[] }>('POST', 'access-keys/bulk', body).then((r) => r.accessKeys),
  /** One call for many keys, all or nothing (POST /access-keys/bulk-action). */
  bulk: (action: BulkAction, ids: readonly string[], days?: number) =>
    call<{ changed: number }>('POST', 'access-keys/bulk-action', {
      action,
      ids,
      ...(days === undefined ? {} : { days }),
    }),
  remove: (id: string) => call<void>('DELETE', `access-keys/${enc(id)}`),
  setEnabled: (id: string, enabled: boolean) =>
    call<void>('PUT', `access-keys/${enc(id)}/enabled`, { enabled }),
  rename: (id: string, name: string) => call<void>('PUT', `access-keys/${enc(id)}/name`, { name }),
  setLimit: (id: string, bytes: number | null, period: LimitPeriod) =>
    bytes === null
      ? call<void>('DELETE', `access-keys/${enc(id)}/data-limit`)
      : call<void>('PUT', `access-keys/${enc(id)}/data-limit`, { limit: { bytes }, period }),
  setExpiry: (id: string, at: number | null) =>
    at === null
      ? call<void>('DELETE', `access-keys/${enc(id)}/expiry`)
      : // The dialogs ask for a second press before a past expiry (pastExpiryWarn).
        call<void>('PUT', `access-keys/${enc(id)}/expiry`, { expiresAt: at, allowPastExpiry: true }),
  setDeviceLimit: (id: string, devices: number | null) =>
    devices === null
      ? call<void>('DELETE', `access-keys/${enc(id)}/device-limit`)
      : call<void>('PUT', `access-keys/${enc(id)}/device-limit`, { limit: { devices } }),
  setSpeedLimit: (id: string, bytesPerSecond: number | null) =>
    bytesPerSecond === null
      ? call<void>('DELETE', `access-keys/${enc(id)}/speed-limit`)
      : call<void>('PUT', `access-keys/${enc(id)}/speed-limit`, { limit: { bytesPerSecond } }),
  setPrefix: (id: string, prefix: string) => call<void>('PUT', `access-keys/${enc(id)}/prefix`, { prefix }),
  setName: (name: string) => call<void>('PUT', 'name', { name }),
  setHostname: (hostname: string) => call<void>('PUT', 'server/hostname-for-access-keys', { hostname }),
  setPort: (port: number) => call<void>('PUT', 'server/port-for-new-access-keys', { port }),
  setDefaultLimit: (bytes: number | null) =>
    bytes === null
      ? call<void>('DELETE', 'server/access-key-data-limit')
      : call<void>('PUT', 'server/access-key-data-limit', { limit: { bytes } }),
  setDynamicBase: (url: string | null) => call<void>('PUT', 'server/dynamic-key-base-url', { url }),
  nodes: () => get<Fleet>('nodes'),
  drainNode: (name: string) => call<FleetNode>('POST', `nodes/${enc(name)}/drain`, {}),
  blockNode: (name: string, reason: string) =>
    call<FleetNode>('POST', `nodes/${enc(name)}/block`, reason.trim() ? { reason: reason.trim() } : {}),
  unblockNode: (name: string) => call<FleetNode>('POST', `nodes/${enc(name)}/unblock`),
  addNodeAddress: (name: string, address: string) =>
    call<FleetNode>('POST', `nodes/${enc(name)}/addresses`, { address }),
  removeNode: (name: string) => call<void>('DELETE', `nodes/${enc(name)}`),
};
