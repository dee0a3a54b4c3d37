/**
 * The passwords a ShadowTLS v3 port takes (sing-box's v3 inbound `users`: the server tries each
 * password on the ClientHello's tag): fixed ones (the server-wide password) and, in managed mode,
 * one per usable access key, following the key set as the enforcer changes it (a removed,
 * disabled, expired or over-limit key's password stops matching at the next hello; its hello is
 * then relayed to the handshake site like any prober's).
 *
 * Cost: one HMAC-SHA1 over the ClientHello per password tried (a prober's hello tries them all;
 * docs/shadowtls.md gives the figure for 1,000 keys). A client whose address matched a password
 * recently is tried with that password first, so a user's own hellos cost one HMAC.
 *
 * Budget: the full scans (the hellos that fail that fast path) share a token bucket of CPU
 * (ScanBudget: about 100 ms of scanning per second by default), so a flood of probers' hellos
 * cannot hold the main thread (which also runs the management API). Past it, such a hello is
 * taken as matching none: relayed to the handshake site, as a wrong password is. The fast path
 * is outside the budget.
 */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { TAG_SIZE, clientHelloTagInput, tagsEqual } from '../../protocol/shadowtls/index.js';
import type { KeyDelta, RuntimeKey } from '../../shared/control.js';

interface Entry {
  readonly password: string;
  readonly hmacKey: KeyObject;
  /** The key it belongs to (per-key passwords). */
  readonly keyId?: string | undefined;
}

/** Addresses remembered with the password they matched (the oldest forgotten first). */
const MAX_RECENT = 4096;

/**
 * A full scan's cost in units: per password tried, the hello's bytes plus PER_HMAC_UNITS (an
 * HMAC's fixed cost in bytes' worth: measured ~3.3 µs per key for a 371-byte hello, ~4.6 µs for
 * 1,800 bytes, so about 0.9 ns per unit, docs/shadowtls.md).
 */
export const PER_HMAC_UNITS = 3072;

export interface ScanBudgetOptions {
  /** Units added per second (default 100e6: about 100 ms of scanning). */
  readonly perSecond?: number;
  /** The most the bucket holds (default 300e6: about 300 ms of scanning in a burst). */
  readonly burst?: number;
  /** Milliseconds (default Date.now): tests turn it. */
  readonly now?: () => number;
}

/**
 * A token bucket of scanning units. A scan goes ahead while the bucket is above zero and is
 * charged in full (the bucket may go below zero: a scan bigger than the burst still runs, then
 * waits for the refill), so scanning averages `perSecond` units at most.
 */
export class ScanBudget {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(opts: ScanBudgetOptions = {}) {
    this.#perMs = (opts.perSecond ?? 100e6) / 1000;
    this.#burst = opts.burst ?? 300e6;
    this.#now = opts.now ?? Date.now;
    this.#tokens = this.#burst;
    this.#at = this.#now();
  }

  /** Charge `units` if the bucket allows a scan now; false (nothing charged) when it does not. */
  take(units: number): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, now - this.#at) * this.#perMs);
    this.#at = now;
    if (this.#tokens <= 0) return false;
    this.#tokens -= units;
    return true;
  }
}

function entryOf(password: string, keyId?: string): Entry {
  return { password, hmacKey: createSecretKey(Buffer.from(password, 'utf8')), keyId };
}

export class ShadowTlsPasswords {
  readonly #fixed: readonly Entry[];
  readonly #perKey = new Map<string, Entry>();
  readonly #recent = new Map<string, Entry>();
  readonly #budget: ScanBudget;
  /** Full scans refused by the budget (their hellos relayed). */
  #overBudget = 0;

  /**
   * `fixed`: passwords that always match (may be empty when `derive` is given); `derive`: a key's
   * own password (managed mode), for the keys setKeys/applyKeyDelta give.
   */
  constructor(
    fixed: readonly string[],
    private readonly derive?: (key: RuntimeKey) => string,
    budget: ScanBudget = new ScanBudget(),
  ) {
    this.#fixed = fixed.map((p) => entryOf(p));
    this.#budget = budget;
  }

  /** Hellos relayed unscanned because the scanning budget was spent. */
  get overBudget(): number {
    return this.#overBudget;
  }

  /** How many passwords a hello may be tried with. */
  get size(): number {
    return this.#fixed.length + this.#perKey.size;
  }

  setKeys(keys: readonly RuntimeKey[]): void {
    const ids = new Set(keys.map((k) => k.id));
    this.applyKeyDelta({ upsert: keys, remove: [...this.#perKey.keys()].filter((id) => !ids.has(id)) });
  }

  applyKeyDelta(delta: KeyDelta): void {
    if (!this.derive) return;
    for (const id of delta.remove) this.#perKey.delete(id);
    for (const k of delta.upsert) {
      const password = this.derive(k);
      if (this.#perKey.get(k.id)?.password !== password) this.#perKey.set(k.id, entryOf(password, k.id));
    }
  }

  /** The password that signed this first record (a whole record), or undefined (then: relay it). */
  match(record: Uint8Array, remoteAddress?: string): string | undefined {
    const input = clientHelloTagInput(record);
    if (!input) return undefined;
    const signs = (e: Entry): boolean =>
      tagsEqual(
        createHmac('sha1', e.hmacKey).update(input.message).digest().subarray(0, TAG_SIZE),
        input.tag,
      );
    const recent = remoteAddress === undefined ? undefined : this.#recent.get(remoteAddress);
    if (recent && this.#current(recent) && signs(recent)) return this.#remember(remoteAddress!, recent);
    // One password costs what the fast path does: only a scan of several is budgeted.
    if (this.size > 1 && !this.#budget.take(this.size * (record.length + PER_HMAC_UNITS))) {
      this.#overBudget++;
      return undefined;
    }
    for (const e of this.#fixed) if (signs(e)) return this.#remember(remoteAddress, e);
    for (const e of this.#perKey.values()) if (signs(e)) return this.#remember(remoteAddress, e);
    return undefined;
  }

  #current(e: Entry): boolean {
    return e.keyId === undefined || this.#perKey.get(e.keyId) === e;
  }

  #remember(remoteAddress: string | undefined, e: Entry): string {
    if (remoteAddress !== undefined) {
      this.#recent.delete(remoteAddress);
      this.#recent.set(remoteAddress, e);
      if (this.#recent.size > MAX_RECENT) this.#recent.delete(this.#recent.keys().next().value!);
    }
    return e.password;
  }
}
