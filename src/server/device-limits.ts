/**
 * Per-key device limits in the data plane (docs/limits.md, "Device limits"): a key with
 * `deviceLimit: N` is used from at most N client addresses at once, counted over every port,
 * transport and worker thread of the process (workers/shared-devices.ts holds the addresses,
 * hashed). One `DeviceLimits` per server: it reads its keys' limits from the key ring, admits a connection or UDP
 * session of a limited key (or refuses it: the caller then reacts as to a key that is not
 * usable), releases it when it ends, and notes which of its connections still move bytes, so
 * an address whose connections all went silent (a phone that changed network) stops counting
 * after `silentMs`.
 *
 * A key without a limit costs one Map lookup per connection, and nothing while it relays.
 * LADDER_DEVICE_LIMITS=0 turns enforcement off (every key as if unlimited).
 */
import type { Clock, Timer } from '../shared/clock.js';
import { envSwitch } from '../shared/env.js';
import type { Logger } from '../shared/logger.js';
import { addressKey } from './pending-limits.js';
import type { KeyLimitSource } from './speed-limits.js';
import { processDevices, REFUSED, TABLE_FULL } from './workers/shared-devices.js';
import type { DeviceCounts, SharedDevices } from './workers/shared-devices.js';

/** An address stops counting once all its connections of the key were silent this long. */
export const DEFAULT_DEVICE_SILENT_MS = 30_000;
/** At most one refusal line per key in this window (process-wide). */
const LOG_WINDOW_MS = 60_000;

/** Enforcement is on unless LADDER_DEVICE_LIMITS=0. */
export function deviceLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_DEVICE_LIMITS', env);
}

/** The silence after which an address stops counting (LADDER_DEVICE_SILENT_MS, for tests). */
export function deviceSilentMsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env['LADDER_DEVICE_SILENT_MS']);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_DEVICE_SILENT_MS;
}

/**
 * The group an address counts as: IPv4 exactly, an IPv4-mapped IPv6 address as its IPv4, any
 * other IPv6 address by its /64 (the pending caps' grouping, pending-limits.ts addressKey).
 */
export const deviceGroup = (address: string): string => (address === '' ? '' : addressKey(address));

/** What holds a place: a connection or UDP session, which says whether it moved bytes. */
export interface DeviceOwner {
  /** A figure that changes whenever the owner moves bytes (its byte counts, a last-use time). */
  activity(): number;
}

interface Hold {
  readonly owner: DeviceOwner;
  readonly entry: number;
  last: number;
}

export interface DeviceLimitsOptions {
  /** The keys' limits: the server's key ring, whose entries carry them. */
  keys: KeyLimitSource;
  clock: Clock;
  log: Logger;
  table?: SharedDevices | undefined;
  enabled?: boolean;
  silentMs?: number;
}

export class DeviceLimits {
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #table: SharedDevices;
  readonly #enabled: boolean;
  readonly silentMs: number;
  readonly #keys: KeyLimitSource;
  readonly #holds = new Map<DeviceOwner, Hold>();
  #sweep: Timer | undefined;
  readonly #logTimers = new Map<number, Timer>();
  #fullWarned = false;

  constructor(opts: DeviceLimitsOptions) {
    this.#keys = opts.keys;
    this.#clock = opts.clock;
    this.#log = opts.log;
    this.#table = opts.table ?? processDevices();
    this.#enabled = opts.enabled ?? deviceLimitsFromEnv();
    this.silentMs = opts.silentMs ?? deviceSilentMsFromEnv();
  }

  get table(): SharedDevices {
    return this.#table;
  }

