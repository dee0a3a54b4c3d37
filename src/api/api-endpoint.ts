/**
 * `DATA_DIR/api-endpoint.json`: where this data directory's management API listens as clients
 * reach it ({"port":N}, plus "host" on a fleet node: its own public host). Written when the API
 * starts; read by the CLI (`ladder keys`, `server access-config`) so the URLs it prints name the
 * same endpoint as the certificate beside it, and by a fleet node's restart (its own API port,
 * not another node's).
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServerSettings } from '../store/index.js';
import type { ApiEndpoint } from './access-url.js';
import { CERT_FILE, certSha256 } from './tls.js';

export const API_ENDPOINT_FILE = 'api-endpoint.json';

export interface SavedApiAddress {
  host?: string | undefined;
  port: number;
}

export async function saveApiAddress(dataDir: string, a: SavedApiAddress): Promise<void> {
  const file = join(dataDir, API_ENDPOINT_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(a.host === undefined ? { port: a.port } : a)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

/** The saved address, or undefined when there is none or it does not parse (then: as if none). */
export async function loadApiAddress(dataDir: string): Promise<SavedApiAddress | undefined> {
  try {
    const v = JSON.parse(
      await readFile(join(dataDir, API_ENDPOINT_FILE), 'utf8'),
    ) as Partial<SavedApiAddress>;
    if (!Number.isInteger(v.port) || v.port! <= 0 || v.port! > 65535) return undefined;
    return { port: v.port!, ...(typeof v.host === 'string' && v.host ? { host: v.host } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * The endpoint a data directory's server hands out in dynamic and subscription URLs: its saved
 * address and the pin of the certificate beside it. A SQLite store's settings stand in for an
 * address saved by an older version (one server per store: its apiPort is its own); a PostgreSQL
 * store's shared apiPort never does (it may be another node's).
 */
export async function localApiEndpoint(
  dataDir: string,
  settings: ServerSettings,
  dialect: 'sqlite' | 'postgres',
): Promise<ApiEndpoint | undefined> {
  let pin: string | undefined;
  try {
    pin = certSha256(await readFile(join(dataDir, CERT_FILE), 'utf8'));
  } catch {
    pin = undefined;
  }
  const saved = await loadApiAddress(dataDir);
  const port = saved?.port ?? (dialect === 'sqlite' ? settings.apiPort : null);
  if (port === null) return undefined;
  return { host: saved?.host ?? settings.hostnameForAccessKeys, port, certSha256: pin };
}
