import type { UsageSink } from '../shared/control.js';
import { CodedError } from '../shared/errors.js';

/** Why a PostgreSQL URL is refused unread (node-postgres cannot parse it, or would misread it). */
export const PG_URL_UNREADABLE =
  'the PostgreSQL URL cannot be read (percent-encode a / ? # @ or space in its user or password: %2F %3F %23 %40 %20)';

/** How a key's data limit is counted: a trailing 30-day total (Outline) or a calendar period (UTC). */
export type LimitPeriod = 'rolling30d' | 'daily' | 'weekly' | 'monthly';
export const LIMIT_PERIODS: readonly LimitPeriod[] = ['rolling30d', 'daily', 'weekly', 'monthly'];

/** An access key as stored. Times are milliseconds since the epoch. */
export interface KeyRecord {
  readonly id: string;
  readonly name: string;
  readonly method: string;
  /**
   * The password (SIP004), or for 2022 methods the base64 PSK: "uPSK" (single-user) or
   * "iPSK:uPSK" (SIP023 multi-user: the server's identity PSK, then the user's PSK), exactly what
   * the client puts in its password field.
   */
  readonly secret: string;
  readonly port: number;
  /** Per-key data limit in bytes; null means "use the server default" (which may be none). */
  readonly dataLimitBytes: number | null;
  readonly limitPeriod: LimitPeriod;
  readonly expiresAt: number | null;
  readonly enabled: boolean;
  /** Unguessable token for the key's dynamic (ssconf://) URL. */
  readonly accessToken: string;
  readonly createdAt: number;
  readonly lastSeenAt: number | null;
  /**
   * The key's Outline `prefix` setting (SIP004 keys): 'auto' (a fresh one per dynamic-key fetch),
   * 'off', or the pinned bytes as lowercase hex (key-prefix.ts formatKeyPrefixSetting). Absent
   * (records built outside the store) means 'auto'.
   */
  readonly prefix?: string;
  /** At most this many client addresses at once (RuntimeKey.deviceLimit); null/absent: none. */
  readonly deviceLimit?: number | null;
  /** Bytes per second each way (RuntimeKey.speedLimit); null/absent: none. */
  readonly speedLimit?: number | null;
}

export interface NewKey {
  /** Caller-chosen id (Outline `PUT /access-keys/{id}`); omitted = next free integer id. */
  id?: string;
  name?: string;
  method: string;
  secret: string;
  port: number;
  dataLimitBytes?: number | null;
  limitPeriod?: LimitPeriod;
  expiresAt?: number | null;
  enabled?: boolean;
  /** 'auto' (default) | 'off' | lowercase hex. */
  prefix?: string;
  deviceLimit?: number | null;
  speedLimit?: number | null;
}

export interface KeyPatch {
  name?: string;
  method?: string;
  secret?: string;
  port?: number;
  dataLimitBytes?: number | null;
  limitPeriod?: LimitPeriod;
  expiresAt?: number | null;
  enabled?: boolean;
  prefix?: string;
  deviceLimit?: number | null;
  speedLimit?: number | null;
}

export interface ServerSettings {
  readonly serverId: string;
  readonly createdTimestampMs: number;
  readonly name: string;
  /** Host (DNS name or IP) written into access URLs. */
  readonly hostnameForAccessKeys: string;
  readonly portForNewAccessKeys: number;
  readonly metricsEnabled: boolean;
  /** Server-wide default data limit in bytes for keys without their own; null = none. */
  readonly accessKeyDataLimitBytes: number | null;
  /** Secret path prefix of the management API (base64url). */
  readonly apiPrefix: string;
  /** Port the management API listens on (recorded at start so the CLI can build ssconf:// URLs). */
  readonly apiPort: number | null;
  /** Base URL (https://host[:port][/path]) where dynamic keys are served; null = the API itself. */
  readonly dynamicKeyBaseUrl: string | null;
  /** Blocked-address detection (fleet): this many distinct keys reporting an address (default 3)… */
  readonly reportKeys: number;
  /** …within this many seconds (default 600) mark it suspected. Fleet-wide: one value per store. */
  readonly reportWindowSeconds: number;
}

export type SettingsPatch = Partial<Omit<ServerSettings, 'serverId' | 'createdTimestampMs'>>;

export interface UsageTotals {
  up: number;
  down: number;
}

/** One hour of traffic for one key (bucket = start of the hour, ms). */
export interface UsageBucket {
  keyId: string;
  bucket: number;
  up: number;
  down: number;
}

/** Where a keyset page of the key listing starts after: the last key of the previous page. */
export interface KeyCursor {
  readonly seq: number;
  readonly id: string;
}

/** One page of keys in listing order (creation order); `next` is set when more may follow. */
export interface KeyPage {
  readonly keys: readonly KeyRecord[];
  readonly next: KeyCursor | undefined;
}

