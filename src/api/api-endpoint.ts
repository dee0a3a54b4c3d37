/**
 * `DATA_DIR/api-endpoint.json`: where this data directory's management API listens as clients
 * reach it ({"port":N}, plus "host" on a fleet node: its own public host). Written when the API
 * starts; read by the CLI (`ladder keys`, `server access-config`) so the URLs it prints name the
 * same endpoint as the certificate beside it, and by a fleet node's restart (its own API port,
 * not another node's).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { asObject, readDataFile, writeDataFile } from '../shared/data-file.js';
import type { ServerSettings } from '../store/index.js';
import type { ApiEndpoint } from './access-url.js';
import { CERT_FILE, certSha256 } from './tls.js';

export const API_ENDPOINT_FILE = 'api-endpoint.json';

export interface SavedApiAddress {
  host?: string | undefined;
  port: number;
}

export async function saveApiAddress(dataDir: string, a: SavedApiAddress): Promise<void> {
  await writeDataFile(join(dataDir, API_ENDPOINT_FILE), a.host === undefined ? { port: a.port } : a);
}

/** The saved address, or undefined when there is none; a damaged file is refused (DataFileError). */
export function loadApiAddress(dataDir: string): Promise<SavedApiAddress | undefined> {
  const fix =
    'go on (the API writes it again when it starts; a fleet node whose --api-port is not given may get a new one)';
  return readDataFile(
    join(dataDir, API_ENDPOINT_FILE),
    (v) => {
      const o = asObject(v);
      const port = o?.port;
      if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) return 'no port';
      return { port, ...(typeof o!.host === 'string' && o!.host ? { host: o!.host } : {}) };
    },
    fix,
  );
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
