/**
 * What the managed-server benches share: a `ROOT/bin/ladder.js server` of its own (a process,
 * from src/ through tsx) on a data directory, its management API's port from its banner, and
 * /proc figures of a process.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { managedServerArgs } from '../test/helpers/ladder-run.js';
import { cleanEnv } from '../test/helpers/clean-env.js';

export interface SpawnedServer {
  readonly pid: number;
  /** The management API's port (from the banner: a restart prints no secrets). */
  readonly apiPort: number;
  stop(): Promise<void>;
}

/** Start `node [nodeFlags] ROOT/bin/ladder.js server` on `dataDir` with `extra` flags. */
export async function spawnManagedServer(
  root: string,
  dataDir: string,
  o: { extra?: readonly string[]; nodeFlags?: readonly string[]; port?: number } = {},
): Promise<SpawnedServer> {
  const argv = managedServerArgs(dataDir);
  if (o.port !== undefined) argv[argv.indexOf('--port') + 1] = String(o.port);
  const child = spawn(
    process.execPath,
    [...(o.nodeFlags ?? []), join(root, 'bin', 'ladder.js'), ...argv, ...(o.extra ?? [])],
    {
      env: cleanEnv({ LADDER_DIST: '0', LADDER_LOG_LEVEL: 'silent' }),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const kill = (): void => void child.kill('SIGTERM');
  process.on('exit', kill);
  const apiPort = await new Promise<number>((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error('no banner in 120 s')), 120_000);
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /management API on port (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(Number(m[1]));
      }
    });
    child.on('exit', (code) => fail(new Error(`server exited (${code})`)));
  });
  return {
    pid: child.pid!,
    apiPort,
    stop: async () => {
      if (child.exitCode !== null) return;
      kill();
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** A process's VmRSS or VmHWM (peak RSS) in KiB. */
export function procKib(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Command-line flags: `--name value`, or `dflt`. */
export function flagOf(args: readonly string[], name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
}
