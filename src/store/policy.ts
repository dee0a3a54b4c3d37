import type { KeyRecord, LimitPeriod, ServerSettings, Store } from './types.js';

export const DAY_MS = 86_400_000;
export const ROLLING_WINDOW_MS = 30 * DAY_MS;

/** Why a key can or cannot be used right now. */
export type KeyState = 'active' | 'disabled' | 'expired' | 'over_limit';

export interface KeyStatus {
  readonly key: KeyRecord;
  readonly state: KeyState;
  /** Bytes (up + down) counted against the limit in the current window. */
  readonly usedBytes: number;
  /** The limit in force (the key's own, else the server default); null = unlimited. */
  readonly limitBytes: number | null;
  /** Start of the window the usage is counted in (ms). */
  readonly windowStart: number;
}

/**
 * Start of the counting window at `now`: the trailing 30 days (Outline's semantics) or the start of
 * the current UTC day, ISO week (Monday) or month.
 */
export function windowStart(period: LimitPeriod, now: number): number {
  const d = new Date(now);
  switch (period) {
    case 'rolling30d':
      return now - ROLLING_WINDOW_MS;
    case 'daily':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    case 'weekly': {
      const dayStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
      const sinceMonday = (d.getUTCDay() + 6) % 7;
      return dayStart - sinceMonday * DAY_MS;
    }
    case 'monthly':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  }
}

/** When the current window ends and usage starts from zero again (null for the rolling window). */
export function nextReset(period: LimitPeriod, now: number): number | null {
  const d = new Date(now);
  switch (period) {
    case 'rolling30d':
      return null;
    case 'daily':
      return windowStart('daily', now) + DAY_MS;
    case 'weekly':
      return windowStart('weekly', now) + 7 * DAY_MS;
    case 'monthly':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  }
}

export function effectiveLimit(
  key: KeyRecord,
  settings: Pick<ServerSettings, 'accessKeyDataLimitBytes'>,
): number | null {
  return key.dataLimitBytes ?? settings.accessKeyDataLimitBytes;
}

/** Pure decision for one key, given its usage in its window. Disabled beats expired beats limit. */
export function keyState(
  key: KeyRecord,
  usedBytes: number,
  limitBytes: number | null,
  now: number,
): KeyState {
  if (!key.enabled) return 'disabled';
  if (key.expiresAt !== null && key.expiresAt <= now) return 'expired';
  if (limitBytes !== null && usedBytes >= limitBytes) return 'over_limit';
  return 'active';
}

/** Evaluate every key against its expiry, enabled flag and limit, with at most one query per window. */
export async function evaluateKeys(store: Store, now: number): Promise<KeyStatus[]> {
  const [keys, settings] = await Promise.all([store.listKeys(), store.getSettings()]);
  const starts = new Map<LimitPeriod, number>();
  for (const k of keys) starts.set(k.limitPeriod, windowStart(k.limitPeriod, now));
  const usage = new Map<LimitPeriod, Map<string, { up: number; down: number }>>();
  for (const [period, start] of starts) usage.set(period, await store.usageSince(start));
  return keys.map((key) => {
    const u = usage.get(key.limitPeriod)?.get(key.id);
    const usedBytes = u ? u.up + u.down : 0;
    const limitBytes = effectiveLimit(key, settings);
    return {
      key,
      state: keyState(key, usedBytes, limitBytes, now),
      usedBytes,
      limitBytes,
      windowStart: starts.get(key.limitPeriod) ?? now,
    };
  });
}
