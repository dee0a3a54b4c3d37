import { statSync } from 'node:fs';
import { dirname } from 'node:path';
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

/**
 * Refuse a SQLite store this user may not look at, in one line naming who may: `existsSync` says
 * false for it, so the commands said "no store at …" and "start the server once" about a store
 * that is there, in a data directory of another user (a server run by root or systemd).
 */
export function refuseHiddenStore(path: string): void {
  try {
    statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') return;
    let dir = dirname(path);
    let owner: number | undefined;
    for (let i = 0; i < 64 && owner === undefined; i++) {
      try {
        owner = statSync(dir).uid;
      } catch {
        if (dirname(dir) === dir) break;
        dir = dirname(dir);
      }
    }
    const uid = process.getuid?.();
    const whose =
      owner === undefined
        ? ''
        : owner === uid
          ? ` (check the permissions of ${dir} and the directories above it)`
          : ` (${dir} belongs to uid ${owner}: run this as that user, e.g. with sudo)`;
    throw new UsageError(`cannot read ${path}: permission denied for this user, uid ${uid ?? '?'}${whose}`);
  }
}

/** A one-line note on stderr (not a warning: the command goes on as typed). */
export const note = (line: string): void => void process.stderr.write(`ladder: ${line}\n`);

/**
 * --data-dir and --store as the user meant them, LADDER_STORE standing in for --store (and
 * `storeFromEnv` saying so). A typed --data-dir names a SQLite store of its own (ladder.db in it):
 * a SQLite LADDER_STORE yields to it, with a note. A PostgreSQL LADDER_STORE stays, the data
 * directory then holding the API certificate beside it, as a fleet node's unit runs
 * `ladder server --data-dir /var/lib/ladder` with LADDER_STORE in its EnvironmentFile.
 */
export function storeTarget<T extends { dataDir?: string; store?: string }>(
  cmd: Command,
  flags: T = cmd.optsWithGlobals<T>(),
): T & { storeFromEnv: boolean } {
  const fromEnv = flags.store !== undefined && cmd.getOptionValueSourceWithGlobals('store') === 'env';
  if (fromEnv && flags.dataDir !== undefined && !/^postgres(ql)?:\/\//i.test(flags.store!)) {
    note('LADDER_STORE ignored: --data-dir names the store (ladder.db in it)');
    const typed = { ...flags, storeFromEnv: false };
    delete typed.store;
    return typed;
  }
  return { ...flags, storeFromEnv: fromEnv };
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
