/** Table shapes as Kysely sees them. Numbers may come back as strings from PostgreSQL (bigint). */
export interface KeysTable {
  id: string;
  name: string;
  method: string;
  secret: string;
  port: number;
  data_limit_bytes: number | null;
  limit_period: string;
  expires_at: number | null;
  enabled: number;
  access_token: string;
  created_at: number;
  last_seen_at: number | null;
  seq: number;
  /** 'auto' | 'off' | lowercase hex (migration 0002_key_prefix). */
  prefix: string;
  /** Keys version of the last change of a data-plane column (migration 0006; set by triggers). */
  version?: number | undefined;
  /** Client addresses at once, null = none (migration 0007_key_limits). */
  device_limit?: number | null | undefined;
  /** Bytes per second each way, null = none (migration 0007_key_limits). */
  speed_limit?: number | null | undefined;
}

/** One row per deleted key id with the keys version of its deletion (migration 0006_key_versions). */
export interface KeyTombstonesTable {
  id: string;
  version: number;
  deleted_at: number;
}

export interface UsageTable {
  key_id: string;
  bucket: number;
  up_bytes: number;
  down_bytes: number;
  /** When the row last changed, ms (migration 0004; the database's clock on PostgreSQL). */
  changed_at: number;
}

/** The last usage batch each writer run committed (migration 0004_usage_batches). */
export interface UsageBatchesTable {
  writer: string;
  run: string;
  seq: number;
  committed_at: number;
}

export interface SettingsTable {
  name: string;
  value: string;
}

/** Fleet nodes (migration 0003_nodes); JSON in addresses and transports. */
export interface NodesTable {
  name: string;
  addresses: string;
  port: number;
  transports: string;
  version: string;
  state: string;
  state_reason: string | null;
  state_changed_at: number | null;
  instance: string;
  started_at: number;
  heartbeat_at: number;
  keys_version: number;
  api_port: number | null;
  /** JSON array of addresses suspected blocked (migration 0005_address_reports). */
  suspected_addresses: string;
}

/** Blocked-address reports (migration 0005_address_reports): no client address, by design. */
export interface AddressReportsTable {
  node: string;
  address: string;
  key_id: string;
  reported_at: number;
}

export interface Database {
  keys: KeysTable;
  nodes: NodesTable;
  usage: UsageTable;
  settings: SettingsTable;
  usage_batches: UsageBatchesTable;
  address_reports: AddressReportsTable;
  key_tombstones: KeyTombstonesTable;
}
