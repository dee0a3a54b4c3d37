import type { StoreLocation } from '../store/index.js';

/** Banner text the server modes and `server access-config` share (no heavy imports: the unmanaged server loads this). */

/** Whether the server relays to loopback/private destinations, and how to allow it for a local test. */
export function privatePolicyLine(allowed: boolean): string {
  return allowed
    ? 'private/loopback destinations ALLOWED (--allow-private)'
    : 'private/loopback destinations refused (a local test needs --allow-private)';
}

/** What an ssconf:// key needs, under its line in the banners and `server access-config`. */
export function dynamicKeyNote(dynamicKeyBaseUrl: string | null | undefined): string {
  const where = dynamicKeyBaseUrl
    ? `${dynamicKeyBaseUrl} has a certificate they trust`
    : 'the server has a trusted certificate: this API certificate is self-signed, so serve /access/ behind a TLS proxy with a real one (--dynamic-listen, --dynamic-url https://…)';
  return `works in Outline clients only when ${where}; ladder client also reads it with the API certificate pinned: add ?certSha256=<certSha256 of the access config line>`;
}

/** A postgres:// URL without its password (for banners and logs). */
export function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '…';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
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
  return `${dir} --store ${JSON.stringify(loc.kind === 'sqlite' ? loc.path : withoutPassword(loc.url))}`;
}
