import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { refuseHiddenStore, storeTarget, withStoreOptions } from './store-command.js';
import { DEFAULT_DATA_DIR } from '../../config/defaults.js';
import { oneLineCommand, UsageError } from '../errors.js';
import { printable } from '../terminal.js';
import { ladderCommand } from '../../shared/invocation.js';

interface StoreFlags {
  dataDir?: string;
  store?: string;
  storeFromEnv?: boolean;
}

/**
 * The SQLite file the flags name; PostgreSQL has its own tools (pg_dump, pg_restore). `existing`:
 * the store must be there (backup, check), else one line says where it looked and how to name it.
 */
async function sqlitePath(flags: StoreFlags, existing = false): Promise<string> {
  const { checkNotLost, parseStoreLocation, StoreError } = await import('../../store/index.js');
  let loc;
  try {
    loc = parseStoreLocation(flags.store, resolve(flags.dataDir ?? DEFAULT_DATA_DIR));
  } catch (err) {
    if (err instanceof StoreError) throw new UsageError(err.message);
    throw err;
  }
  if (loc.kind !== 'sqlite')
    throw new UsageError(
      `store: backup, restore and check are for a SQLite store; use pg_dump/pg_restore for PostgreSQL${flags.storeFromEnv ? ' (LADDER_STORE names one: unset it for the SQLite store in --data-dir)' : ''}`,
    );
  refuseHiddenStore(loc.path);
  if (existing && !existsSync(loc.path)) {
    await storeStep(() => checkNotLost(loc.path)); // a store that was there: the way to restore it
    throw new UsageError(
      `store: no store at ${loc.path}: name the server's data directory with --data-dir DIR (or --store sqlite:FILE)`,
    );
  }
  return loc.path;
}

/** Run a store operation; its refusals (StoreError) become one `ladder:` line with exit code 2. */
async function storeStep<T>(fn: () => Promise<T> | T): Promise<T> {
  const { StoreError } = await import('../../store/index.js');
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StoreError) throw new UsageError(printable(err.message));
    throw err;
  }
}

/**
 * `ladder store backup FILE | restore FILE | check`: SQLite's online backup (consistent while the
 * server runs), a restore that refuses a store in use and keeps the file it replaces, and the full
 * integrity check. See docs/operations.md.
 */
export function registerStore(program: Command): void {
  const store = oneLineCommand(
    withStoreOptions(
      program.command('store').description('back up, restore or check the key store (SQLite)'),
      'sqlite:PATH',
    ),
    'store',
  );
  const sub = (name: string, description: string): Command =>
    oneLineCommand(store.command(name).description(description), `store ${name}`);

  sub('backup', 'write a consistent copy of the store to FILE (safe while the server runs)')
    .argument('<file>', 'the backup file to create (never overwritten)')
    .action(async (file: string, _o: unknown, cmd: Command) => {
      const db = await sqlitePath(storeTarget<StoreFlags>(cmd), true);
      const { backupStore } = await import('../../store/index.js');
      const dest = resolve(file);
      const r = await storeStep(() => backupStore(db, dest));
      process.stdout.write(
        `backed up ${db} to ${printable(dest)} (server ${r.serverId}, ${r.keys} key(s), integrity_check ok)\n`,
      );
    });

  sub('restore', 'replace the store with a backup FILE (stop the server first)')
    .argument('<file>', 'a file written by "ladder store backup"')
    .action(async (file: string, _o: unknown, cmd: Command) => {
      const db = await sqlitePath(storeTarget<StoreFlags>(cmd));
      const { restoreStore } = await import('../../store/index.js');
      const r = await storeStep(() => restoreStore(resolve(file), db));
      process.stdout.write(
        `restored ${db} from ${printable(resolve(file))} (server ${r.serverId}, ${r.keys} key(s))` +
          `${r.replaced ? `; the previous file is kept as ${r.replaced}` : ''}\n`,
      );
      if (r.previousServerId !== undefined && r.previousServerId !== r.serverId)
        process.stdout.write(
          `note: this is another server's backup (server ${r.serverId}; this data directory held ${r.previousServerId}): ` +
            'its keys, API prefix and settings are now in use here; the API certificate in the data directory stays, ' +
            `so give Outline Manager the new access config (${ladderCommand()} server access-config)\n`,
        );
    });

  sub('check', 'run the full integrity check on the store').action(async (_o: unknown, cmd: Command) => {
    const db = await sqlitePath(storeTarget<StoreFlags>(cmd), true);
    const { checkStore } = await import('../../store/index.js');
    const r = await storeStep(() => checkStore(db));
    process.stdout.write(`${db}: integrity_check ok, server ${r.serverId}, ${r.keys} key(s)\n`);
  });
}
