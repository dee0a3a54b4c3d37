/**
 * One managed server per data directory: `DATA_DIR/server.pid` holds "PID START" (START: the
 * process's start time from /proc, so a pid reused after a crash or a reboot is not taken for the
 * server). Taken before the server touches anything (store, settings, web-endpoint.json), held
 * for the process's life, removed at close. A file whose process is gone (kill -9) is stale and
 * replaced. Fleet nodes each have their own data directory, so they never meet here.
 *
 * Races: the file appears with its content at once (written to a new temporary file, then linked to
 * server.pid, which fails when it exists), so a second start never reads it empty; a stale file is
 * taken away by renaming it to a name of our own and checking it is still the one judged stale,
 * so two starts replacing the same stale file cannot remove each other's fresh one.
 */
import {
  closeSync,
  existsSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { tempBeside } from '../shared/data-file.js';
import { dirErrorWhy, makeDirs } from '../shared/fs.js';
import { UsageError } from './errors.js';

export const SERVER_PID_FILE = 'server.pid';

/** The process's start time (clock ticks since boot); undefined: no such process; '' unknown. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces and parentheses): the 20th is starttime.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : '';
  }
}

/** The pid of the live process the file names (same pid and, where known, same start time). */
function holderAlive(text: string): number | undefined {
  const [pidText, start] = text.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  let otherUser = false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return undefined; // ESRCH: gone
    otherUser = true; // it runs, as another user
  }
  const now = startTime(pid);
  // Another user's process whose /proc entry is hidden (systemd's ProtectProc=invisible): alive.
  if (now === undefined) return otherUser ? pid : undefined;
  return start && now && start !== now ? undefined : pid;
}

/** A file-system refusal of the data directory as the one line the store gives for it. */
function refusal(dataDir: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EROFS')
    return new UsageError(`store: the data directory ${dataDir} is on a read-only file system`);
  if (code === 'EACCES' || code === 'EPERM')
    return new UsageError(
      `store: the data directory ${dataDir} is not readable and writable by this user, uid ${process.getuid?.() ?? '?'} (cannot create ${SERVER_PID_FILE}: ${code})`,
    );
  // A file where the directory should be, or a file system that refuses one (/proc).
  if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'ENOENT')
    return new UsageError(`store: cannot create the data directory ${dataDir}: ${dirErrorWhy(dataDir, err)}`);
  return err as Error;
}

/**
 * Take the data directory for this process; returns the release. Refused in one line when
 * another live ladder server holds it, or when the directory cannot be written.
 */
export function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, SERVER_PID_FILE);
  const mine = `${process.pid} ${startTime(process.pid) ?? ''}\n`;
  // A new file at a name no one can guess (O_EXCL): a symlink planted at a predictable name is
  // never followed, so the pid line is never written through it into another file.
  const tmp = tempBeside(file);
  try {
    makeDirs(dataDir);
  } catch (err) {
    // Not there and not creatable: about the parent, not "not readable and writable" (it is not there).
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      let parent = dirname(dataDir);
      while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
      throw new UsageError(
        `store: cannot create the data directory ${dataDir}: ${parent} is not writable by this user, uid ${process.getuid?.() ?? '?'} (create it for this user, or choose another --data-dir)`,
      );
    }
    throw refusal(dataDir, err);
  }
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, mine);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw refusal(dataDir, err);
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, file); // fails when server.pid exists: never seen half-written
        return () => {
          try {
            if (readFileSync(file, 'utf8') === mine) unlinkSync(file);
          } catch {
            // gone already
          }
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw refusal(dataDir, err);
      }
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue; // removed meanwhile: try again
      }
      const pid = holderAlive(text);
      if (pid !== undefined)
        throw new UsageError(`data directory ${dataDir} is in use by another ladder server (pid ${pid})`);
      const aside = `${file}.${process.pid}.stale`;
      try {
        renameSync(file, aside); // stale: its process is gone
      } catch {
        continue; // another start took it first
      }
      // Still the file judged stale? If another start had replaced it meanwhile, put it back.
      if (readFileSync(aside, 'utf8') !== text) {
        try {
          linkSync(aside, file);
        } catch {
          // a third start holds it now: the next attempt sees whoever it is
        }
      }
      unlinkSync(aside);
    }
    throw new UsageError(`data directory ${dataDir}: cannot take ${SERVER_PID_FILE} (starts racing for it)`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // not made
    }
  }
}
