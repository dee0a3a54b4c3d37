import { Option, type Command } from 'commander';
import { DEFAULT_DATA_DIR } from '../../config/defaults.js';
import type { KyselyStore, StoreLocation } from '../../store/index.js';
import { UsageError } from '../errors.js';

/** --data-dir and --store, as every command that reads a managed server's store takes them. */
export function withStoreOptions(cmd: Command, store = 'sqlite:PATH or postgres://...'): Command {
  return cmd
    .option('--data-dir <dir>', `the managed server's data directory (default ./${DEFAULT_DATA_DIR})`)
    .addOption(
      new Option('--store <spec>', `${store} (default: ladder.db in --data-dir)`).env('LADDER_STORE'),
    );
}

/** Open the store at `loc`; a store that cannot be opened (unreachable, damaged) is one usage line. */
export async function openStoreOrExplain(loc: StoreLocation): Promise<KyselyStore> {
  const { openStore, StoreError } = await import('../../store/index.js');
  try {
    return await openStore(loc);
  } catch (err) {
    if (err instanceof StoreError) throw new UsageError(err.message);
    throw err;
  }
}
