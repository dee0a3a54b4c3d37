/**
 * One managed server per data directory: `DATA_DIR/server.pid` holds "PID START" (START: the
 * process's start time from /proc, so a pid reused after a crash or a reboot is not taken for the
 * server). Taken before the server touches anything (store, settings, web-endpoint.json), held
 * for the process's life, removed at close. A file whose process is gone (kill -9) is stale and
 * replaced. Fleet nodes each have their own data directory, so they never meet here.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs } from '../shared/fs.js';
import { UsageError } from './errors.js';

export const SERVER_PID_FILE = 'server.pid';

/** The process's start time (clock ticks since boot), or '' where /proc has none. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces and parentheses): the 20th is starttime.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : '';
  }
}

/** True while the process the file names runs (same pid and, where known, same start time). */
function holderAlive(text: string): number | undefined {
  const [pidText, start] = text.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return undefined; // ESRCH: gone
  }
  const now = startTime(pid);
  if (now === undefined) return undefined;
  return start && now && start !== now ? undefined : pid;
}

/**
 * Take the data directory for this process; returns the release. Refused in one line when
 * another live ladder server holds it.
 */
export function lockDataDir(dataDir: string): () => void {
  makeDirs(dataDir);
  const file = join(dataDir, SERVER_PID_FILE);
  const mine = `${process.pid} ${startTime(process.pid) ?? ''}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue; // removed meanwhile: try again
      }
      const pid = holderAlive(text);
      if (pid !== undefined)
        throw new UsageError(`data directory ${dataDir} is in use by another ladder server (pid ${pid})`);
      try {
        unlinkSync(file); // stale: its process is gone
      } catch {
        // another start removed it first
      }
      continue;
    }
    try {
      writeSync(fd, mine);
    } finally {
      closeSync(fd);
    }
    return () => {
      try {
        if (readFileSync(file, 'utf8') === mine) unlinkSync(file);
      } catch {
        // gone already
      }
    };
  }
  throw new UsageError(`data directory ${dataDir}: cannot take ${SERVER_PID_FILE} (starts racing for it)`);
}
