import { requestPrefixSize } from '../protocol/shadowsocks/aead2022.js';
import { IdentityTable } from '../protocol/shadowsocks/identity.js';
import { evpBytesToKey } from '../protocol/shadowsocks/kdf.js';
import { getAeadMethod, type AeadMethod } from '../protocol/shadowsocks/methods.js';
import { getAead2022Method, parsePsk2022, type Aead2022Method } from '../protocol/shadowsocks/methods2022.js';
import type { KeyDelta, RuntimeKey } from '../shared/control.js';

/**
 * A key's per-key limits (docs/limits.md), as its RuntimeKey says: the one place the data plane
 * reads them from (speed-limits.ts, device-limits.ts). Carried by the key's ring entry and changed
 * in place when only the limits change (the entry, and so its connections, stay).
 */
export interface KeyLimits {
  /** Client addresses at once (0 and up); undefined: none. */
  deviceLimit: number | undefined;
  /** Bytes per second each way (> 0); undefined: none. */
  speedLimit: number | undefined;
}

function limitsOf(k: RuntimeKey): KeyLimits {
  return {
    deviceLimit: k.deviceLimit !== undefined && k.deviceLimit >= 0 ? k.deviceLimit : undefined,
    speedLimit: k.speedLimit !== undefined && k.speedLimit > 0 ? k.speedLimit : undefined,
  };
}

/** A SIP004 (2017 edition) key ready for trial decryption: method and master key derived once. */
export interface KeyEntry {
  readonly edition: 2017;
  readonly id: string;
  readonly method: AeadMethod;
  readonly masterKey: Buffer;
  /** Bytes needed to test this key: salt + sealed 2-byte length (2 + 16). */
  readonly probeLength: number;
  /** method + secret, to notice a changed key under the same id. */
  readonly fingerprint: string;
  readonly limits: KeyLimits;
}

/**
 * A SIP022 (2022 edition) key. With `identityKey` (secret "iPSK:uPSK", SIP023) the key is one
 * user of the identity group of that iPSK and is found by its identity header in O(1); without,
 * it is a single-user key tried directly.
 */
export interface Key2022Entry {
  readonly edition: 2022;
  readonly id: string;
  readonly method: Aead2022Method;
  /** The user PSK: it keys the session. */
  readonly userKey: Buffer;
  /** The (first) identity PSK of a SIP023 multi-user key; undefined for a single-user key. */
  readonly identityKey: Buffer | undefined;
  /** Bytes needed to authenticate: salt [+ identity header] + sealed fixed header. */
  readonly probeLength: number;
  readonly fingerprint: string;
  readonly limits: KeyLimits;
}

export type AnyKeyEntry = KeyEntry | Key2022Entry;

/** A kept key that gained a limit it did not have (KeyRing.gained). */
export interface GainedLimit {
  readonly id: string;
  readonly speed: boolean;
  readonly device: boolean;
}

/** A kept entry takes `k`'s limits in place; one that gains a limit is noted in `gained`. */
function changeLimits(e: AnyKeyEntry, k: RuntimeKey, gained: GainedLimit[]): void {
  const next = limitsOf(k);
  const speed = e.limits.speedLimit === undefined && next.speedLimit !== undefined;
  const device = e.limits.deviceLimit === undefined && next.deviceLimit !== undefined;
  e.limits.speedLimit = next.speedLimit;
  e.limits.deviceLimit = next.deviceLimit;
  if (speed || device) gained.push({ id: e.id, speed, device });
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
  previous: ReadonlyMap<string, AnyKeyEntry>,
): { entries: Map<string, AnyKeyEntry>; rejected: RejectedKey[] } {
  const entries = new Map<string, AnyKeyEntry>();
  const userKeys = new Map<string, string>();
  const rejected: RejectedKey[] = [];
  for (const k of keys) {
    if (entries.has(k.id)) {
      rejected.push({ id: k.id, reason: 'duplicate key id (the first one is used)' });
      continue;
    }
    const fp = fingerprint(k);
    const old = previous.get(k.id);
    if (old && old.fingerprint === fp) {
      if (old.edition === 2022 && !claimUserKey(userKeys, old, rejected)) continue;
      entries.set(k.id, old);
      continue;
    }
    if (k.method.startsWith('2022-')) {
      const e = build2022(k, fp, rejected);
      if (e && claimUserKey(userKeys, e, rejected)) entries.set(k.id, e);
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
      edition: 2017,
      id: k.id,
      method,
      masterKey: evpBytesToKey(k.secret, method.keySize),
      probeLength: method.saltSize + 2 + 16,
      fingerprint: fp,
      limits: limitsOf(k),
    });
  }
  return { entries, rejected };
}

