/**
 * The seam between the management plane (store, api) and the data plane (server). The API never
 * imports server/ internals; the CLI composition root connects an implementation of
 * ServerControl (in server/) to the store.
 */

/** A key as the data plane needs it. `secret` is the password (SIP004) or base64 PSK (SIP022). */
export interface RuntimeKey {
  readonly id: string;
  readonly method: string;
  readonly secret: string;
  /**
   * At most this many client addresses may use the key at once on this server (an IPv6 address
   * counts by its /64); absent: no limit. See docs/limits.md.
   */
  readonly deviceLimit?: number;
  /**
   * Bytes per second in each direction, shared by all of the key's connections and datagrams on
   * this server; absent: no limit. See docs/limits.md.
   */
  readonly speedLimit?: number;
}

/**
 * A change to a key set: keys added or changed (by id), and ids removed. Lets one changed key
 * cost work for one key, in the enforcer and in every data-plane worker.
 */
export interface KeyDelta {
  readonly upsert: readonly RuntimeKey[];
  readonly remove: readonly string[];
}

export interface ServerControl {
  /** Replace the set of usable keys. Connections of keys no longer present are closed. */
  setKeys(keys: readonly RuntimeKey[]): void;
  /**
   * Change only the keys the delta names (optional: a control without it gets setKeys). A
   * promise, when returned, settles once the change is in force everywhere (every worker).
   */
  applyKeyDelta?(delta: KeyDelta): void | Promise<void>;
  /** Close every open connection that authenticated with this key id. */
  closeKeyConnections(id: string): number;
  /** Open connections per key id. */
  openConnections(): ReadonlyMap<string, number>;
  /**
   * Per key id with a device limit: the client addresses counting against it now, on this
   * server (every port and worker). No address leaves the data plane. See docs/limits.md.
   */
  devicesInUse?(): ReadonlyMap<string, number>;
}

/** Byte accounting hook the server calls; the store implements it. */
export interface UsageSink {
  /** Bytes for one key: `up` client->destination, `down` destination->client. */
  addBytes(keyId: string, up: number, down: number): void;
}
