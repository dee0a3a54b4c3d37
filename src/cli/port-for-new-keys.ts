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
