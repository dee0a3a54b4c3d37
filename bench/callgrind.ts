/**
 * Callgrind for the benches: Ladder's client and server under valgrind's callgrind for
 * bench/web-hops.ts `--callgrind` (the command lines startLadderServer/startLadderClient run,
 * after `valgrind --tool=callgrind`), counts zeroed after the warm-up, dumped and read after the
 * measured connections (one dump file per thread; bench/conn-cost.ts reads its own the same way).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../test/helpers/net.js';
import { LADDER_BIN, ladderServerArgv, spawnPeer, which, type Peer } from '../test/helpers/peers.js';

function valgrind(dir: string, nodeArgs: string[]): string[] {
  if (!which('valgrind')) throw new Error('--callgrind needs valgrind (apt-get install valgrind)');
  return [
    '--tool=callgrind',
    '--smc-check=all-non-file', // V8 writes and moves machine code
    '--separate-threads=yes',
    `--callgrind-out-file=${join(dir, 'cg.%p')}`,
    process.execPath,
    ...nodeArgs,
  ];
}

/** `ladder server` (unmanaged, on a free port, `--allow-private`) under callgrind. */
export async function callgrindServer(
  o: { method: string; password: string; extraArgs: string[] },
  env: NodeJS.ProcessEnv,
  dir: string,
): Promise<Peer & { port: number }> {
  const port = await freePort();
  const argv = ladderServerArgv({ port, ...o, extra: ['--allow-private', ...o.extraArgs] });
  const p = await spawnPeer('ladder server', 'valgrind', valgrind(dir, argv), {
    waitPort: port,
    env,
    waitTimeoutMs: 300_000,
  });
  return Object.assign(p, { port });
}

/** `ladder client --key KEY --socks 127.0.0.1:PORT` under callgrind. */
export async function callgrindClient(
  key: string,
  env: NodeJS.ProcessEnv,
  dir: string,
): Promise<Peer & { socksPort: number }> {
  const socksPort = await freePort();
  const argv = [LADDER_BIN, 'client', '--key', key, '--socks', `127.0.0.1:${socksPort}`];
  const p = await spawnPeer('ladder client', 'valgrind', valgrind(dir, argv), {
    waitPort: socksPort,
    env,
    waitTimeoutMs: 300_000,
  });
  return Object.assign(p, { socksPort });
}

/** Zero the counts of these processes (after the warm-up). */
export function zeroCounts(pids: number[]): void {
  for (const pid of pids) execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'pipe' });
}

/**
 * Instructions (Ir) counted in `pid` since the last zeroing (dumped now into `dir`, where its
 * --callgrind-out-file points): `busiest` is the thread with the most (the event loop that runs
 * the connections: the client's main thread, the server's that carries them), `all` adds V8's
 * compiler and GC helper threads, whose share varies from run to run.
 */
export function instructions(pid: number, dir: string): { busiest: number; all: number } {
  const before = new Set(readdirSync(dir));
  execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'pipe', timeout: 120_000 });
  const fresh = readdirSync(dir).filter((f) => !before.has(f) && f.startsWith(`cg.${pid}`));
  if (fresh.length === 0) throw new Error(`callgrind wrote no dump for ${pid}`);
  let all = 0;
  let busiest = 0;
  for (const f of fresh) {
    const m = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
    const ir = m ? Number(m[1]) : 0;
    all += ir;
    busiest = Math.max(busiest, ir);
  }
  return { busiest, all };
}
