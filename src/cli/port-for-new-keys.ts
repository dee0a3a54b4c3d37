import type { Logger } from '../shared/logger.js';
import type { KyselyStore, ServerSettings } from '../store/index.js';

/**
 * The port for new keys is the store's (SQLite and PostgreSQL alike): --port sets it only at the
 * first server start on the store (no API port recorded yet); later it changes through the API,
 * and a different --port is the primary listener only (keys carry their port and every key's port
 * is served: docs/operations.md, "The port for new keys"). True at that first start.
 */
export async function applyPortFlag(
  store: KyselyStore,
  settings: ServerSettings,
  portFlag: number | undefined,
  log: Logger,
): Promise<boolean> {
  const firstServerStart = settings.apiPort === null;
  const stored = settings.portForNewAccessKeys;
  if (portFlag !== undefined && portFlag !== 0 && firstServerStart)
    await store.updateSettings({ portForNewAccessKeys: portFlag });
  else if (portFlag && stored && portFlag !== stored)
    log.info(
      `--port ${portFlag} differs from the store's port for new keys, ${stored}, which stays (set through the API or at the first start); both are served`,
    );
  return firstServerStart;
}

/**
 * --public-host names where this server is reached, so it is put into hostnameForAccessKeys at
 * every start (a fleet node's is its own address instead: not here). When that replaces another
 * host, set through the API (Outline Manager's hostname setting) or by an earlier start, it says
 * so in one line: a restart must not undo the API's change silently.
 */
export async function applyPublicHostFlag(
  store: KyselyStore,
  publicHost: string | undefined,
  log: Logger,
): Promise<void> {
  if (publicHost === undefined) return;
  const { hostnameForAccessKeys: stored, apiPort } = await store.getSettings();
  if (stored === publicHost) return;
  await store.updateSettings({ hostnameForAccessKeys: publicHost });
  if (apiPort !== null)
    log.info(
      `--public-host ${publicHost} replaces the hostname for access keys, ${stored} (set through the API or an earlier start); to keep ${stored}, start without --public-host or with --public-host ${stored}`,
    );
}