function build2022(k: RuntimeKey, fp: string, rejected: RejectedKey[]): Key2022Entry | undefined {
  try {
    const method = getAead2022Method(k.method);
    const psk = parsePsk2022(method, k.secret);
    if (psk.identityKeys.length > 1) {
      rejected.push({
        id: k.id,
        reason: 'a server key has at most one identity key (iPSK:uPSK); multi-hop chains are a client form',
      });
      return undefined;
    }
    const identityKey = psk.identityKeys[0];
    return {
      edition: 2022,
      id: k.id,
      method,
      userKey: psk.userKey,
      identityKey,
      probeLength: requestPrefixSize(method, identityKey ? 1 : 0),
      fingerprint: fp,
      limits: limitsOf(k),
    };
  } catch (err) {
    rejected.push({ id: k.id, reason: err instanceof Error ? err.message : 'invalid 2022 key' });
    return undefined;
  }
}

/**
 * Two 2022 keys of one identity group (or two single-user keys) with the same user PSK cannot be
 * told apart on the wire: the first one keeps it, the second is rejected.
 */
function claimUserKey(seen: Map<string, string>, e: Key2022Entry, rejected: RejectedKey[]): boolean {
  const group = `${e.method.name}/${e.identityKey?.toString('hex') ?? ''}/${e.userKey.toString('hex')}`;
  const owner = seen.get(group);
  if (owner !== undefined) {
    rejected.push({ id: e.id, reason: `same 2022 user key as key "${owner}" (the first one is used)` });
    return false;
  }
  seen.set(group, e.id);
  return true;
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
    if (list[0] === keyId) {
      // Already first (a client's every connection after its first): only the IP's LRU place moves.
      this.#byIp.set(ip, list);
      return;
    }
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

/**
 * SIP023: the users of one identity PSK on this port. One AES block decryption and one Map
 * lookup find the user of a connection, whatever the group's size.
 */
export interface IdentityGroup {
  readonly method: Aead2022Method;
  readonly identityKey: Buffer;
  readonly table: IdentityTable<Key2022Entry>;
  /** salt + identity header + sealed fixed header. */
  readonly probeLength: number;
}

function newGroup(e: Key2022Entry, identityKey: Buffer): IdentityGroup {
  return {
    method: e.method,
    identityKey,
    table: new IdentityTable<Key2022Entry>(e.method, identityKey),
    probeLength: e.probeLength,
  };
}

function buildIdentityGroups(entries: Iterable<AnyKeyEntry>): IdentityGroup[] {
  const groups = new Map<string, IdentityGroup>();
  for (const e of entries) {
    if (e.edition !== 2022 || !e.identityKey) continue;
    const id = `${e.method.name}/${e.identityKey.toString('hex')}`;
    let g = groups.get(id);
    if (!g) groups.set(id, (g = newGroup(e, e.identityKey)));
    g.table.set(e.userKey, e);
  }
  return [...groups.values()];
}

/** One thing trial decryption tests: a SIP023 identity group, a 2022 single-user key, a SIP004 key. */
export type Candidate = IdentityGroup | Key2022Entry | KeyEntry;

export function isIdentityGroup(c: Candidate): c is IdentityGroup {
  return 'table' in c;
}

/**
 * Called on each candidate in trial order with its 1-based position (a SIP023 group counts as
 * one) and whether it came from the `first` list. Return a value to stop the walk with it.
 */
export type CandidateVisitor<T> = (c: Candidate, position: number, first: boolean) => T | undefined;

const NO_KEYS: readonly KeyEntry[] = [];

export type { KeyDelta };

/** The delta that turns key set `from` (by id) into `to`; `from` is left unchanged. */
export function keyDelta(from: ReadonlyMap<string, RuntimeKey>, to: readonly RuntimeKey[]): KeyDelta {
  const upsert: RuntimeKey[] = [];
  const seen = new Set<string>();
  for (const k of to) {
    seen.add(k.id);
    const old = from.get(k.id);
    // A changed limit is a change too: the key reaches the workers with the same id, new limits.
    const limits = old && (old.speedLimit !== k.speedLimit || old.deviceLimit !== k.deviceLimit);
    if (!old || old.method !== k.method || old.secret !== k.secret || limits) upsert.push(k);
  }
  const remove: string[] = [];
  for (const id of from.keys()) if (!seen.has(id)) remove.push(id);
  return { upsert, remove };
}

function groupId(e: Key2022Entry): string {
  return `${e.method.name}/${e.identityKey?.toString('hex') ?? ''}`;
}

/**
 * The keys of one port, in the forms trial decryption needs, shared by the TCP and UDP paths:
 * the entries by id, the SIP023 identity groups, the 2022 single-user keys, the SIP004 keys,
 * and which SIP004 keys each client IP used recently. `walk` is the one trial order. `set`
 * replaces the whole set; `apply` changes only the keys a delta names.
 */
export class KeyRing {
  #entries = new Map<string, AnyKeyEntry>();
  /** SIP004 keys, tried by trial decryption, and each one's index there (O(1) removal). */
  #sip004: KeyEntry[] = [];
  #sip004At = new Map<string, number>();
  /** 2022 single-user keys (no identity header), tried directly. */
  #single2022: Key2022Entry[] = [];
  #groups: IdentityGroup[] = [];
  #groupsById = new Map<string, IdentityGroup>();
  /** Which key id owns each 2022 user PSK (see claimUserKey). */
  #userKeys = new Map<string, string>();
  #rejected: readonly RejectedKey[] = [];
  #gained: readonly GainedLimit[] = [];
  readonly #recent = new RecentKeys();

  /**
   * Replace the key set (unchanged entries keep their identity, see buildKeyEntries). Keys that
   * cannot be served are left out and listed in `rejected`.
   */
  set(keys: readonly RuntimeKey[]): void {
    const previous = this.#entries;
    const { entries, rejected } = buildKeyEntries(keys, previous);
    const gained: GainedLimit[] = [];
    for (const k of keys) {
      const e = entries.get(k.id);
      if (e && e === previous.get(k.id)) changeLimits(e, k, gained);
    }
    this.#gained = gained;
    this.#rejected = rejected;
    this.#entries = entries;
    const all = [...entries.values()];
    this.#sip004 = all.filter((k): k is KeyEntry => k.edition === 2017);
    this.#sip004At = new Map(this.#sip004.map((k, i) => [k.id, i]));
    this.#single2022 = all.filter((k): k is Key2022Entry => k.edition === 2022 && !k.identityKey);
    this.#groups = buildIdentityGroups(all);
    this.#groupsById = new Map(
      this.#groups.map((g) => [`${g.method.name}/${g.identityKey.toString('hex')}`, g]),
    );
    this.#userKeys = new Map();
    for (const e of all) if (e.edition === 2022) claimUserKey(this.#userKeys, e, []);
  }

  /**
   * Change only the keys `delta` names: removed ids go, added or changed keys are built (a
   * changed key is replaced). Work is proportional to the delta, not to the key set. `rejected`
   * then lists the keys of this delta that cannot be served (a 2022 user PSK already owned by
   * another key stays with its owner). Returns the ids whose entry was removed or replaced, so
   * the caller can close their connections.
   */
  apply(delta: KeyDelta): string[] {
    const gone: string[] = [];
    const rejected: RejectedKey[] = [];
    const gained: GainedLimit[] = [];
    this.#gained = gained;
    for (const id of delta.remove) if (this.#drop(id)) gone.push(id);
    for (const k of delta.upsert) {
      const old = this.#entries.get(k.id);
      if (old && old.fingerprint === fingerprint(k)) {
        changeLimits(old, k, gained);
        continue;
      }
      if (old && this.#drop(k.id)) gone.push(k.id);
      const { entries, rejected: r } = buildKeyEntries([k], new Map());
      const e = entries.get(k.id);
      if (!e || (e.edition === 2022 && !claimUserKey(this.#userKeys, e, r))) {
        rejected.push(...r);
        continue;
      }
      this.#add(e);
    }
    this.#rejected = rejected;
    return gone;
  }

  #add(e: AnyKeyEntry): void {
    this.#entries.set(e.id, e);
    if (e.edition === 2017) {
      this.#sip004At.set(e.id, this.#sip004.length);
      this.#sip004.push(e);
    } else if (!e.identityKey) this.#single2022 = [...this.#single2022, e];
    else {
      const id = groupId(e);
      let g = this.#groupsById.get(id);
      if (!g) {
        this.#groupsById.set(id, (g = newGroup(e, e.identityKey)));
        this.#groups = [...this.#groups, g];
      }
      g.table.set(e.userKey, e);
    }
  }

  #drop(id: string): boolean {
    const e = this.#entries.get(id);
    if (!e) return false;
    this.#entries.delete(id);
    if (e.edition === 2017) {
      // Swap-remove: the order of SIP004 trials is not part of any contract.
      const i = this.#sip004At.get(id)!;
      const last = this.#sip004.pop()!;
      if (last !== e) {
        this.#sip004[i] = last;
        this.#sip004At.set(last.id, i);
      }
      this.#sip004At.delete(id);
      return true;
    }
    const owner = `${groupId(e)}/${e.userKey.toString('hex')}`;
    if (this.#userKeys.get(owner) === id) this.#userKeys.delete(owner);
    if (!e.identityKey) this.#single2022 = this.#single2022.filter((k) => k !== e);
    else {
      const g = this.#groupsById.get(groupId(e));
      if (g) {
        g.table.delete(e.userKey);
        if (g.table.size === 0) {
          this.#groupsById.delete(groupId(e));
          this.#groups = this.#groups.filter((x) => x !== g);
        }
      }
    }
    return true;
  }

  /**
   * Keys the last set() or apply() kept (same method and secret: their connections stay) that
   * had no speed or device limit and now have one. A replaced key is not here: it is gone.
   */
  get gained(): readonly GainedLimit[] {
    return this.#gained;
  }

  /** Keys the last set() left out, with the reason. */
  get rejected(): readonly RejectedKey[] {
    return this.#rejected;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The current entry of a key id (undefined once revoked). */
  get(id: string): AnyKeyEntry | undefined {
    return this.#entries.get(id);
  }

  /**
   * The SIP004 keys in a copy, when they are the whole set (no 2022 key or identity group, which
   * the trial order puts first): what the trial at the accept may try (server/accept-trial.ts).
   */
  sip004Only(): readonly KeyEntry[] | undefined {
    return this.#groups.length === 0 && this.#single2022.length === 0 ? [...this.#sip004] : undefined;
  }

  /** A client IP authenticated with this SIP004 key: try it first for that IP next time. */
  used(ip: string, keyId: string): void {
    this.#recent.use(ip, keyId);
  }

  /** The SIP004 keys recently used from this IP, most recent first. */
  recentFor(ip: string): readonly KeyEntry[] {
    const ids = this.#recent.get(ip);
    if (ids.length === 0) return NO_KEYS;
    const first: KeyEntry[] = [];
    for (const id of ids) {
      const k = this.#entries.get(id);
      if (k && k.edition === 2017) first.push(k);
    }
    return first;
  }

  /**
   * Visit the candidates in trial order until `visit` returns a value, and return it: SIP023
   * identity groups (O(1) each), 2022 single-user keys, then the SIP004 keys, those in `first`
   * (recently used by this client; skipped when no longer current) before the others.
   */
  walk<T>(first: readonly KeyEntry[], visit: CandidateVisitor<T>): T | undefined {
    let position = 0;
    let r: T | undefined;
    for (const g of this.#groups) if ((r = visit(g, ++position, false)) !== undefined) return r;
    for (const k of this.#single2022) if ((r = visit(k, ++position, false)) !== undefined) return r;
    if (this.#sip004.length === 0) return undefined;
    let preferred = 0;
    for (const k of first) {
      if (this.#entries.get(k.id) !== k) continue;
      preferred++;
      if ((r = visit(k, ++position, true)) !== undefined) return r;
    }
    for (const k of this.#sip004) {
      if (preferred > 0 && first.includes(k)) continue;
      if ((r = visit(k, ++position, false)) !== undefined) return r;
    }
    return undefined;
  }
}
