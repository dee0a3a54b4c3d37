import type { StoreLocation } from '../store/index.js';
import { hideStorePassword } from './argv-secrets.js';

/** Banner text the server modes and `server access-config` share (no heavy imports: the unmanaged server loads this). */

/** Whether the server relays to loopback/private destinations, and how to allow it for a local test. */
export function privatePolicyLine(allowed: boolean, byFlag = true): string {
  return allowed
    ? `private/loopback destinations ALLOWED (${byFlag ? '--allow-private' : '"allowPrivateDestinations" in the config file'})`
    : 'private/loopback destinations refused (a local test needs --allow-private)';
}

/**
 * The heading over the banners' `ladder client --key …` line. `ladder` on PATH works the same on
 * the client machine once Ladder is installed there; `npx ladder` or `node …/bin/ladder.js` works
 * only in a checkout (elsewhere `npx ladder` fetches an unrelated npm package named ladder).
 */
export function tryItHeading(ladder: string, allowPrivate: boolean): string {
  if (ladder === 'ladder') return `Try it (on the client machine${allowPrivate ? ', or on this one' : ''}):`;
  return 'Try it (here, or on the client machine from its own checkout of Ladder):';
}

/** What an ssconf:// key needs, under its line in the banners and `server access-config`. */
export function dynamicKeyNote(dynamicKeyBaseUrl: string | null | undefined): string {
  if (dynamicKeyBaseUrl)
    return `works in Outline clients and ladder client when ${dynamicKeyBaseUrl} has a certificate they trust`;
  return 'ladder client reads it as printed (it pins the self-signed API certificate by ?certSha256); Outline clients need a trusted certificate: serve /access/ behind a TLS proxy with a real one (--dynamic-listen, --dynamic-url https://…)';
}

/**
 * A postgres:// URL without its password (for banners and logs): `…` in its place, or
 * `placeholder` in a command meant to be copied (`PASSWORD`, which a person sees to replace; the
 * URL encoding of `…` pasted back was taken for the password itself). The process title's rule
 * (hideStorePassword), so no shape of URL shows its password in either.
 */
export function withoutPassword(url: string, placeholder = '…'): string {
  return hideStorePassword(url, placeholder) ?? url;
}

/** The store for the banner: the SQLite file, or the PostgreSQL URL without its password. */
export function describeStore(loc: StoreLocation, dataDir: string): string {
  return loc.kind === 'sqlite'
    ? `${loc.path} (SQLite)`
    : `${withoutPassword(loc.url)} (PostgreSQL; API certificate in ${dataDir})`;
}

/** The flags that name this store again, for the commands a banner suggests (leading space). */
export function storeFlags(loc: StoreLocation, dataDir: string, storeGiven: boolean): string {
  const dir = ` --data-dir ${JSON.stringify(dataDir)}`;
  if (!storeGiven) return dir;
  return `${dir} --store ${JSON.stringify(loc.kind === 'sqlite' ? loc.path : withoutPassword(loc.url, 'PASSWORD'))}`;
}
