/** `ladder keys …` in-process (spawning tsx costs seconds per run on a loaded machine): same command tree. */
import type { TestContext } from 'node:test';
import { Command } from 'commander';
import { accessConfigLine, startApi } from '../../src/api/index.js';
import { openStore, parseStoreLocation, type KyselyStore } from '../../src/store/index.js';
import { RecordingControl, tempDir } from './helpers.js';
import { registerKeys } from '../../src/cli/commands/keys.js';
import { reportError } from '../../src/cli/errors.js';

/** stdout captured; a usage error gives code 2 and its one stderr line; anything else throws. */
export async function inproc(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command('ladder').exitOverride();
  registerKeys(program);
  let stdout = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    // The CLI writes strings; the test runner's reporter (whose channel is this process's
    // stdout under `node --test`) writes serialized binary frames: pass those through.
    if (typeof chunk !== 'string') return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const { exitCode, stderr } = reportError(err);
    if (exitCode !== 2) throw err;
    return { code: exitCode, stdout, stderr };
  } finally {
    process.stdout.write = write;
  }
}

/** A store on a temp dir and its API on 127.0.0.1 (TLS, ephemeral port), closed after the test; the access config line. */
export async function remoteKeysApi(t: TestContext): Promise<{ store: KyselyStore; cfg: string }> {
  const dir = tempDir(t);
  const store = await openStore(parseStoreLocation(undefined, dir), {
    defaults: { hostname: '127.0.0.1', port: 4444 },
  });
  const api = await startApi({
    store,
    control: new RecordingControl(),
    dataDir: dir,
    host: '127.0.0.1',
    port: 0,
  });
  t.after(async () => {
    await api.close();
    await store.close();
  });
  return { store, cfg: accessConfigLine(api) };
}