/**
 * Keys changed since a keys version (Store.keyChanges): the ids deleted after `since`, and the rows
 * whose data-plane columns changed (an id deleted and created again is in both: apply the deletions
 * first), or every key when `since` was not given (`full`). `version` covers everything returned:
 * the next delta asks for changes after it.
 */
export interface KeyChanges {
  readonly version: number;
  readonly full: boolean;
  readonly changed: readonly KeyRecord[];
  readonly deleted: readonly string[];
}

export type StoreErrorCode =
  | 'KEY_EXISTS'
  | 'KEY_NOT_FOUND'
  | 'STORE_CLOSED'
  | 'STORE_OPEN_FAILED'
  /** A device or speed limit out of its bounds (key-limits.ts): refused, nothing written. */
  | 'INVALID_LIMIT'
  /** The database (PostgreSQL) cannot be reached now; the API answers 503. */
  | 'STORE_UNAVAILABLE';

export class StoreError extends CodedError<StoreErrorCode> {
  override readonly name = 'StoreError';
}

/**
 * A condition a key write checks in its own transaction, on the keys as they are then: `check`
 * gets every key of `method` and throws to refuse the write, which then changes nothing. Writes
 * with a check are serialized (SQLite: one writer at a time; PostgreSQL: an advisory lock), so two
 * of them, from this process or another, never both pass on the same keys (the API's refusal of
 * a 2022 secret another key has: api/key-secrets.ts).
 */
export interface KeyWriteCheck {
  method: string;
  check(keys: readonly KeyRecord[]): void;
}

/**
 * Persistence for keys, usage and server settings. Every multi-row change runs in one transaction.
 * Usage arrives through `addBytes` (UsageSink), is buffered in memory and written in batches.
 */
export interface Store extends UsageSink {
  readonly dialect: 'sqlite' | 'postgres';
  listKeys(): Promise<KeyRecord[]>;
  /**
   * Up to `limit` keys after `after` in listKeys' order (keyset pagination: each page is one
   * indexed-order read, whatever the page's position; a key changed between pages is listed at
   * most once).
   */
  listKeysPage(limit: number, after?: KeyCursor): Promise<KeyPage>;
  /**
   * A counter this process advances after every committed change of keys or settings, so a cache
   * of what they render to (the key listing) knows when it is stale.
   */
  readonly keysVersion: number;
  getKey(id: string): Promise<KeyRecord | undefined>;
  findKeyByToken(token: string): Promise<KeyRecord | undefined>;
  /** Throws StoreError KEY_EXISTS when `id` is taken. */
  createKey(input: NewKey): Promise<KeyRecord>;
  /** All or nothing, in one transaction; `check` as KeyWriteCheck says. */
  createKeys(inputs: readonly NewKey[], check?: KeyWriteCheck): Promise<KeyRecord[]>;
  /** Returns undefined when the key does not exist; `check` as KeyWriteCheck says. */
  updateKey(id: string, patch: KeyPatch, check?: KeyWriteCheck): Promise<KeyRecord | undefined>;
  /**
   * Changes many keys in one transaction, each by `patch(key)` (the key as read in it); all or
   * nothing: when an id does not exist nothing changes and the missing ids are returned ([] = done).
   */
  updateKeys(ids: readonly string[], patch: (key: KeyRecord) => KeyPatch): Promise<string[]>;
  /** Deletes the key and its usage; false when it did not exist. */
  deleteKey(id: string): Promise<boolean>;
  /** Deletes many keys and their usage in one transaction, all or nothing, as updateKeys. */
  deleteKeys(ids: readonly string[]): Promise<string[]>;
  countKeys(): Promise<number>;
  /**
   * Optional (the Kysely store has it): the keys changed after keys version `since`, read in one
   * snapshot; every key when `since` is undefined. Lets the enforcer read only what changed.
   */
  keyChanges?(since?: number): Promise<KeyChanges>;

  getSettings(): Promise<ServerSettings>;
  updateSettings(patch: SettingsPatch): Promise<ServerSettings>;
  /**
   * The server's SIP023 identity PSK for a 2022 method: read from the settings, or made with
   * `generate` and stored the first time it is asked for (atomically: concurrent callers, other
   * processes and other nodes of a PostgreSQL store all get the same one).
   */
  identityKey(method: string, generate: () => string): Promise<string>;

  /** Per-key totals of buckets starting at or after `since` (ms); includes unflushed bytes. */
  usageSince(since: number): Promise<Map<string, UsageTotals>>;
  /** Raw hourly buckets at or after `since`, for charts and bandwidth figures. */
  usageBuckets(since: number): Promise<UsageBucket[]>;
  /** Write buffered usage now. */
  flush(): Promise<void>;
  /** Flush and release the database. */
  close(): Promise<void>;
}
