import { createHash } from 'node:crypto';
import { evaluateKeys, type KeyRecord, type KeyState, type KeyStatus } from '../../store/index.js';
import type { ApiContext } from '../context.js';
import { formatBinaryBytes } from '../../shared/bytes.js';

/**
 * What the unauthenticated key documents (dynamic keys at /access/…, subscriptions at /sub/…)
 * share: finding a key by its token with its enforcement state, the words for a key that cannot
 * be used, and the stable per-key UUID SIP008 clients keep settings by.
 */

/** The one-line reason shown to the user, per state that refuses traffic (Outline's wording). */
export const REFUSAL: Record<Exclude<KeyState, 'active'>, string> = {
  disabled: 'Access key disabled',
  expired: 'Access key expired',
  over_limit: 'Quota exceeded',
};

/** A UUID-shaped id that stays the same for the same seed (SIP008 clients keep settings by id). */
export function stableUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A byte count for people, in the largest binary unit it fills ("2.00 GiB", "97.66 KiB", "1 B"). */
export const gib = formatBinaryBytes;

/** The key with this token and its latest enforcement status, or undefined (→ the usual 404). */
export async function keyByToken(
  ctx: ApiContext,
  token: string,
): Promise<{ key: KeyRecord; status: KeyStatus } | undefined> {
  const key = await ctx.store.findKeyByToken(token);
  if (!key) return undefined;
  // The enforcer's latest view (at most one interval old) decides, as it does for the data plane.
  const status =
    ctx.enforcer.statuses.find((s) => s.key.id === key.id) ??
    (await evaluateKeys(ctx.store, ctx.clock.now())).find((s) => s.key.id === key.id);
  return status ? { key, status } : undefined;
}

/** Why a key cannot be used, in Outline's `error` shape; undefined for an active key. */
export function refusalOf(
  key: KeyRecord,
  status: KeyStatus,
): { message: string; details?: string } | undefined {
  if (status.state === 'active') return undefined;
  const details =
    status.state === 'over_limit' && status.limitBytes !== null
      ? `Used ${gib(status.usedBytes)} out of ${gib(status.limitBytes)}`
      : status.state === 'expired' && key.expiresAt !== null
        ? `Expired at ${new Date(key.expiresAt).toISOString()}`
        : undefined;
  return { message: REFUSAL[status.state], ...(details ? { details } : {}) };
}
