import { resolve } from 'node:path';
import type { Command } from 'commander';
import { refuseHiddenStore, storeTarget, withStoreOptions } from './store-command.js';
import { DEFAULT_DATA_DIR } from '../../config/defaults.js';
import { formatHostPort } from '../../shared/parse.js';
import { oneLineCommand, UsageError } from '../errors.js';
import { refuseParentFlags } from '../given-flags.js';

interface RotateFlags {
  dataDir?: string;
  store?: string;
}

/**
 * `ladder server rotate-cert`: a new self-signed certificate for the management API, on purpose
 * (a damaged one is refused at start, never replaced silently). Prints the new fingerprint and the
 * Outline Manager access config that goes with it.
 */
export async function rotateCertText(flags: RotateFlags): Promise<string> {
  const { openStore, parseStoreLocation, StoreError } = await import('../../store/index.js');
  const { accessConfigLine, localApiEndpoint, rotateCertificate, CERT_FILE } =
    await import('../../api/index.js');
  const dataDir = resolve(flags.dataDir ?? DEFAULT_DATA_DIR);
  let store;
  try {
    const loc = parseStoreLocation(flags.store, dataDir);
    if (loc.kind === 'sqlite') {
      const { existsSync } = await import('node:fs');
      refuseHiddenStore(loc.path);
      if (!existsSync(loc.path))
        throw new UsageError(`no store at ${loc.path}: name the server's store with --data-dir/--store`);
    }
    store = await openStore(loc);
  } catch (err) {
    if (err instanceof StoreError) throw new UsageError(err.message);
    throw err;
  }
  try {
    const settings = await store.getSettings();
    // This data directory's API address (on a fleet, this node's own), as access-config prints it.
    // Read before the rotation: a damaged api-endpoint.json is refused with the certificate as it
    // was (after, the new one was made but its fingerprint never printed). Its pin is the old
    // certificate's: only its host and port are used.
    const api = await localApiEndpoint(dataDir, settings, store.dialect);
    const cert = await rotateCertificate(dataDir, settings.hostnameForAccessKeys);
    const out = [
      `new API certificate in ${resolve(dataDir, CERT_FILE)}`,
      `  SHA-256 fingerprint: ${cert.sha256}`,
      'Restart the server to serve it. Outline Manager pins the old one: remove the server there and add it',
      'again ("Add server" > "existing server") with this access config (keep it secret):',
    ];
    if (api === undefined)
      out.push('  (no API port recorded yet: start the server once, then run access-config)');
    else {
      const host = formatHostPort(api.host, api.port);
      out.push(
        accessConfigLine({ apiUrl: `https://${host}/${settings.apiPrefix}`, certSha256: cert.sha256 }),
      );
    }
    return `${out.join('\n')}\n`;
  } finally {
    await store.close();
  }
}

export function registerRotateCert(server: Command): void {
  oneLineCommand(
    withStoreOptions(
      server
        .command('rotate-cert')
        .description('make a new management API certificate and print the new Outline Manager access config'),
    ),
    'server rotate-cert',
  ).action(async (_opts: RotateFlags, cmd: Command) => {
    refuseParentFlags(cmd, 'server rotate-cert', ['--data-dir', '--store']);
    process.stdout.write(await rotateCertText(storeTarget<RotateFlags>(cmd)));
  });
}
