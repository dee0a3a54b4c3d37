import { evpBytesToKey } from '../protocol/shadowsocks/kdf.js';
import { getAeadMethod, type AeadMethod } from '../protocol/shadowsocks/methods.js';
import type { RuntimeKey } from '../shared/control.js';

/** A key ready for trial decryption: method table entry and master key derived once. */
export interface KeyEntry {
  readonly id: string;
  readonly method: AeadMethod;
  readonly masterKey: Buffer;
  /** Bytes needed to test this key: salt + sealed 2-byte length (2 + 16). */
  readonly probeLength: number;
  /** method + secret, to notice a changed key under the same id. */
  readonly fingerprint: string;
}

function fingerprint(k: RuntimeKey): string {
  return `${k.method}\u0000${k.secret}`;
}

export interface RejectedKey {
  readonly id: string;
  /** Why (never contains the secret). */
  readonly reason: string;
}

/**
 * Build key entries, reusing unchanged entries from `previous` (same id, method and secret) so
 * their identity, and the master key derivation, survive a setKeys() call. A key this server
 * cannot serve (refused or unknown method, repeated id) is left out and reported in `rejected`,
 * so one bad key cannot stop every other key from working.
 */
export function buildKeyEntries(
  keys: readonly RuntimeKey[],
  previous: ReadonlyMap<string, KeyEntry>,
): { entries: Map<string, KeyEntry>; rejected: RejectedKey[] } {
  const entries = new Map<string, KeyEntry>();
  const rejected: RejectedKey[] = [];
  for (const k of keys) {
    if (entries.has(k.id)) {
      rejected.push({ id: k.id, reason: 'duplicate key id (the first one is used)' });
      continue;
    }
    const fp = fingerprint(k);
    const old = previous.get(k.id);
    if (old && old.fingerprint === fp) {
      entries.set(k.id, old);
      continue;
    }
    let method: AeadMethod;
    try {
      method = getAeadMethod(k.method);
    } catch (err) {
      rejected.push({ id: k.id, reason: err instanceof Error ? err.message : 'unsupported method' });
      continue;
    }
    entries.set(k.id, {
      id: k.id,
      method,
      masterKey: evpBytesToKey(k.secret, method.keySize),
      probeLength: method.saltSize + 2 + 16,
      fingerprint: fp,
    });
  }
  return { entries, rejected };
}

/**
 * Which keys each client IP used recently, most recent first: a bounded LRU of IPs (Map
 * insertion order), each holding at most `perIp` key ids. Used only to order trial decryption;
 * it never changes whether a key is accepted.
 */
export class RecentKeys {
  readonly #maxIps: number;
  readonly #perIp: number;
  readonly #byIp = new Map<string, string[]>();

  constructor(maxIps = 4096, perIp = 4) {
    this.#maxIps = maxIps;
    this.#perIp = perIp;
  }

  get(ip: string): readonly string[] {
    return this.#byIp.get(ip) ?? [];
  }

  use(ip: string, keyId: string): void {
    const list = this.#byIp.get(ip) ?? [];
    this.#byIp.delete(ip);
    const i = list.indexOf(keyId);
    if (i !== -1) list.splice(i, 1);
    list.unshift(keyId);
    if (list.length > this.#perIp) list.length = this.#perIp;
    this.#byIp.set(ip, list);
    if (this.#byIp.size > this.#maxIps) {
      const oldest = this.#byIp.keys().next().value;
      if (oldest !== undefined) this.#byIp.delete(oldest);
    }
  }

  get size(): number {
    return this.#byIp.size;
  }
}