  /** Key `id`'s device limit, from its ring entry, while enforcement is on. */
  #limit(id: string): number | undefined {
    return this.#enabled ? this.#keys.get(id)?.limits.deviceLimit : undefined;
  }

  /** Whether the key has a device limit here. */
  limited(keyId: string): boolean {
    return this.#limit(keyId) !== undefined;
  }

  /** Whether device limits are enforced (LADDER_DEVICE_LIMITS). */
  get enabled(): boolean {
    return this.#enabled;
  }

  /**
   * Whether `owner` (a connection or UDP session of `keyId` from `address`) may go on. A key
   * without a limit: true, nothing held. Otherwise it holds a place for its address until
   * release(owner). False: refused.
   */
  admit(owner: DeviceOwner, keyId: string, address: string): boolean {
    const limit = this.#limit(keyId);
    if (limit === undefined) return true;
    if (this.#holds.has(owner)) return true;
    const t = this.#table;
    const row = t.row(keyId);
    if (row < 0) return this.#full();
    const now = this.#clock.now();
    const entry = t.admit(row, t.addressTag(keyId, deviceGroup(address)), limit, now, this.silentMs);
    if (entry === TABLE_FULL) return this.#full();
    if (entry === REFUSED) {
      this.#refused(keyId, row, limit, now);
      return false;
    }
    this.#holds.set(owner, { owner, entry, last: owner.activity() });
    this.#armSweep();
    return true;
  }

  /** Whether `owner` holds a place (an admitted connection of a limited key). */
  holds(owner: DeviceOwner): boolean {
    return this.#holds.has(owner);
  }

  /** `owner` moved bytes now (a UDP datagram): its address counts on. */
  touch(owner: DeviceOwner): void {
    const h = this.#holds.get(owner);
    if (h) this.#table.touch(h.entry, this.#clock.now());
  }

  /** `owner` ended: its place goes (the address's, with its last connection). */
  release(owner: DeviceOwner): void {
    if (this.#holds.size === 0) return;
    const h = this.#holds.get(owner);
    if (!h) return;
    this.#holds.delete(owner);
    this.#table.release(h.entry);
  }

  /** Per key id: client addresses counting now (no address leaves the table). */
  inUse(): ReadonlyMap<string, number> {
    return this.#table.counts(this.#clock.now(), this.silentMs).inUse;
  }

  /** Stop the timers (the places are released by their owners' close). */
  close(): void {
    if (this.#sweep) this.#clock.clearTimeout(this.#sweep);
    this.#sweep = undefined;
    for (const t of this.#logTimers.values()) this.#clock.clearTimeout(t);
    this.#logTimers.clear();
  }

  #full(): boolean {
    if (!this.#fullWarned) {
      this.#fullWarned = true;
      this.#log.warn('device limits: table full; further addresses are let through uncounted');
    }
    return true;
  }

  /** Every few seconds while places are held: which owners moved bytes since the last look. */
  #armSweep(): void {
    if (this.#sweep) return;
    const every = Math.max(50, Math.min(5000, Math.floor(this.silentMs / 6)));
    this.#sweep = this.#clock.setTimeout(() => {
      this.#sweep = undefined;
      const now = this.#clock.now();
      for (const h of this.#holds.values()) {
        const b = h.owner.activity();
        if (b !== h.last) {
          h.last = b;
          this.#table.touch(h.entry, now);
        }
      }
      if (this.#holds.size > 0) this.#armSweep();
    }, every);
    this.#sweep.unref?.();
  }

  #refused(keyId: string, row: number, limit: number, now: number): void {
    const n = this.#table.refused(row, now, LOG_WINDOW_MS);
    if (n > 0) return this.#line(keyId, limit, n);
    if (this.#logTimers.has(row)) return;
    // The window's refusals get their line when it ends, from whichever thread looks first.
    const wait = Math.max(1, this.#table.windowStart(row) + LOG_WINDOW_MS - now);
    const timer = this.#clock.setTimeout(() => {
      this.#logTimers.delete(row);
      const due = this.#table.due(row, this.#clock.now(), LOG_WINDOW_MS);
      if (due > 0) this.#line(keyId, this.#limit(keyId) ?? limit, due);
    }, wait);
    timer.unref?.();
    this.#logTimers.set(row, timer);
  }

  #line(keyId: string, limit: number, n: number): void {
    this.#log.info(
      { keyId, deviceLimit: limit, refused: n },
      `key ${keyId}: connections from another address refused: device limit ${limit} reached (${n} refused in the last minute)`,
    );
  }
}

/** The process's device-limit counts (the management plane's metrics read them). */
export function processDeviceCounts(): DeviceCounts {
  return processDevices().counts(Date.now(), deviceSilentMsFromEnv());
}

/** A UDP session's place under its key's device limit, for the address group it holds it for. */
export interface DevicePlace extends DeviceOwner {
  readonly group: string;
}

/**
 * A datagram of a key with a device limit, from `ip`: its session holds a place for the
 * client's address group (a 2022 session whose client moved takes one for the new group, then
 * gives up the old). False: refused, the session keeps what it held (if anything).
 */
export function admitPlace(
  devices: DeviceLimits,
  session: { device: DevicePlace | undefined; lastMs: number },
  keyId: string,
  ip: string,
): boolean {
  const group = deviceGroup(ip);
  if (session.device?.group === group) {
    devices.touch(session.device);
    return true;
  }
  const place: DevicePlace = { group, activity: () => session.lastMs };
  if (!devices.admit(place, keyId, ip)) return false;
  if (session.device) devices.release(session.device);
  session.device = place;
  return true;
}
