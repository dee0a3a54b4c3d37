/** The web front's public endpoint as managed mode keeps it in its data dir (web-endpoint.json). */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { WebEndpoint } from '../protocol/sip002/plugin-opts.js';
import { asObject, readDataFile, writeDataFile } from '../shared/data-file.js';

/** A front's public endpoint as managed mode saves it: `only` = --advertise web (no raw host:port in keys). */
export type SavedWebEndpoint = WebEndpoint & { only?: boolean };

const ENDPOINT_FILE = 'web-endpoint.json';

/**
 * Managed mode keeps the running front's public endpoint in its data dir (0600: it holds the
 * secret path), so `ladder keys url` and `ladder server access-config` can print web URLs while
 * the server runs elsewhere; a start without a web front removes it.
 */
export async function saveWebEndpoint(dataDir: string, ep: SavedWebEndpoint | undefined): Promise<void> {
  const file = join(dataDir, ENDPOINT_FILE);
  if (ep === undefined) await rm(file, { force: true });
  else await writeDataFile(file, ep);
}

/** The endpoint a managed server with a web front last saved in `dataDir`, if any (a damaged one: DataFileError). */
export function loadWebEndpoint(dataDir: string): Promise<SavedWebEndpoint | undefined> {
  const fix = 'go on (a managed server with a web front writes it again when it starts)';
  return readDataFile(
    join(dataDir, ENDPOINT_FILE),
    (v) => {
      const o = asObject(v);
      if (
        typeof o?.host !== 'string' ||
        typeof o.port !== 'number' ||
        typeof o.path !== 'string' ||
        typeof o.tls !== 'boolean'
      )
        return 'fields missing';
      return {
        host: o.host,
        port: o.port,
        path: o.path,
        tls: o.tls,
        mux: o.mux !== false,
        ...(o.grpc === false ? { grpc: false } : {}),
        ...(o.only === true ? { only: true } : {}),
      };
    },
    fix,
  );
}
