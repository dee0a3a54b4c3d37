/**
 * A key's device and speed limits (docs/limits.md): their bounds, one check every writer uses (the
 * store's writes, the API's bodies, the CLI's arguments, `ladder store check`), and the columns of
 * migration 0007_key_limits. null means no limit.
 */
import { formatRate, MIN_RATE } from '../shared/parse.js';

/** At most this many client addresses (src/config/server.ts takes the same bound). */
export const MAX_DEVICE_LIMIT = 10_000;
/** Bytes per second: at least 1 KiB/s (parse.ts MIN_RATE), at most 1 TiB/s. */
export const MIN_SPEED_LIMIT = MIN_RATE;
export const MAX_SPEED_LIMIT = 2 ** 40;

export type LimitField = 'deviceLimit' | 'speedLimit';

/** Why `value` is not a usable limit of `field` (a phrase: "must be …"), or undefined when it is. */
export function limitProblem(field: LimitField, value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  const n = typeof value === 'number' ? value : Number.NaN;
  if (field === 'deviceLimit') {
    if (!Number.isInteger(n) || n < 1 || n > MAX_DEVICE_LIMIT)
      return `must be a whole number of devices from 1 to ${MAX_DEVICE_LIMIT}`;
    return undefined;
  }
  if (!Number.isInteger(n) || n < MIN_SPEED_LIMIT || n > MAX_SPEED_LIMIT)
    return `must be a whole number of bytes per second from ${MIN_SPEED_LIMIT} (8.2 kbit/s) to 2^40 (1 TiB/s)`;
  return undefined;
}

/** A stored limit as the data plane gets it: a usable number, or null (none, or nonsense `store check` reports). */
export function storedLimit(field: LimitField, value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = typeof value === 'number' ? value : Number(value);
  return limitProblem(field, n) === undefined ? n : null;
}

/** "3 devices, 10 Mbit/s" style words for a key's limits, for listings ("" when it has none). */
export function describeLimits(key: { deviceLimit?: number | null; speedLimit?: number | null }): string {
  const parts: string[] = [];
  if (key.deviceLimit != null) parts.push(`${key.deviceLimit} device${key.deviceLimit === 1 ? '' : 's'}`);
  if (key.speedLimit != null) parts.push(formatRate(key.speedLimit));
  return parts.join(', ');
}
