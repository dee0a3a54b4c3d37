/**
 * The name cache's setting from the environment, apart from names.ts so the CLI can check it at
 * start without loading the resolver (node:dns) into a main thread that never dials.
 */

/** How long an answer is kept by default, ms (getaddrinfo gives no TTL). */
export const NAME_CACHE_MS = 10_000;
/**
 * LADDER_DNS_CACHE_MS: how long an answer is kept, whole ms (0: not kept); NAME_CACHE_MS when
 * unset. Anything else is a clear error.
 */
export function nameCacheMsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.LADDER_DNS_CACHE_MS;
  if (v === undefined || v === '') return NAME_CACHE_MS;
  if (!/^\d{1,9}$/.test(v))
    throw new RangeError(
      `LADDER_DNS_CACHE_MS: expected whole milliseconds (0 turns the cache off), got "${v}"`,
    );
  return Number(v);
}
