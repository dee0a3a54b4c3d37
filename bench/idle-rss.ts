/**
 * Idle memory per mode, measured the way a user starts each one: `node bin/ladder.js …` for the
 * client, the unmanaged server (--password) and the managed server (--data-dir, SQLite), next to
 * a bare Node process holding one listening socket (the floor) and ss-local / ss-server when they
 * are installed. Each process is started, observed listening (its port in /proc/net/tcp*, so no
 * connection is made to it), left idle for --idle-ms (default 6,000), and its VmRSS read from
 * /proc/PID/status (and, beside it, its private memory: smaps_rollup's Private_Clean + Private_Dirty,
 * which leaves out the pages of the node binary and libraries shared with other processes); --runs (default 3) runs per mode, median and spread printed as a table.
 *
 *   node --import tsx bench/idle-rss.ts [--runs 3] [--idle-ms 6000] [--modes client,server,...]
 *     [--json FILE] [--workers N]
 *
 * --workers N passes `--workers N` to both servers (default: theirs, one data-plane worker per core).
 * Modes: floor, client, server, managed, ss-local, ss-server. LADDER_* variables in the environment
 * pass through to bin/ladder.js (e.g. LADDER_DIST=0 to time the tsx fallback, LADDER_IDLE_RELEASE=0
 * to leave start-up's garbage to V8's memory reducer, which runs some 8 s after start).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitListening } from '../test/helpers/net.js';
import {
  LADDER_BIN,
  ladderServerArgv,
  managedServerArgv,
  REPO_ROOT,
  rssKiB,
  ssUrl,
  which,
} from '../test/helpers/peers.js';
import { opt, posInt } from './args.js';
import { median } from './stats.js';

const RUNS = posInt('--runs', 3);
// 6 s: a managed server evaluates its keys every 2 s, and its first evaluations page in about
// 3.5 MiB more of the node binary's code (file-backed, shared with every node process). Sampled
// at 2 s, as sessions up to the twelfth did, the figure fell before or after that step at random:
// the "bimodal" 78 / 82 MiB of the managed server. Every mode is flat from 3 s on.
const IDLE_MS = posInt('--idle-ms', 6000);
const MODES = opt('--modes', 'floor,client,server,managed,ss-local,ss-server').split(',');
const JSON_OUT = opt('--json', '');
const WORKERS = opt('--workers', '');
const workerArgs = WORKERS ? ['--workers', WORKERS] : [];

const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'idle-rss-bench-password';

interface Launch {
  cmd: string;
  argv: string[];
  /** The TCP port that is listening once the process is ready. */
  port: number;
  cleanup?: () => void;
}

async function launch(mode: string): Promise<Launch | undefined> {
  const port = await freePort();
  const node = process.execPath;
  switch (mode) {
    case 'floor':
      return {
        cmd: node,
        argv: ['-e', `require('node:net').createServer().listen(${port}, '127.0.0.1')`],
        port,
      };
    case 'client': {
      // The server need not exist: an idle client makes no connection to it.
      const key = ssUrl(METHOD, PASSWORD, '127.0.0.1', await freePort());
      return { cmd: node, argv: [LADDER_BIN, 'client', '--key', key, '--socks', `127.0.0.1:${port}`], port };
    }
    case 'server':
      return {
        cmd: node,
        argv: ladderServerArgv({ port, method: METHOD, password: PASSWORD, extra: workerArgs }),
        port,
      };
    case 'managed': {
      const dir = mkdtempSync(join(tmpdir(), 'ladder-idle-rss-'));
      return {
        cmd: node,
        argv: [LADDER_BIN, ...(await managedServerArgv(dir, port, workerArgs))],
        port,
        cleanup: () => rmSync(dir, { recursive: true, force: true }),
      };
    }
    case 'ss-server': {
      const bin = which('ss-server');
      if (!bin) return undefined;
      return { cmd: bin, argv: ['-s', '127.0.0.1', '-p', String(port), '-k', PASSWORD, '-m', METHOD], port };
    }
    case 'ss-local': {
      const bin = which('ss-local');
      if (!bin) return undefined;
      const argv = ['-s', '127.0.0.1', '-p', String(await freePort()), '-l', String(port), '-b', '127.0.0.1'];
      return { cmd: bin, argv: [...argv, '-k', PASSWORD, '-m', METHOD], port };
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

/** Private memory of `pid` in KiB (what only this process holds: no shared binary or library pages). */
function privateKiB(pid: number): number {
  const roll = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  let kib = 0;
  for (const m of roll.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB/gm)) kib += Number(m[1]);
  return kib;
}

async function measureOnce(mode: string): Promise<{ rss: number; priv: number } | undefined> {
  const l = await launch(mode);
  if (!l) return undefined;
  const child = spawn(l.cmd, l.argv, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await waitListening(child, l.port);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    return { rss: (await rssKiB(child.pid!)) / 1024, priv: privateKiB(child.pid!) / 1024 };
  } catch (err) {
    throw new Error(`${mode}: ${(err as Error).message}\n${stderr.slice(-2000)}`, { cause: err });
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    l.cleanup?.();
  }
}

const rows: { mode: string; runs: number[]; privateRuns: number[] }[] = [];
for (const mode of MODES) {
  const runs: number[] = [];
  const privateRuns: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const m = await measureOnce(mode);
    if (m === undefined) break;
    runs.push(m.rss);
    privateRuns.push(m.priv);
  }
  rows.push({ mode, runs, privateRuns });
}

const fmt = (n: number): string => n.toFixed(1);
console.log(
  `idle RSS (MiB), ${RUNS} runs of each, ${IDLE_MS} ms idle after listening; node ${process.version}` +
    (WORKERS ? `; servers with --workers ${WORKERS}` : ''),
);
console.log('mode        median    min    max  private   runs');
for (const { mode, runs, privateRuns } of rows) {
  if (runs.length === 0) {
    console.log(`${mode.padEnd(10)}  (not installed)`);
    continue;
  }
  const cells = [median(runs), Math.min(...runs), Math.max(...runs)].map((n) => fmt(n).padStart(6));
  console.log(
    `${mode.padEnd(10)}  ${cells.join(' ')}   ${fmt(median(privateRuns)).padStart(6)}   ${runs.map(fmt).join(' ')}`,
  );
}
if (JSON_OUT)
  writeFileSync(JSON_OUT, JSON.stringify({ node: process.version, idleMs: IDLE_MS, rows }, null, 2));
