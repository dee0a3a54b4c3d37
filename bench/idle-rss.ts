/**
 * Idle memory per mode, measured the way a user starts each one: `node bin/ladder.js …` for the
 * client, the unmanaged server (--password) and the managed server (--data-dir, SQLite), next to
 * a bare Node process holding one listening socket (the floor) and ss-local / ss-server when they
 * are installed. Each process is started, observed listening (its port in /proc/net/tcp*, so no
 * connection is made to it), left idle for --idle-ms (default 2,000), and its VmRSS read from
 * /proc/PID/status; --runs (default 3) runs per mode, median and spread printed as a table.
 *
 *   node --import tsx bench/idle-rss.ts [--runs 3] [--idle-ms 2000] [--modes client,server,...]
 *     [--json FILE] [--workers N]
 *
 * --workers N passes `--workers N` to both servers (default: theirs, one data-plane worker per core).
 * Modes: floor, client, server, managed, ss-local, ss-server. LADDER_DIST / LADDER_DEBUG in the
 * environment pass through to bin/ladder.js (e.g. LADDER_DIST=0 to time the tsx fallback).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitListening } from '../test/helpers/net.js';
import { LADDER_BIN, ladderServerArgv, REPO_ROOT, rssKiB, ssUrl, which } from '../test/helpers/peers.js';
import { opt, posInt } from './args.js';
import { median } from './stats.js';

const RUNS = posInt('--runs', 3);
const IDLE_MS = posInt('--idle-ms', 2000);
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
        argv: [
          LADDER_BIN,
          'server',
          '--data-dir',
          dir,
          '--host',
          '127.0.0.1',
          '--port',
          String(port),
          '--api-host',
          '127.0.0.1',
          '--api-port',
          String(await freePort()),
          '--metrics-port',
          String(await freePort()),
          ...workerArgs,
        ],
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

async function measureOnce(mode: string): Promise<number | undefined> {
  const l = await launch(mode);
  if (!l) return undefined;
  const child = spawn(l.cmd, l.argv, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await waitListening(child, l.port);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    return (await rssKiB(child.pid!)) / 1024;
  } catch (err) {
    throw new Error(`${mode}: ${(err as Error).message}\n${stderr.slice(-2000)}`, { cause: err });
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    l.cleanup?.();
  }
}

const rows: { mode: string; runs: number[] }[] = [];
for (const mode of MODES) {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const mib = await measureOnce(mode);
    if (mib === undefined) break;
    runs.push(mib);
  }
  rows.push({ mode, runs });
}

const fmt = (n: number): string => n.toFixed(1);
console.log(
  `idle RSS (MiB), ${RUNS} runs of each, ${IDLE_MS} ms idle after listening; node ${process.version}` +
    (WORKERS ? `; servers with --workers ${WORKERS}` : ''),
);
console.log('mode        median    min    max   runs');
for (const { mode, runs } of rows) {
  if (runs.length === 0) {
    console.log(`${mode.padEnd(10)}  (not installed)`);
    continue;
  }
  const cells = [median(runs), Math.min(...runs), Math.max(...runs)].map((n) => fmt(n).padStart(6));
  console.log(`${mode.padEnd(10)}  ${cells.join(' ')}   ${runs.map(fmt).join(' ')}`);
}
if (JSON_OUT)
  writeFileSync(JSON_OUT, JSON.stringify({ node: process.version, idleMs: IDLE_MS, rows }, null, 2));
