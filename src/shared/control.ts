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
}

export interface ServerControl {
  /** Replace the set of usable keys. Connections of keys no longer present are closed. */
  setKeys(keys: readonly RuntimeKey[]): void;
  /** Close every open connection that authenticated with this key id. */
  closeKeyConnections(id: string): number;
  /** Open connections per key id. */
  openConnections(): ReadonlyMap<string, number>;
}

/** Byte accounting hook the server calls; the store implements it. */
export interface UsageSink {
  /** Bytes for one key: `up` client->destination, `down` destination->client. */
  addBytes(keyId: string, up: number, down: number): void;
}
