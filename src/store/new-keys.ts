import { generateSecret } from './secrets.js';
import type { KeyRecord, KeyWriteCheck, LimitPeriod, NewKey, ServerSettings, Store } from './types.js';

/**
 * What a caller asks for when it creates keys: the API's POST/PUT /access-keys and bulk route,
 * `ladder keys add` on a local store, and managed mode's initial key. The method (and a
 * caller-chosen secret) must already be checked by the caller, which knows how to word the error.
 */
export interface KeyRequest {
  method: string;
  /** Caller-chosen secret (one key only); otherwise each key gets a generated one. */
  secret?: string | undefined;
  /**
   * Makes each key's secret when `secret` is not given (the API passes the protocol's rules, and
   * for SIP023 keys prefixes the server's identity PSK); default generateSecret(method).
   */
  makeSecret?: (() => string) | undefined;
  /** Caller-chosen id (one key only); otherwise the next free integer ids. */
  id?: string | undefined;
  /** The port clients connect to; default the server's port for new keys. */
  port?: number | undefined;
  /** Display name; with count > 1 each key is named "<name> 1", "<name> 2", … (unnamed stays ""). */
  name?: string | undefined;
  /** How many keys, in one transaction (default 1). */
  count?: number | undefined;
  dataLimitBytes?: number | undefined;
  limitPeriod?: LimitPeriod | undefined;
  expiresAt?: number | undefined;
  enabled?: boolean | undefined;
  /** Outline `prefix` setting: 'auto' (default) | 'off' | lowercase hex. */
  prefix?: string | undefined;
  /** Client addresses at once (docs/limits.md); absent: none. */
  deviceLimit?: number | undefined;
  /** Bytes per second each way; absent: none. */
  speedLimit?: number | undefined;
  /** Checked in the creation's transaction (Store.createKeys): what it throws, createAccessKeys throws. */
  check?: KeyWriteCheck | undefined;
}

/**
 * Create one key or `count` keys all-or-nothing; returns them with the settings their access
 * URLs need. Throws StoreError KEY_EXISTS when a chosen id is taken.
 */
export async function createAccessKeys(
  store: Store,
  req: KeyRequest,
): Promise<{ keys: KeyRecord[]; settings: ServerSettings }> {
  const settings = await store.getSettings();
  const count = req.count ?? 1;
  const inputs: NewKey[] = Array.from({ length: count }, (_, i) => {
    const input: NewKey = {
      method: req.method,
      secret: req.secret ?? (req.makeSecret ? req.makeSecret() : generateSecret(req.method)),
      port: req.port ?? settings.portForNewAccessKeys,
      name: req.name === undefined || req.name === '' ? '' : count > 1 ? `${req.name} ${i + 1}` : req.name,
    };
    if (req.id !== undefined) input.id = req.id;
    if (req.dataLimitBytes !== undefined) input.dataLimitBytes = req.dataLimitBytes;
    if (req.limitPeriod !== undefined) input.limitPeriod = req.limitPeriod;
    if (req.expiresAt !== undefined) input.expiresAt = req.expiresAt;
    if (req.enabled !== undefined) input.enabled = req.enabled;
    if (req.prefix !== undefined) input.prefix = req.prefix;
    if (req.deviceLimit !== undefined) input.deviceLimit = req.deviceLimit;
    if (req.speedLimit !== undefined) input.speedLimit = req.speedLimit;
    return input;
  });
  return { keys: await store.createKeys(inputs, req.check), settings };
}
